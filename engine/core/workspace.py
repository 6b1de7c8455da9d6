"""A workspace: one folder holding the database, config, corpus, adapters and logs.

Importing this module is cheap: the config and database modules load when a workspace opens,
because sqlite-utils loads pandas and numpy (about 0.4 s) and `cra --help` names
`$CRA_WORKSPACE` without opening anything.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import WorkspaceError

if TYPE_CHECKING:
    import sqlite_utils

    from engine.core.config import Config

ENV_VAR = "CRA_WORKSPACE"
DB_FILE = "cra.sqlite"
CORPUS_DIR = "corpus"
ADAPTERS_DIR = "adapters"
LOGS_DIR = "logs"
DATASETS_DIR = "datasets"
PLANS_DIR = "plans"
RUNS_DIR = "runs"
"""The harness: each task's gold validation and attempts, `runs/<task>/`."""
TRAINING_DIR = "training"
"""Training runs, `training/<run id>/`."""
EVALS_DIR = "evals"
EVAL_SETS_DIR = "eval_sets"
WATCHES_DIR = "watches"
LOCKS_DIR = "locks"
ENVS_DIR = "envs"
"""Built test environments, shared by every task of a package."""

WORKSPACE_DIRS = (CORPUS_DIR, ADAPTERS_DIR, LOGS_DIR)
"""Made when a workspace is created."""
DATA_DIRS = (
    CORPUS_DIR,
    ADAPTERS_DIR,
    DATASETS_DIR,
    PLANS_DIR,
    RUNS_DIR,
    TRAINING_DIR,
    EVALS_DIR,
    EVAL_SETS_DIR,
    WATCHES_DIR,
)
"""Folders whose contents the database records: beside them a missing database is a loss."""


def default_workspace_root() -> Path:
    """`$CRA_WORKSPACE`, else `$XDG_DATA_HOME/cra`, else `~/.local/share/cra`."""
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "cra"


@dataclass(frozen=True)
class Workspace:
    """An opened workspace: its folders, its validated config and its database."""

    root: Path
    config: "Config"
    db: "sqlite_utils.Database"
    read_only: str | None = None
    """Why the workspace was opened for reading only; None when it is writable."""
    created: bool = False
    """Whether this open made a new workspace."""

    @property
    def corpus_dir(self) -> Path:
        return self.root / CORPUS_DIR

    @property
    def adapters_dir(self) -> Path:
        return self.root / ADAPTERS_DIR

    @property
    def datasets_dir(self) -> Path:
        return self.root / DATASETS_DIR

    @property
    def plans_dir(self) -> Path:
        return self.root / PLANS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.root / LOGS_DIR

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def training_dir(self) -> Path:
        return self.root / TRAINING_DIR

    @property
    def evals_dir(self) -> Path:
        return self.root / EVALS_DIR

    @property
    def eval_sets_dir(self) -> Path:
        return self.root / EVAL_SETS_DIR

    @property
    def watches_dir(self) -> Path:
        return self.root / WATCHES_DIR

    @property
    def locks_dir(self) -> Path:
        return self.root / LOCKS_DIR

    @property
    def envs_dir(self) -> Path:
        return self.root / ENVS_DIR

    @property
    def config_path(self) -> Path:
        from engine.core.config import CONFIG_FILE

        return self.root / CONFIG_FILE

    @classmethod
    def open(
        cls, root: Path | None = None, *, create: bool = True, write: bool = True
    ) -> "Workspace":
        """Open the workspace at `root` (or the default).

        With `create`, a folder without a database becomes a new workspace (`created` says so),
        unless it already holds workspace data: a lost database is never silently replaced.
        Without it, a folder that is not a workspace is refused. A read-only workspace (folder,
        database or media) opens for reading only; with `write` it is refused, saying why.
        """
        from engine.core.config import CONFIG_FILE, load_config
        from engine.core.db import open_db

        root = (root or default_workspace_root()).expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root}: workspace must be a folder, found a file")
        db_path = root / DB_FILE
        is_new = not db_path.exists()
        if is_new and (held := _held_data(root)):
            raise WorkspaceError(
                f"{root}: holds workspace data ({', '.join(held)}) but no {DB_FILE}; its "
                "database is missing: restore it from a backup, a new one would not know that data"
            )
        if is_new and not create:
            raise WorkspaceError(
                f"{root}: not a cra workspace (no {DB_FILE}); create one with "
                f"`cra --workspace {root} init`, or check the path"
            )
        read_only = None if is_new else read_only_reason(root)
        if read_only and write:
            raise WorkspaceError(
                f"{root}: the workspace is read-only ({read_only}); this command writes to it "
                "and is refused. Lists, reports and the console can still read it"
            )
        config = load_config(root / CONFIG_FILE)
        try:
            if is_new:
                root.mkdir(parents=True, exist_ok=True)
            db = open_db(db_path, create=is_new, read_only=bool(read_only))
            if not read_only:
                for sub in WORKSPACE_DIRS:
                    (root / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"{root}: cannot create the workspace: {exc}") from exc
        return cls(root=root, config=config, db=db, read_only=read_only, created=is_new)

    def reopen(self) -> "Workspace":
        """The same workspace opened again, as it was (read-only or not), for another thread:
        a SQLite connection serves one thread."""
        return Workspace.open(self.root, create=False, write=self.read_only is None)


def _held_data(root: Path) -> list[str]:
    """The workspace's data folders under `root` that hold something."""
    return [name for name in DATA_DIRS if (root / name).is_dir() and any((root / name).iterdir())]


def read_only_reason(root: Path) -> str | None:
    """Why the workspace at `root` cannot be written, or None when it can."""
    db_path = root / DB_FILE
    if os.statvfs(root).f_flag & os.ST_RDONLY:
        return "it is on read-only media"
    if not os.access(root, os.W_OK):
        return f"its folder {root} is not writable"
    if db_path.exists() and not os.access(db_path, os.W_OK):
        return f"its database {db_path} is not writable"
    return None


@contextmanager
def reopened(ws: Workspace) -> Iterator[Workspace]:
    """The workspace opened again, for another thread: a SQLite connection serves one thread."""
    own = ws.reopen()
    try:
        yield own
    finally:
        own.db.conn.close()
