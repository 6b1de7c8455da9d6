"""Bad input against every `cra` subcommand: one clear line, a non-zero exit, nothing changed.

The subcommands are enumerated from the click app itself, so a new one without a row in
`COMMANDS` fails `test_every_subcommand_has_a_row`. Each damaged-workspace case is built once
and every subcommand is run against it; the argument cases run on a valid workspace. A case
fails on an exception escaping the command (a traceback), on exit status 0, on more than one
error line, and on any change to the workspace's files.
"""

import gc
import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from readonly_mount import cra_with_read_only, read_only_mounts_work

from app.cli import cli
from engine.core.db import APPLICATION_ID
from engine.core.workspace import DB_FILE, LOCKS_DIR, Workspace
from engine.harness.campaigns import create_campaign, parse_spec
from engine.harness.package import HarnessError

PKG = "/nonexistent-cra-package"

# The arguments that make each subcommand reach its workspace; None: it opens no workspace.
COMMANDS: dict[str, list[str] | None] = {
    "console": [],
    "demo": ["--no-open"],
    "init": [],
    "report": [],
    "doctor": [],
    "autopilot": ["--status"],
    "manifest schema": None,
    "bundle": None,
    "ingest validate": [PKG],
    "ingest approve": [PKG],
    "ingest reject": [PKG, "--reason", "bad"],
    "ingest list": [],
    "ingest drives": [],
    "package": None,
    "harness validate": ["nosuch"],
    "harness run": ["nosuch"],
    "harness start": ["999"],
    "harness pause": ["999"],
    "harness stop": ["999"],
    "harness status": [],
    "harness attempts": [],
    "harness attempt": ["999"],
    "harness yield": ["nosuch"],
    "data build": [],
    "data stats": [],
    "data audit": [],
    "data export-base": ["--role", "reasoning", "--out", "/nonexistent-cra-export/out"],
    "import-logs": ["/nonexistent-raw.sqlite"],
    "review sample": ["--stage", "scope"],
    "review status": [],
    "review show": ["999"],
    "review decide": ["999", "1", "accept"],
    "review note": ["999", "1", "text"],
    "review guidelines": None,
    "train-plan": [],
    "curate-data": [],
    "datasets list": [],
    "datasets show": ["nosuch"],
    "train start": ["--dataset", "nosuch", "--stage", "scope"],
    "train stop": ["999"],
    "train resume": ["999"],
    "train status": [],
    "train show": ["999"],
    "train settings": ["--stage", "scope"],
    "bases list": [],
    "bases register": ["reasoning"],
    "bases verify": [],
    "cluster status": [],
    "adapters list": [],
    "adapters promote": ["nosuch"],
    "adapters rollback": ["scope"],
    "adapters trace": ["nosuch"],
    "adapters reconcile": [],
    "adapters reject": ["nosuch", "--reason", "bad"],
    "adapters resolve": ["scope"],
    "adapters export": [],
    "adapters history": ["scope"],
    "adapters watch": ["999"],
    "eval run": ["--stage", "scope"],
    "eval status": [],
    "eval show": ["999"],
    "eval gate": ["nosuch"],
    "eval compare": ["nosuch"],
    "eval stop": [],
    "eval set build": ["--stage", "scope"],
    "eval set list": [],
    "serve": ["--status"],
}


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every leaf command's path, through click's listing (`cli` loads its groups lazily, so
    `group.commands` holds only those already loaded)."""
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += _leaf_commands(command, (*prefix, name))
        else:
            found.append(" ".join((*prefix, name)))
    return found


def test_every_subcommand_has_a_row():
    """Each subcommand of the click app is in the table (a new one must get a row)."""
    assert sorted(_leaf_commands(cli)) == sorted(COMMANDS)


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file and folder under `root` with its content hash and mode, but `locks/`: its
    files are empty, made on a lock's first use (`engine/core/jobs.py`), and hold no state."""
    if not root.exists():
        return {}
    found = {".": f"dir {root.stat().st_mode:o}"}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel == LOCKS_DIR or rel.startswith(f"{LOCKS_DIR}/"):
            continue
        if path.is_symlink() or not path.is_file():
            found[rel] = f"dir {path.stat().st_mode:o}" if path.is_dir() else "other"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[rel] = f"{digest} {path.stat().st_mode:o}"
    return found


