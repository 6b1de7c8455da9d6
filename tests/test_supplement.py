"""Yield: commits are validated as their task class allows, code-only commits borrow later tests.

The demo package gets a history of its own on top: a module with its test (gold), a code-only
change whose test a later commit adds (supplemented), that test-only commit (skipped), a
docstring-only change (unusable before anything runs) and a behaviour-preserving refactor no
later test tells apart (structural). Every run is real pytest in the harness sandbox.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from package_commits import add_task_commit
from pilot_wait import until
from test_harness_pane import console, open_pane, settled, text_of
from workspaces import HARNESS, open_workspace

from app.cli import cli
from engine.core.workspace import Workspace
from engine.harness.attempts import evaluate_attempt
from engine.harness.campaigns import create_campaign, parse_spec
from engine.harness.gold import gold_output
from engine.harness.package import CorpusPackage, load_package
from engine.harness.pipeline import PlannerTask
from engine.harness.supplement import SKIPPED_REASON, validate_commit
from engine.harness.task_validation import TaskValidation, find_commit
from engine.harness.task_yield import package_yield
from engine.intake.approval import approve_package
from engine.intake.manifest import ManifestCommit

SHOUT = '''\
"""Loud text."""


def shout(text: str) -> str:
    return text.upper()
'''
TEST_SHOUT = """\
from textkit.shout import shout


def test_shout_upper():
    assert shout("hi").startswith("HI")
"""
EXCLAIM = SHOUT.replace("text.upper()", 'text.upper() + "!"')
TEST_EXCLAIM = (
    TEST_SHOUT
    + """

def test_shout_exclaims():
    assert shout("hi") == "HI!"
"""
)
DOCUMENTED = EXCLAIM.replace(
    '    return text.upper() + "!"', '    """Upper case."""\n    return text.upper() + "!"'
)
REFACTORED = DOCUMENTED.replace('text.upper() + "!"', 'f"{text.upper()}!"')
WHISPER = (
    REFACTORED
    + """

def whisper(text: str) -> str:
    return text.lower()
"""
)


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> tuple[Workspace, str, dict[str, str]]:
    """The workspace, the approved package's digest and its new commits by role."""
    root = tmp_path_factory.mktemp("yield")
    package = copy_package(root)
    shas = {
        "gold": add_task_commit(
            package,
            {"textkit/shout.py": SHOUT, "tests/test_shout.py": TEST_SHOUT},
            "Add shout",
            ["tests/test_shout.py"],
        ),
        "code": add_task_commit(
            package, {"textkit/shout.py": EXCLAIM}, "Exclaim when shouting", []
        ),
        "tests": add_task_commit(
            package,
            {"tests/test_shout.py": TEST_EXCLAIM},
            "Test that shout exclaims",
            ["tests/test_shout.py"],
        ),
        "docstring": add_task_commit(
            package, {"textkit/shout.py": DOCUMENTED}, "Document shout", []
        ),
        "refactor": add_task_commit(
            package, {"textkit/shout.py": REFACTORED}, "Format shout's text with an f-string", []
        ),
        "uncollected": add_task_commit(
            package,
            {"textkit/shout.py": WHISPER, "tests/typing_example.py": "shouted: str = 'HI!'\n"},
            "Add whisper beside shout",
            ["tests/typing_example.py"],
        ),
    }
    ws = open_workspace(root / "ws", HARNESS)
    digest = approve_package(ws, package).digest
    return ws, digest, shas


def _row(ws: Workspace, sha: str) -> dict:
    [row] = ws.db["tasks"].rows_where("sha = ?", [sha])
    return row


def _structural(history, role: str) -> TaskValidation:
    """The commit of `role` validated, found structural only, and recorded so."""
    ws, digest, shas = history
    report = validate_commit(ws, digest, shas[role])
    assert (report.status, report.validation) == ("structural", "structural")
    row = _row(ws, shas[role])
    assert (row["status"], row["validation"]) == ("structural", "structural")
    return report


