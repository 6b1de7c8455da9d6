"""One task per commit, whatever package brought it.

A real repository is packaged twice with `cra package` (its full history, then a `--since`
slice), both packages are approved, every commit of both is gold-validated and `cra data build`
runs: the commits the two share are validated once (the sandbox ran in one package; the other's
rows reuse the result and say where it came from) and derived once, under one `repo:sha` key.
"""

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from workspaces import HARNESS, open_workspace

from app.cli import cli
from engine.core.workspace import DB_FILE, RUNS_DIR, Workspace
from engine.demo.repo import DemoCommit, build_demo_repo
from engine.harness.task_validation import task_name, validate_task
from engine.intake.approval import approve_package
from engine.intake.manifest import MANIFEST_FILE, parse_manifest
from engine.training_data.derive import build_training_data
from engine.training_data.review import draw_sample

pytestmark = pytest.mark.slow  # two packages built and every commit of both validated first

PYPROJECT = """\
[project]
name = "wordkit"
version = "0.1.0"
requires-python = ">=3.11"
license = "MIT"

[project.optional-dependencies]
test = ["pytest>=8"]

[tool.pytest.ini_options]
pythonpath = ["."]
testpaths = ["tests"]
"""
REVERSE = '''\
"""Reverse the words of a sentence."""


def reverse_words(text: str) -> str:
    """The words of `text` in reverse order, joined by single spaces."""
    return " ".join(reversed(text.split()))
'''
TEST_REVERSE = """\
from wordkit.reverse import reverse_words


def test_reverse_words():
    assert reverse_words("one two three") == "three two one"
"""
VOWELS = '''\
"""Count the vowels of a word."""


def count_vowels(word: str) -> int:
    """How many of the letters of `word` are vowels, in either case."""
    return sum(letter in "aeiou" for letter in word.lower())
'''
TEST_VOWELS = """\
from wordkit.vowels import count_vowels


def test_count_vowels():
    assert count_vowels("Banana") == 3
"""
REVERSE_V2 = '''\
"""Reverse the words of a sentence."""


def reverse_words(text: str, sep: str = " ") -> str:
    """The words of `text` in reverse order, joined by `sep`."""
    return sep.join(reversed(text.split()))
'''
TEST_REVERSE_V2 = (
    TEST_REVERSE
    + """

def test_reverse_words_with_a_separator():
    assert reverse_words("one two", sep="-") == "two-one"
"""
)
HISTORY = [
    DemoCommit(
        "Create the wordkit project",
        {"pyproject.toml": PYPROJECT, "wordkit/__init__.py": '"""Word helpers."""\n'},
    ),
    DemoCommit(
        "Add reverse_words for sentences",
        {"wordkit/reverse.py": REVERSE, "tests/test_reverse.py": TEST_REVERSE},
    ),
    DemoCommit(
        "Add count_vowels for single words",
        {"wordkit/vowels.py": VOWELS, "tests/test_vowels.py": TEST_VOWELS},
    ),
    DemoCommit(
        "Let reverse_words join with any separator",
        {"wordkit/reverse.py": REVERSE_V2, "tests/test_reverse.py": TEST_REVERSE_V2},
    ),
]