def _invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env)


def assert_refused(result: Result, *, expect: str | None = None) -> None:
    """A refusal: non-zero exit, no exception escaping, and exactly one error line."""
    shown = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}\n{shown}"
    )
    assert result.exit_code != 0, f"silent success:\n{shown}"
    errors = [line for line in shown.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, f"not one error line:\n{shown}"
    assert "Traceback" not in shown
    if expect is not None:
        assert expect in errors[0], shown


def _real_workspace(root: Path) -> Workspace:
    ws = Workspace.open(root)
    (ws.corpus_dir / "textkit-1234").mkdir()
    (ws.corpus_dir / "textkit-1234" / "manifest.json").write_text("{}", encoding="utf-8")
    ws.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ws.db.conn.close()
    return ws


def _zero_byte(root: Path) -> None:
    _real_workspace(root)
    (root / DB_FILE).write_bytes(b"")


def _garbage(root: Path) -> None:
    _real_workspace(root)
    (root / DB_FILE).write_bytes(os.urandom(8192))


def _truncated(root: Path) -> None:
    _real_workspace(root)
    data = (root / DB_FILE).read_bytes()
    (root / DB_FILE).write_bytes(data[: len(data) // 3])


def _foreign(root: Path) -> None:
    _real_workspace(root)
    (root / DB_FILE).unlink()
    other = sqlite3.connect(root / DB_FILE)
    other.execute("CREATE TABLE notes (body TEXT)")
    other.commit()
    other.close()


def _other_application(root: Path) -> None:
    _real_workspace(root)
    conn = sqlite3.connect(root / DB_FILE)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID + 1}")
    conn.close()


def _newer_schema(root: Path) -> None:
    _real_workspace(root)
    conn = sqlite3.connect(root / DB_FILE)
    conn.execute("INSERT INTO schema_migrations (version, description) VALUES (999, 'future')")
    conn.commit()
    conn.close()


def _lost_database(root: Path) -> None:
    _real_workspace(root)
    (root / DB_FILE).unlink()


def _config_is_a_folder(root: Path) -> None:
    _real_workspace(root)
    (root / "cra.toml").mkdir()


def _config_not_toml(root: Path) -> None:
    _real_workspace(root)
    (root / "cra.toml").write_text("[usb\n", encoding="utf-8")


def _config_bad_value(root: Path) -> None:
    _real_workspace(root)
    (root / "cra.toml").write_text("[harness]\nflaky_runs = 0\n", encoding="utf-8")


# A damaged workspace, what its error line says, and the commands that may act on it anyway.
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "zero-byte database": (_zero_byte, "is empty (0 bytes)"),
    "garbage database": (_garbage, "is not an SQLite database"),
    "truncated database": (_truncated, "is damaged or truncated"),
    "foreign database": (_foreign, "without cra's application_id"),
    "other application": (_other_application, "belongs to another application"),
    "newer schema": (_newer_schema, "newer than this console knows"),
    "database lost beside data": (_lost_database, "its database is missing"),
    "config is a folder": (_config_is_a_folder, "the config must be a file"),
    "config not TOML": (_config_not_toml, "not valid TOML"),
    "config bad value": (_config_bad_value, "flaky_runs"),
}

# Commands whose own rules answer first on some cases: `init` and `demo` refuse any folder
# that already holds a workspace, and say so.
OWN_ANSWER = {"init": "already a cra workspace", "demo": "is not a demo workspace"}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each damaged workspace, built once for every subcommand."""
    roots = {}
    for name, (build, _) in CASES.items():
        root = tmp_path_factory.mktemp("damaged") / "ws"
        build(root)
        roots[name] = root
    return roots


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_workspace_is_refused_by_every_subcommand(damaged: dict[str, Path], case: str):
    """Every subcommand that opens the workspace refuses a damaged one in one line naming the
    fault, and leaves every file as it was."""
    root = damaged[case]
    _, expect = CASES[case]
    before = _tree_digest(root)
    for command, args in COMMANDS.items():
        if args is None or command == "console" and case.startswith("config bad"):
            continue
        result = _invoke(["--workspace", str(root), *command.split(), *args])
        try:
            wanted = expect
            if command == "demo" or command == "init" and not case.startswith("database lost"):
                wanted = OWN_ANSWER[command]
            assert_refused(result, expect=wanted)
        except AssertionError as exc:
            raise AssertionError(f"cra {command} on {case}: {exc}") from None
        assert _tree_digest(root) == before, f"cra {command} changed the {case} workspace"


@pytest.mark.parametrize("workspace", ["", " ", "missing"])
def test_a_workspace_that_is_not_there_is_refused_by_every_subcommand(
    tmp_path: Path, workspace: str
):
    """`--workspace ''` or a mistyped folder never becomes a new workspace (except through
    `cra init` and `cra demo`, which exist to make one)."""
    given = str(tmp_path / workspace) if workspace == "missing" else workspace
    for command, args in COMMANDS.items():
        if args is None and workspace == "missing":
            continue
        if command in ("init", "demo") and workspace == "missing":
            continue
        result = _invoke(["--workspace", given, *command.split(), *(args or [])])
        expect = "not a cra workspace" if workspace == "missing" else "an empty path"
        try:
            assert_refused(result, expect=expect)
        except AssertionError as exc:
            raise AssertionError(f"cra {command} with --workspace {given!r}: {exc}") from None
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_subcommand_takes_workspace_after_its_name(tmp_path: Path):
    """`--workspace` after the subcommand names the workspace as it does before it: a mistyped
    folder given there is refused as a workspace, not as an unknown option, by every command."""
    given = str(tmp_path / "missing")
    for command, args in COMMANDS.items():
        if args is None or command in ("init", "demo"):
            continue
        result = _invoke([*command.split(), "--workspace", given, *args])
        try:
            assert_refused(result, expect="not a cra workspace")
        except AssertionError as exc:
            raise AssertionError(f"cra {command} --workspace {given!r}: {exc}") from None
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_workspace_after_the_subcommand_wins_over_the_environment(tmp_path: Path):
    """`cra init --workspace X` and `cra ingest list --workspace X` act on X, over
    $CRA_WORKSPACE; the same folder given before and after is fine, two folders are refused."""
    root = tmp_path / "ws"
    env = {"CRA_WORKSPACE": str(tmp_path / "elsewhere")}
    made = _invoke(["init", "--workspace", str(root)], env=env)
    assert made.exit_code == 0, made.output
    assert (root / DB_FILE).is_file()
    listed = _invoke(["ingest", "list", "--workspace", str(root)], env=env)
    assert listed.exit_code == 0, listed.output
    both = _invoke(["--workspace", str(root), "ingest", "list", "--workspace", str(root)])
    assert both.exit_code == 0, both.output
    other = _invoke(["--workspace", str(root), "ingest", "list", "--workspace", str(tmp_path)])
    assert other.exit_code == 2
    assert "give --workspace once" in other.output
    assert not (tmp_path / "elsewhere").exists()


def test_a_mistyped_workspace_in_the_environment_is_refused(tmp_path: Path):
    """$CRA_WORKSPACE is an explicit choice too: a folder that is not a workspace is refused."""
    result = _invoke(["ingest", "list"], env={"CRA_WORKSPACE": str(tmp_path / "typo")})
    assert_refused(result, expect="not a cra workspace")
    assert not (tmp_path / "typo").exists()


def test_the_default_workspace_is_made_on_first_use_and_says_so(tmp_path: Path):
    """With no workspace given, the default folder is made once, and the command says so."""
    env = {"CRA_WORKSPACE": "", "XDG_DATA_HOME": str(tmp_path / "data")}
    first = _invoke(["ingest", "list"], env=env)
    assert first.exit_code == 0, first.output
    assert f"created the default workspace at {tmp_path / 'data' / 'cra'}" in first.stderr
    second = _invoke(["ingest", "list"], env=env)
    assert second.exit_code == 0, second.output
    assert "created" not in second.stderr


def test_init_makes_a_workspace_once(tmp_path: Path):
    """`cra init` makes a new workspace where none is, and refuses to make one twice."""
    root = tmp_path / "new"
    made = _invoke(["--workspace", str(root), "init"])
    assert made.exit_code == 0, made.output
    assert (root / DB_FILE).is_file()
    assert _invoke(["--workspace", str(root), "ingest", "list"]).exit_code == 0
    before = _tree_digest(root)
    assert_refused(_invoke(["--workspace", str(root), "init"]), expect="already a cra workspace")
    assert _tree_digest(root) == before


def _git_repo(root: Path) -> Path:
    """A one-commit git repository, for `cra package`."""
    root.mkdir()
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (root / "a.py").write_text("x = 1\n", encoding="utf-8")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    return root


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A valid workspace with a corpus row, a git repository, and a file that is not SQLite."""
    base = tmp_path_factory.mktemp("valid")
    ws = _real_workspace(base / "ws")
    db = Workspace.open(ws.root).db
    db["packages"].insert(
        {
            "name": "textkit",
            "digest": "ab" * 32,
            "corpus_path": "corpus/textkit-1234",
            "approved_by": "t",
            "approved_at": "2026-01-01T00:00:00Z",
        }
    )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    text = base / "notes.txt"
    text.write_text("not a database\n", encoding="utf-8")
    return ws.root, _git_repo(base / "repo"), text


# Bad arguments on a valid workspace: {repo} is a git repository, {text} a text file.
ARG_CASES: list[list[str]] = [
    ["report", "--since", "99999999d"],
    ["report", "--since", "-5h"],
    ["report", "--since", ""],
    ["ingest", "validate", "/"],
    ["ingest", "validate", ""],
    ["ingest", "validate", "{text}"],
    ["ingest", "approve", "/"],
    ["ingest", "approve", ""],
    ["ingest", "reject", "", "--reason", "x"],
    ["ingest", "reject", "/nonexistent", "--reason", ""],
    ["package", "{repo}", "--out", "/proc/x", "--domain", "d"],
    ["package", "{repo}", "--out", "", "--domain", "d"],
    ["package", "", "--out", "/tmp/cra-never", "--domain", "d"],
    ["package", "{repo}", "--out", "{text}", "--domain", "d"],
    ["harness", "validate", ""],
    ["harness", "validate", "%"],
    ["harness", "validate", "_"],
    ["harness", "run", ""],
    ["harness", "run", "nosuch", "--temperatures", "x"],
    ["harness", "start", "999"],
    ["harness", "pause", "999"],
    ["harness", "stop", "-1"],
    ["harness", "yield", ""],
    ["harness", "yield", "nosuch"],
    ["harness", "validate", "nosuch", "--limit", "0"],
    ["harness", "validate", "nosuch", "--since", "yesterday"],
    ["harness", "run", "nosuch", "--commit", "zz"],
    ["package", "{repo}", "--out", "/tmp/cra-never", "--domain", "d", "--pin", "pytest"],
    ["data", "audit", "--stage", "nosuch"],
    ["import-logs", ""],
    ["import-logs", "/"],
    ["import-logs", "{text}"],
    ["review", "sample", "--stage", "scope", "--n", "0"],
    ["review", "show", "999"],
    ["review", "decide", "999", "1", "accept"],
    ["review", "note", "999", "1", "x"],
    ["curate-data", "--plan", ""],
    ["curate-data", "--plan", "999"],
    ["datasets", "show", ""],
    ["datasets", "show", "../../etc"],
    ["train", "start", "--dataset", "", "--stage", "scope"],
    ["train", "start", "--dataset", "nosuch", "--stage", "scope", "--set", "garbage"],
    ["train", "stop", "999"],
    ["train", "resume", "999"],
    ["train", "show", "999"],
    ["adapters", "promote", ""],
    ["adapters", "trace", ""],
    ["adapters", "reject", "nosuch", "--reason", "x"],
    ["adapters", "export", "--out", "/proc/x"],
    ["eval", "run", "--adapter", ""],
    ["eval", "run", "--stage", "scope"],
    ["eval", "set", "build", "--stage", "meta_plan"],
    ["eval", "set", "build", "--stage", "scope"],
    ["eval", "show", "999"],
    ["eval", "gate", ""],
    ["eval", "compare", "nosuch"],
    ["eval", "stop"],
    ["serve"],
]


@pytest.mark.parametrize("args", ARG_CASES, ids=" ".join)
def test_bad_arguments_are_refused_in_one_line(valid: tuple[Path, Path, Path], args: list[str]):
    """Each bad argument is refused in one line, with a non-zero exit, changing nothing."""
    root, repo, text = valid
    args = [arg.format(repo=repo, text=text) for arg in args]
    before = _tree_digest(root)
    result = _invoke(["--workspace", str(root), *args])
    assert_refused(result)
    del result
    gc.collect()  # closes the command's connection, as its process's exit would
    assert _tree_digest(root) == before
    assert not Path("/tmp/cra-never").exists()


def test_a_campaign_without_a_planner_is_refused(tmp_path: Path):
    """A `command` campaign with no planner configured is refused before anything is recorded
    (it would otherwise end `done` with every attempt an error)."""
    ws = Workspace.open(tmp_path / "ws")
    spec = parse_spec(
        {
            "packages": ["ab" * 32],
            "pipeline": "command",
            "model": "planner",
            "temperatures": [0.3],
            "seeds": [1],
        }
    )
    with pytest.raises(HarnessError, match=r"no planner to run: set \[harness.command\] argv"):
        create_campaign(ws, spec, "op")
    assert ws.db["campaigns"].count == 0


READERS = [["ingest", "list"], ["report"], ["harness", "status"], ["adapters", "export"]]
WRITERS = [["ingest", "reject", "/x", "--reason", "r"], ["train-plan"], ["adapters", "reconcile"]]


@pytest.mark.slow
@pytest.mark.skipif(not read_only_mounts_work(), reason="no user and mount namespaces here")
def test_a_read_only_workspace_is_read_and_refuses_writes(tmp_path: Path):
    """On read-only media the workspace still answers lists and reports; every write command
    is refused in one line saying the workspace is read-only and why."""
    root = _real_workspace(tmp_path / "ws").root
    before = _tree_digest(root)
    for args in READERS:
        done = cra_with_read_only(root, "--workspace", str(root), *args)
        assert done.returncode == 0, f"cra {' '.join(args)}: {done.stderr}"
        assert "Traceback" not in done.stderr
    for args in WRITERS:
        done = cra_with_read_only(root, "--workspace", str(root), *args)
        assert done.returncode == 1, f"cra {' '.join(args)}: {done.stdout}{done.stderr}"
        assert done.stderr.splitlines() == [
            f"error: {root}: the workspace is read-only (it is on read-only media); this "
            "command writes to it and is refused. Lists, reports and the console can still "
            "read it"
        ]
    assert _tree_digest(root) == before
