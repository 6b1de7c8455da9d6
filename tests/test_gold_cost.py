"""What gold validation costs: runs per side, reruns of candidates only, the two sides at once,
a stopped `cra harness validate` going on where it stopped, commit selection, and one
temperature for gold campaigns. Real packages, real pytest runs in the sandbox."""

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pilot_wait import wait_for
from workspaces import HARNESS, open_workspace

from app.cli import cli
from engine.core.workspace import Workspace
from engine.demo.hostile import commit_files, edit_manifest
from engine.demo.repo import demo_git
from engine.harness.campaigns import CampaignSpec, create_campaign
from engine.harness.package import HarnessError, load_package
from engine.harness.selection import CommitSelection, select_commits
from engine.harness.task_validation import TaskValidation, parallel_sides, validate_task
from engine.intake.approval import approve_package

PAUSE = '''\
"""Wait a little."""


def pause() -> str:
    return "done"
'''

# The module sleeps while it is collected, on both sides (the parent cannot import
# textkit.pause, but only after the sleep), so the two sides' sessions last over a second each.
TEST_PAUSE = """\
import time

time.sleep(1.5)

from textkit.pause import pause


def test_pause():
    assert pause() == "done"
"""


@pytest.fixture(scope="module")
def approved(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> tuple[Workspace, str, dict[str, str]]:
    """The demo package plus a commit whose tests take over a second, approved into a workspace
    with the default harness settings; subjects → shas."""
    root = tmp_path_factory.mktemp("cost")
    package = copy_package(root)
    parent = demo_git(package / "repo", "rev-parse", "HEAD")
    subject = "Add pause with a slow test"
    sha = commit_files(
        package, {"textkit/pause.py": PAUSE, "tests/test_pause.py": TEST_PAUSE}, subject
    )
    entry = {
        "sha": sha,
        "parent": parent,
        "date": "2024-04-21T10:00:00Z",
        "subject": subject,
        "files_changed": 2,
        "lines_added": 16,
        "lines_deleted": 0,
        "planning_type": "step_plan",
        "test_files": ["tests/test_pause.py"],
    }
    edit_manifest(package, lambda data: data["commits"].append(entry))
    ws = Workspace.open(root / "workspace")
    digest = approve_package(ws, package).digest
    manifest = json.loads((package / "manifest.json").read_text())
    return ws, digest, {c["subject"]: c["sha"] for c in manifest["commits"]}


def _run_folders(report: TaskValidation) -> list[str]:
    """The pytest runs the validation made, by their artifact folders (`<side>-<n>`)."""
    return sorted(p.name for p in report.artifacts.iterdir() if p.name.rpartition("-")[2].isdigit())


def test_a_usable_commit_reruns_only_its_candidates(approved):
    """Each side's files run once; the one rerun of each side (flaky_runs = 2) names only the
    would-be FAIL_TO_PASS, by node id: the PASS_TO_PASS tests are not run again."""
    ws, digest, shas = approved
    report = validate_task(ws, digest, shas["Fold accented letters in slugify"])
    assert report.status == "usable" and len(report.pass_to_pass) == 2
    assert _run_folders(report) == ["after-1", "after-2", "before-1", "before-2"]
    runs = {f"{run.side}-{run.index}": run for run in report.runs}
    assert runs["after-1"].selected is None and runs["before-1"].selected is None
    assert runs["after-2"].selected == runs["before-2"].selected == report.fail_to_pass
    assert runs["after-2"].outcomes == {t: "passed" for t in report.fail_to_pass}
    assert runs["before-2"].outcomes == {t: "failed" for t in report.fail_to_pass}


@pytest.mark.slow
def test_a_commit_without_candidates_runs_each_side_once(approved):
    """Tests that already pass at the parent leave nothing a rerun could make usable: one run
    per side."""
    ws, digest, shas = approved
    report = validate_task(ws, digest, shas["Cover slugify edge cases in tests"])
    assert (report.status, report.reason) == ("unusable", "its tests already pass at the parent")
    assert _run_folders(report) == ["after-1", "before-1"]


def _session(folder: Path) -> tuple[datetime, datetime]:
    """When the pytest session of a run started and ended, from its JUnit report."""
    root = ET.parse(folder / "junit.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    start = datetime.fromisoformat(suite.get("timestamp", ""))
    return start, start + timedelta(seconds=float(suite.get("time", "0")))


@pytest.mark.slow
def test_the_two_sides_run_at_once(approved):
    """Where two cores and memory for two runs are there, the parent's and the commit's first
    runs overlap in time (each spends 1.5 s collecting)."""
    ws, digest, shas = approved
    if not parallel_sides(ws.config.harness.test_memory_mb):
        pytest.skip("this machine has one core or too little memory for two runs at once")
    report = validate_task(ws, digest, shas["Add pause with a slow test"])
    assert report.fail_to_pass == ["tests/test_pause.py::test_pause"]
    (after_start, after_end), (before_start, before_end) = (
        _session(report.artifacts / name) for name in ("after-1", "before-1")
    )
    assert max(after_start, before_start) < min(after_end, before_end)


def _short_workspace(tmp_path: Path, short_package: Path) -> tuple[Workspace, str]:
    ws = open_workspace(tmp_path / "ws", HARNESS)
    return ws, approve_package(ws, short_package).digest


def _validated_at(ws: Workspace) -> dict[str, str]:
    return {row["sha"]: row["validated_at"] for row in ws.db["tasks"].rows}


@pytest.mark.slow
def test_a_killed_validate_goes_on_where_it_stopped(tmp_path, short_package):
    """`cra harness validate` killed after its first commit, run again, shows that commit as
    validated before and validates only the rest; --again redoes a named one."""
    ws, digest = _short_workspace(tmp_path, short_package)
    chosen = [c.sha for c in load_package(ws, digest).manifest.commits[:3]]
    argv = [sys.executable, "-m", "app", "--workspace", str(ws.root), "harness", "validate"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [*argv, digest[:12], "--limit", "3"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: ws.db["tasks"].count >= 1, "the first commit's record", limit_s=120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    first = _validated_at(ws)
    assert len(first) < 3, "the run was killed before it finished"

    result = CliRunner().invoke(cli, [*argv[3:], digest[:12], "--limit", "3"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for sha, when in first.items():
        assert any(line.startswith(sha[:12]) and "[validated before]" in line for line in lines)
        assert _validated_at(ws)[sha] == when
    assert set(_validated_at(ws)) == set(chosen)
    assert f"({len(first)} validated before; --again redoes them)" in lines[-1]

    again = CliRunner().invoke(cli, [*argv[3:], digest[:12], "--commit", chosen[0][:7], "--again"])
    assert again.exit_code == 0, again.output
    assert "[validated before]" not in again.stdout
    assert _validated_at(ws)[chosen[0]] > first.get(chosen[0], "")


@pytest.mark.slow
def test_a_record_from_another_environment_is_validated_again(tmp_path, short_package):
    """A recorded validation whose report was made with another environment, or whose report
    is gone, does not count as done."""
    ws, digest = _short_workspace(tmp_path, short_package)
    sha = load_package(ws, digest).manifest.commits[0].sha
    argv = ["--workspace", str(ws.root), "harness", "validate", digest[:12], "--commit", sha]
    assert CliRunner().invoke(cli, argv).exit_code == 0
    [row] = ws.db["tasks"].rows
    report = ws.root / row["report_path"]
    data = json.loads(report.read_text())
    report.write_text(json.dumps({**data, "env_key": "another-env"}))
    redone = CliRunner().invoke(cli, argv)
    assert redone.exit_code == 0 and "[validated before]" not in redone.stdout
    assert json.loads(report.read_text())["env_key"] == data["env_key"]
    assert "[validated before]" in CliRunner().invoke(cli, argv).stdout


def test_commits_are_chosen_by_short_sha_date_and_count(tmp_path, short_package):
    """--commit (short shas, repeatable), --since (a date) and --limit narrow the manifest's
    commits in its order; with several packages a commit none has is refused."""
    ws, digest = _short_workspace(tmp_path, short_package)
    package = load_package(ws, digest)
    commits = package.manifest.commits
    shas = [c.sha for c in commits]

    def chosen(**given: object) -> list[str]:
        selection = CommitSelection.model_validate(given)
        return [c.sha for c in select_commits([package], selection)[digest]]

    assert chosen() == shas
    assert chosen(limit=2) == shas[:2]
    assert chosen(commits=[shas[2][:6], shas[0][:8], shas[2]]) == [shas[2], shas[0]]
    since = commits[3].date.date()
    assert chosen(since=since.isoformat()) == [c.sha for c in commits if c.date.date() >= since]
    assert chosen(since=since.isoformat(), limit=1) == [shas[3]]
    with pytest.raises(HarnessError, match="is not in the manifest"):
        chosen(commits=["ffff0000"])
    with pytest.raises(HarnessError, match="is in none of the packages textkit@"):
        select_commits([package, package], CommitSelection(commits=["ffff0000"]))


def test_a_campaign_covers_only_its_chosen_commits(tmp_path, short_package):
    """A campaign's selection decides which commits get attempts."""
    ws, digest = _short_workspace(tmp_path, short_package)
    shas = [c.sha for c in load_package(ws, digest).manifest.commits]
    spec = CampaignSpec(
        packages=[digest],
        pipeline="gold",
        model="gold",
        temperatures=[0.0],
        seeds=[1],
        selection=CommitSelection(commits=[shas[1][:7]]),
    )
    campaign_id = create_campaign(ws, spec, "tester")
    rows = list(ws.db["attempts"].rows_where("campaign_id = ?", [campaign_id]))
    assert [row["sha"] for row in rows] == [shas[1]]
    none_left = spec.model_copy(update={"selection": CommitSelection(since="2099-01-01")})
    with pytest.raises(HarnessError, match="leaves no commit to attempt"):
        create_campaign(ws, none_left, "tester")


@pytest.mark.slow
def test_a_gold_campaign_runs_one_temperature(tmp_path, short_package):
    """`cra harness run` gives a gold campaign one temperature by default (the pipeline is
    deterministic) and refuses several; here limited to one commit by a short sha."""
    ws, digest = _short_workspace(tmp_path, short_package)
    sha = load_package(ws, digest).manifest.commits[0].sha
    args = ["--workspace", str(ws.root), "harness", "run", "textkit"]
    refused = CliRunner().invoke(cli, [*args, "--temperatures", "0.3,0.6"])
    assert refused.exit_code == 1
    assert "gold pipeline gives the same answer at every temperature" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    result = CliRunner().invoke(cli, [*args, "--commit", sha[:7], "--wait"])
    assert result.exit_code == 0, result.output
    rows = list(ws.db["attempts"].rows)
    assert [(row["sha"], row["temperature"], row["state"]) for row in rows] == [(sha, 0.0, "done")]
