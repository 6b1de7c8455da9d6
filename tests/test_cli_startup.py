"""`cra` starts without the heavy modules its listing commands do not need.

Each command runs in a fresh interpreter through the entry point the `cra` script calls
(`app.cli.main`); when the process exits, it writes which heavy modules were imported. The
listing commands open a workspace, hence sqlite-utils, and sqlite-utils imports pandas and numpy
whenever they are installed: that floor is measured in the same run (`import sqlite_utils` alone)
and is the only heavy import a listing command may have.
"""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from app.cli import LAZY_COMMANDS, cli

HEAVY = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "datasketch",
    "scipy",
    "pandas",
    "numpy",
    "sqlite_utils",
    "textual",
)

_PROBE = """
import json, sys
watched, out, *args = sys.argv[1:]
sys.argv = ["cra", *args]
from app.cli import main
try:
    main()
finally:
    with open(out, "w") as f:
        json.dump(sorted(m for m in json.loads(watched) if m in sys.modules), f)
"""


def _run_cra(
    tmp_path: Path, *args: str, watched: tuple[str, ...] = HEAVY
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `cra ARGS` in a new interpreter; its result and which `watched` modules it imported."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(watched), str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, set(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def sqlite_utils_floor() -> set[str]:
    """The heavy modules `import sqlite_utils` loads by itself in this environment."""
    code = "import json, sys, sqlite_utils; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout)) & set(HEAVY)


@pytest.fixture
def workspace_root(tmp_path: Path) -> Path:
    """An empty workspace made by `cra init`, as an operator makes one."""
    root = tmp_path / "ws"
    done, _ = _run_cra(tmp_path, "--workspace", str(root), "init")
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    """`cra --help` and `cra --version` open no workspace and load none of the heavy modules,
    sqlite-utils included."""
    done, loaded = _run_cra(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert loaded == set()


@pytest.mark.parametrize("args", [["adapters", "list"], ["train", "status"], ["ingest", "list"]])
def test_listing_commands_import_only_the_sqlite_utils_floor(
    tmp_path: Path, workspace_root: Path, sqlite_utils_floor: set[str], args: list[str]
) -> None:
    """A listing command loads no ML stack, no datasketch or scipy: only what sqlite-utils
    itself imports."""
    done, loaded = _run_cra(tmp_path, "--workspace", str(workspace_root), *args)
    assert done.returncode == 0, done.stderr
    assert "sqlite_utils" in loaded
    assert loaded <= sqlite_utils_floor


def test_sqlite_utils_imports_pandas_when_installed(sqlite_utils_floor: set[str]) -> None:
    """The floor the listing commands are held to is what it is: sqlite-utils imports pandas
    and numpy at its top when they are installed (they are, through `datasets`). Should that
    change, this fails and the listing commands' test becomes stricter by itself."""
    assert sqlite_utils_floor == {"sqlite_utils", "pandas", "numpy"}


def test_version_is_the_installed_distribution(tmp_path: Path) -> None:
    """`cra --version` prints the version the installed distribution records."""
    done, _ = _run_cra(tmp_path, "--version")
    assert done.stdout == f"cra, version {importlib.metadata.version('cra-console')}\n"


def test_help_imports_no_command_group(tmp_path: Path) -> None:
    """`cra --help` imports none of the modules its lazy commands live in."""
    modules = tuple(sorted({lazy.target.partition(":")[0] for lazy in LAZY_COMMANDS.values()}))
    done, loaded = _run_cra(tmp_path, "--help", watched=modules)
    assert done.returncode == 0, done.stderr
    assert loaded == set()


def test_help_lists_every_command(tmp_path: Path) -> None:
    """`cra --help`, without importing the command groups, still lists every command."""
    done, _ = _run_cra(tmp_path, "--help")
    listing = done.stdout.partition("Commands:\n")[2].splitlines()
    assert [line.split()[0] for line in listing] == cli.list_commands(click.Context(cli))
    assert set(LAZY_COMMANDS) <= {line.split()[0] for line in listing}


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_registered_help_is_the_commands_own(name: str) -> None:
    """Each lazy command's line in the listing is the one the loaded command itself gives, at
    every width click may shorten it to."""
    loaded = cli.load(name)
    stand_in = click.Command(name, help=LAZY_COMMANDS[name].help)
    for limit in (20, 45, 60, 80, 200):
        assert stand_in.get_short_help_str(limit) == loaded.get_short_help_str(limit)


def test_python_dash_m_app_is_cra(tmp_path: Path) -> None:
    """`python -m app` runs the same command as `cra` (here its version), so a checkout without
    the installed entry point still has one."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"cra, version {importlib.metadata.version('cra-console')}\n"