def test_an_old_manifest_entry_derives_its_task_class() -> None:
    """A manifest written before task classes loads, its class derived from the planning type;
    a recorded class that contradicts the planning type is refused."""
    entry = {
        "sha": "a" * 40,
        "parent": "b" * 40,
        "date": "2024-03-01T10:00:00Z",
        "subject": "Fix it",
        "files_changed": 1,
        "lines_added": 1,
        "lines_deleted": 0,
        "test_files": [],
    }
    classes = {
        kind: ManifestCommit.model_validate({**entry, "planning_type": kind}).task_class
        for kind in ("mixed", "test_plan", "step_plan", "meta_plan")
    }
    assert classes == {
        "mixed": "gold",
        "test_plan": "test_data",
        "step_plan": "code_only",
        "meta_plan": "code_only",
    }
    with pytest.raises(ValueError, match="does not fit planning type 'mixed'"):
        ManifestCommit.model_validate(
            {**entry, "planning_type": "mixed", "task_class": "code_only"}
        )


def test_a_code_only_commit_borrows_the_later_test_that_fails_at_its_parent(history) -> None:
    """The code-only change's FAIL_TO_PASS comes from the test a later commit added, run at both
    sides; the row says it was supplemented and from which commit and files."""
    ws, digest, shas = history
    report = validate_commit(ws, digest, shas["code"])
    assert (report.status, report.validation) == ("usable", "supplemented")
    assert report.fail_to_pass == ["tests/test_shout.py::test_shout_exclaims"]
    assert report.pass_to_pass == ["tests/test_shout.py::test_shout_upper"]
    assert report.tests_from == shas["tests"]
    row = _row(ws, shas["code"])
    assert (row["status"], row["validation"], row["tests_from"]) == (
        "usable",
        "supplemented",
        shas["tests"],
    )
    assert json.loads(row["test_files"]) == ["tests/test_shout.py"]
    candidate = report.artifacts / "candidate-1"
    assert (candidate / "before-1" / "junit.xml").is_file()
    assert [(run.side, run.selected) for run in report.runs] == [("before", None), ("after", None)]


def test_a_supplemented_task_is_attempted_against_the_borrowed_tests(history, tmp_path) -> None:
    """An attempt at a supplemented task lays the later commit's tests over its edits: the
    commit's own change resolves it."""
    ws, digest, shas = history
    validate_commit(ws, digest, shas["code"])
    attempt = {
        "package_digest": digest,
        "sha": shas["code"],
        "task": "supplemented-gold",
        "pipeline": "gold",
        "model": "gold",
        "temperature": 0.0,
        "seed": 1,
    }

    def propose(package: CorpusPackage, task: PlannerTask):
        commit = find_commit(package, shas["code"])
        return gold_output(package.repo, commit.parent, commit.sha, [])

    record = evaluate_attempt(ws, attempt, tmp_path / "attempt", propose)
    assert (record.outcome, record.f2p_passed, record.f2p_total) == ("resolved", 1, 1)


def test_a_test_only_commit_is_skipped_without_a_run(history) -> None:
    """A test-only commit is recorded as test-plan data, with nothing run."""
    ws, digest, shas = history
    report = validate_commit(ws, digest, shas["tests"])
    assert (report.status, report.validation, report.reason) == (
        "unusable",
        "skipped",
        SKIPPED_REASON,
    )
    assert report.runs == []
    assert _row(ws, shas["tests"])["validation"] == "skipped"


def test_a_docstring_only_change_is_unusable_before_any_run(history) -> None:
    """A change no test can tell apart is refused by the static checks, running nothing."""
    ws, digest, shas = history
    report = validate_commit(ws, digest, shas["docstring"])
    assert (report.status, report.validation) == ("unusable", "structural")
    assert "only comments, docstrings or formatting" in report.reason
    assert report.runs == []
    assert not (report.artifacts / "candidate-1").exists()


def test_a_refactor_no_later_test_tells_apart_is_structural(history) -> None:
    """A behaviour-preserving change with no later commit is validated structurally only: its
    status is neither usable nor unusable, and the reason says so."""
    report = _structural(history, "refactor")
    assert report.reason == (
        "validated structurally only: no later commit changes a test file importing a changed "
        "module"
    )


