"""Gold validation on the demo package: real fixes give FAIL_TO_PASS, flaky tests are excluded."""

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from engine.core.workspace import Workspace
from engine.demo.hostile import commit_files, edit_manifest
from engine.demo.repo import demo_git
from engine.harness.package import HarnessError, find_package
from engine.harness.task_validation import TaskValidation, resolve_commit, validate_task
from engine.intake.approval import approve_package

SHOUT = '''\
"""Loud text."""


def shout(text: str) -> str:
    return text.upper() + "!"
'''

# The counter lives in the checkout, which one side's repeated runs share: the test passes on
# the first run and fails on the second.
TEST_SHOUT = """\
from pathlib import Path

from textkit.shout import shout


def test_shout():
    assert shout("hi") == "HI!"


def test_shout_is_stable():
    counter = Path(__file__).with_name("shout_runs.txt")
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert runs % 2 == 0
"""


def _add_flaky_commit(package: Path) -> None:
    repo = package / "repo"
    parent = demo_git(repo, "rev-parse", "HEAD")
    sha = commit_files(
        package,
        {"textkit/shout.py": SHOUT, "tests/test_shout.py": TEST_SHOUT},
        "Add shout with a flaky test",
    )
    entry = {
        "sha": sha,
        "parent": parent,
        "date": "2024-03-21T10:00:00Z",
        "subject": "Add shout with a flaky test",
        "files_changed": 2,
        "lines_added": 19,
        "lines_deleted": 0,
        "planning_type": "step_plan",
        "test_files": ["tests/test_shout.py"],
    }
    edit_manifest(package, lambda data: data["commits"].append(entry))