def _package(repo: Path, out: Path, wheels: Path, *extra: str) -> Result:
    args = ["package", str(repo), "--out", str(out), "--wheels", str(wheels), "--domain", "text"]
    result = CliRunner().invoke(cli, ["--workspace", "/nonexistent-cra-workspace", *args, *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> tuple[Path, str, str]:
    """A workspace with the repository approved twice (full history, then from day 3), every
    commit of both validated (the full package first); the root and the two digests."""
    base = tmp_path_factory.mktemp("twice")
    repo = base / "wordkit"
    build_demo_repo(repo, HISTORY)
    full, since = base / "drive" / "full", base / "drive" / "since"
    full.parent.mkdir()
    _package(repo, full, wheel_cache)
    _package(repo, since, wheel_cache, "--since", "2024-03-03")
    root = base / "ws"
    ws = open_workspace(root, HARNESS)
    digests = []
    for path in (full, since):
        digest = approve_package(ws, path).digest
        digests.append(digest)
        for commit in parse_manifest((path / MANIFEST_FILE).read_bytes()).commits:
            validate_task(ws, digest, commit.sha)
    ws.db.conn.close()
    return root, digests[0], digests[1]


def _copy(root: Path, tmp_path: Path) -> Workspace:
    """A workspace on a copy of `root`, for a test that writes. The database goes through
    SQLite's backup: an earlier test's connection to `root`, closed whenever it is collected,
    takes its WAL file away in the middle of a file copy."""
    copy = tmp_path / "ws"
    shutil.copytree(root, copy, symlinks=True, ignore=shutil.ignore_patterns(f"{DB_FILE}*"))
    with (
        closing(sqlite3.connect(root / DB_FILE)) as source,
        closing(sqlite3.connect(copy / DB_FILE)) as target,
    ):
        source.backup(target)
    return Workspace.open(copy)


def _shas(ws: Workspace, digest: str) -> list[str]:
    return [
        row[0] for row in ws.db.execute("SELECT sha FROM tasks WHERE package_digest = ?", [digest])
    ]


def test_a_commit_in_two_packages_is_validated_once(twice):
    """The slice's commits are the full package's: their rows copy its results, name it in
    `validated_in`, point at its report, and no sandbox run of the slice left artifacts."""
    root, full, since = twice
    ws = Workspace.open(root)
    shared = _shas(ws, since)
    assert len(shared) == 2 and set(shared) < set(_shas(ws, full))
    result = ("status", "reason", "fail_to_pass", "pass_to_pass", "flaky", "report_path")
    for sha in shared:
        rows = {row["package_digest"]: row for row in ws.db["tasks"].rows_where("sha = ?", [sha])}
        assert rows[full]["validated_in"] is None
        assert rows[since]["validated_in"] == full
        assert {name: rows[since][name] for name in result} == {
            name: rows[full][name] for name in result
        }
        assert rows[since]["status"] == "usable"
        assert not (root / RUNS_DIR / task_name(since, sha)).exists()
    reports = sorted((root / RUNS_DIR).glob("*/gold/report.json"))
    assert len(reports) == len(_shas(ws, full)) == 3


def test_the_cli_says_where_a_reused_validation_came_from(twice):
    """`cra harness validate` of the slice prints each reused result with the package it came
    from, and runs nothing (no runs folder of the slice appears)."""
    root, full, since = twice
    result = CliRunner().invoke(cli, ["--workspace", str(root), "harness", "validate", since[:12]])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[-1] == "2 of 2 commits are usable tasks (2 validated before; --again redoes them)"
    assert all(f"[validated in package {full[:12]}]" in line for line in lines[:2])
    assert not list((root / RUNS_DIR).glob(f"{since[:12]}-*"))


def test_a_commit_in_two_packages_is_derived_once(twice, tmp_path):
    """`cra data build` over both packages derives each commit once, under `repo:sha`; the
    slice reports its commits as already derived, no two items share stage and content, and a
    round of scope draws each commit once. The slice is named first: a commit is derived under
    the package that validated it, whatever order the packages come in."""
    root, full, since = twice
    ws = _copy(root, tmp_path)
    built = build_training_data(ws, [since[:12], full[:12]]).packages
    assert [report.digest for report in built] == [since, full]
    reports = {report.digest: report for report in built}
    assert (reports[full].tasks_derived, reports[full].tasks_already_derived) == (3, 0)
    assert (reports[since].tasks_derived, reports[since].tasks_already_derived) == (0, 2)
    assert reports[full].examples_added > 0 and reports[since].examples_added == 0
    derived = ws.db.execute("SELECT repo, sha, package_digest FROM derivations").fetchall()
    assert sorted(derived) == sorted(("wordkit", sha, full) for sha in _shas(ws, full))
    keys = {row[0] for row in ws.db.execute("SELECT DISTINCT task_key FROM examples")}
    assert keys == {f"wordkit:{sha}" for sha in _shas(ws, full)}
    twins = ws.db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM examples GROUP BY stage, content_hash "
        "HAVING COUNT(*) > 1)"
    ).fetchone()[0]
    assert twins == 0
    round_id = draw_sample(ws, "scope", 15, seed=1)
    drawn = ws.db.execute(
        "SELECT e.task_key FROM review_items i JOIN examples e ON e.id = i.example_id "
        "WHERE i.round_id = ?",
        [round_id],
    ).fetchall()
    assert sorted(key for (key,) in drawn) == sorted(keys)
    again = {report.digest: report for report in build_training_data(ws).packages}
    assert (again[full].tasks_already_derived, again[since].tasks_already_derived) == (3, 2)
    assert again[full].examples_added == again[since].examples_added == 0


def test_validating_the_first_package_again_updates_the_rows_that_reuse_it(twice, tmp_path):
    """A new own run of the full package's commit is carried to the slice's row, which still
    names the full package; validating the slice again still runs nothing."""
    root, full, since = twice
    ws = _copy(root, tmp_path)
    sha = _shas(ws, since)[0]
    ws.db.execute(
        "UPDATE tasks SET validated_at = '2000-01-01T00:00:00Z', reason = 'stale' "
        "WHERE package_digest = ? AND sha = ?",
        [since, sha],
    )
    validate_task(ws, full, sha)
    rows = {row["package_digest"]: row for row in ws.db["tasks"].rows_where("sha = ?", [sha])}
    assert rows[since]["validated_in"] == full
    assert rows[since]["reason"] == rows[full]["reason"] != "stale"
    assert rows[since]["validated_at"] == rows[full]["validated_at"]
    again = validate_task(ws, since, sha)
    assert (again.validated_in, again.package_digest, again.status) == (full, since, "usable")
    assert not (ws.root / RUNS_DIR / task_name(since, sha)).exists()
