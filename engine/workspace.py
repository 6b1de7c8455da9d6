"""A workspace: one folder holding the database, config, corpus, adapters and logs."""

import os
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from engine.config import CONFIG_FILE, Config, load_config
from engine.db import open_db
from engine.errors import WorkspaceError

ENV_VAR = "CRA_WORKSPACE"
DB_FILE = "cra.sqlite"


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
    config: Config
    db: sqlite_utils.Database

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def plans_dir(self) -> Path:
        return self.root / "plans"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @classmethod
    def open(cls, root: Path | None = None) -> "Workspace":
        """Open the workspace at `root` (or the default), creating its folders and database."""
        root = (root or default_workspace_root()).expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root}: workspace must be a folder, found a file")
        try:
            for sub in ("corpus", "adapters", "logs"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"{root}: cannot create workspace folders: {exc}") from exc
        config = load_config(root / CONFIG_FILE)
        return cls(root=root, config=config, db=open_db(root / DB_FILE))