@pytest.fixture(scope="module")
def approved(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> tuple[Workspace, str, dict[str, str]]:
    """One workspace with the demo package plus a flaky commit approved; subjects → shas."""
    root = tmp_path_factory.mktemp("gold")
    package = copy_package(root)
    _add_flaky_commit(package)
    ws = Workspace.open(root / "workspace")
    digest = approve_package(ws, package).digest
    manifest = json.loads((package / "manifest.json").read_text())
    return ws, digest, {c["subject"]: c["sha"] for c in manifest["commits"]}


def _validate(approved: tuple[Workspace, str, dict[str, str]], subject: str) -> TaskValidation:
    ws, digest, shas = approved
    return validate_task(ws, digest, shas[subject])


def test_a_real_fix_gives_fail_to_pass(approved):
    report = _validate(approved, "Fold accented letters in slugify")
    assert (report.status, report.flaky) == ("usable", [])
    assert report.fail_to_pass == ["tests/test_slug.py::test_slugify_folds_accents"]
    assert report.pass_to_pass == [
        "tests/test_slug.py::test_slugify_joins_words",
        "tests/test_slug.py::test_slugify_keeps_digits",
    ]
    ws = approved[0]
    [row] = ws.db["tasks"].rows_where("sha = ?", [report.sha])
    assert (row["status"], json.loads(row["fail_to_pass"])) == ("usable", report.fail_to_pass)
    assert TaskValidation.model_validate_json((report.artifacts / "report.json").read_text()) == (
        report
    )
    assert "+def test_slugify_folds_accents" in (report.artifacts / "patch.diff").read_text()
    assert "<testsuite" in (report.artifacts / "before-1" / "junit.xml").read_text()
    assert "passed" in (report.artifacts / "after-2" / "output.txt").read_text()


@pytest.mark.slow
def test_a_new_module_is_fail_to_pass_for_every_test(approved):
    report = _validate(approved, "Add truncate with an ellipsis")
    assert report.status == "usable"
    assert [t.split("::")[-1] for t in report.fail_to_pass] == [
        "test_long_text_gets_ellipsis",
        "test_short_text_unchanged",
        "test_width_must_be_positive",
    ]
    assert report.pass_to_pass == []


@pytest.mark.slow
def test_tests_that_already_pass_at_the_parent_make_the_commit_unusable(approved):
    report = _validate(approved, "Cover slugify edge cases in tests")
    assert (report.status, report.reason) == ("unusable", "its tests already pass at the parent")
    assert report.reason_kind == "already-passing"
    assert report.fail_to_pass == []
    assert "tests/test_slug.py::test_slugify_empty_title" in report.pass_to_pass
    ws = approved[0]
    [row] = ws.db["tasks"].rows_where("sha = ?", [report.sha])
    assert (row["status"], row["reason"]) == ("unusable", report.reason)


@pytest.mark.slow
def test_a_flaky_test_is_quarantined(approved):
    report = _validate(approved, "Add shout with a flaky test")
    assert report.status == "usable"
    assert report.flaky == ["tests/test_shout.py::test_shout_is_stable"]
    assert report.fail_to_pass == ["tests/test_shout.py::test_shout"]
    assert report.pass_to_pass == []
    ws = approved[0]
    [row] = ws.db["tasks"].rows_where("sha = ?", [report.sha])
    assert json.loads(row["flaky"]) == report.flaky


@pytest.mark.slow
def test_revalidation_replaces_the_record(approved):
    first = _validate(approved, "Fold accented letters in slugify")
    second = _validate(approved, "Fold accented letters in slugify")
    assert second.fail_to_pass == first.fail_to_pass
    ws = approved[0]
    assert ws.db["tasks"].count_where("sha = ?", [second.sha]) == 1
    assert sorted(p.name for p in second.artifacts.iterdir() if p.name.startswith("after")) == [
        "after-1",
        "after-2",
    ]


@pytest.mark.slow
def test_cli_validates_named_commits_and_refuses_unknown_packages(approved):
    ws, digest, shas = approved
    runner = CliRunner()
    sha = shas["Cover slugify edge cases in tests"]
    args = ["--workspace", str(ws.root), "harness", "validate"]
    result = runner.invoke(cli, [*args, digest[:12], "--commit", sha])
    assert result.exit_code == 0, result.output
    assert f"{sha[:12]} unusable" in result.stdout
    assert (
        "(test-only: it changes tests only: test-plan data, no failing test for a change to fix)"
        in (result.stdout)
    )
    assert "0 of 1 commits are usable tasks (skipped 1)" in result.stdout

    missing = runner.invoke(cli, [*args, "nosuch"])
    assert missing.exit_code == 1
    assert "no approved package is named 'nosuch'" in missing.stderr


def test_a_commit_is_named_by_a_unique_prefix_of_its_sha(approved):
    """`harness validate --commit` takes a short sha, as git does; an unknown one or one too
    short to be a sha is one error line."""
    ws, digest, shas = approved
    sha = shas["Cover slugify edge cases in tests"]
    args = ["--workspace", str(ws.root), "harness", "validate", digest[:12]]
    result = CliRunner().invoke(cli, [*args, "--commit", sha[:7]])
    assert result.exit_code == 0, result.output
    assert f"{sha[:12]} unusable" in result.stdout
    for given, says in (("ffff" + "0" * 36, "is not in the manifest"), ("ab", "at least 4")):
        refused = CliRunner().invoke(cli, [*args, "--commit", given])
        assert refused.exit_code == 1, refused.output
        assert says in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_an_ambiguous_short_sha_is_an_error_naming_the_candidates(approved):
    """A prefix two commits share names both rather than picking one (two of the manifest's
    commits are given shas with the same first digits)."""
    ws, digest, _ = approved
    package = find_package(ws, digest)
    first, second, *rest = package.manifest.commits
    twins = [
        first.model_copy(update={"sha": "abcd1" + first.sha[5:]}),
        second.model_copy(update={"sha": "abcd2" + second.sha[5:]}),
    ]
    manifest = package.manifest.model_copy(update={"commits": [*twins, *rest]})
    twinned = dataclasses.replace(package, manifest=manifest)
    with pytest.raises(HarnessError, match="commit abcd is ambiguous .* abcd1.*, abcd2"):
        resolve_commit(twinned, "abcd")
    assert resolve_commit(twinned, "ABCD2") == twins[1]