def test_a_commit_whose_test_files_pytest_does_not_collect_goes_on_as_code_only(history) -> None:
    """attrs's `tests/typing_example.py` is a typing fixture its pytest never collects: a commit
    changing code and only that file has no test of its own, so after the gold run finds nothing
    to collect it is validated as a code-only commit, and its reason says why."""
    report = _structural(history, "uncollected")
    assert report.reason == (
        "validated structurally only: no later commit changes a test file importing a changed "
        "module; the commit touches no test module that the repository's pytest configuration "
        "collects: tests/typing_example.py (its name does not match python_files (test_*.py "
        "*_test.py) of pyproject.toml)"
    )
    assert (report.artifacts.parent / "gold" / "report.json").is_file()


def test_validate_reports_the_skipped_and_yield_reports_the_kinds(history) -> None:
    """`cra harness validate` says how many test-only commits it skipped; `cra harness yield`
    counts kept → validated → usable by planning type and validation kind."""
    ws, digest, shas = history
    chosen = [arg for role in ("code", "tests", "refactor") for arg in ("--commit", shas[role])]
    result = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "harness", "validate", digest[:12], *chosen]
    )
    assert result.exit_code == 0, result.output
    assert "1 of 3 commits are usable tasks (skipped 1, structural 1, supplemented 1)" in (
        result.output
    )
    assert "1 test-only commits skipped: test-plan data, not validated" in result.output
    found = package_yield(ws, digest)
    step = next(row for row in found.rows if row.planning_type == "step_plan")
    assert (step.supplemented, step.structural) == (1, 1)
    shown = CliRunner().invoke(cli, ["--workspace", str(ws.root), "harness", "yield", "textkit"])
    assert shown.exit_code == 0, shown.output
    assert "usable (gold 0, supplemented 1)" in shown.output
    assert shown.output.splitlines()[1].split() == [
        "planning",
        "type",
        "kept",
        "validated",
        "usable",
        "gold",
        "supplemented",
        "structural",
        "unusable",
        "pending",
        "skipped",
    ]


def test_the_yield_counts_the_unusable_by_the_kind_of_their_reason(history) -> None:
    """Why commits are unusable, grouped (what the operator reads to know what to mend: old test
    dependencies, uncollected files, changes no test can tell apart), in the yield and its CLI."""
    ws, digest, shas = history
    for role in ("docstring", "tests"):
        validate_commit(ws, digest, shas[role])
    found = package_yield(ws, digest)
    assert found.unusable_by_reason == [("static-check", 1)]
    shown = CliRunner().invoke(cli, ["--workspace", str(ws.root), "harness", "yield", "textkit"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[-1] == "  unusable by reason: static-check 1"


def test_a_campaign_makes_no_attempt_at_a_test_only_commit(history) -> None:
    """A campaign's attempts skip test-only commits: one per other commit and temperature."""
    ws, digest, shas = history
    package: CorpusPackage = load_package(ws, digest)
    spec = parse_spec(
        {
            "packages": [digest],
            "pipeline": "gold",
            "model": "gold",
            "temperatures": [0.3],
            "seeds": [1],
        }
    )
    campaign_id = create_campaign(ws, spec, "tester")
    attempted = {
        row[0]
        for row in ws.db.execute("SELECT sha FROM attempts WHERE campaign_id = ?", [campaign_id])
    }
    test_only = {c.sha for c in package.manifest.commits if c.task_class == "test_data"}
    assert shas["tests"] in test_only
    assert attempted == {c.sha for c in package.manifest.commits} - test_only


async def test_the_harness_pane_shows_each_packages_yield(history) -> None:
    """The Harness pane's progress shows the campaign's package yield: kept → validated →
    usable, gold and supplemented apart, and why the unusable are."""
    ws, digest, shas = history
    for role in ("code", "docstring"):
        validate_commit(ws, digest, shas[role])
    spec = parse_spec(
        {
            "packages": [digest],
            "pipeline": "gold",
            "model": "gold",
            "temperatures": [0.0],
            "seeds": [1],
        }
    )
    campaign_id = create_campaign(ws, spec, "tester")
    app = console(ws)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_pane(pilot)
        await settled(pilot, screen, campaign_id)
        await until(pilot, lambda: "supplemented 1" in text_of(screen, "#yield"), "the yield")
        shown = text_of(screen, "#yield")
    assert "Yield" in shown
    assert "→ 1 usable (gold 0, supplemented 1)" in shown
    assert "unusable by reason: static-check 1" in shown
