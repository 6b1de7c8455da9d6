"""Campaigns as background jobs: gold runs to the end, resume after kill -9, pause and stop,
and starts and status polls from several processes at once.

Real processes throughout: the job and its workers are spawned as the console spawns them, the
attempts run pytest in the sandbox, and the command pipeline is a real script that logs every
call, so a resumed campaign can be checked for attempts run twice.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pilot_wait import wait_for
from races import end_jobs, last_job_id, race
from workspaces import HARNESS, open_workspace

from app.cli import cli
from engine.core.jobs import JobRow, job_alive, latest_job
from engine.core.workspace import Workspace
from engine.harness.campaigns import (
    CampaignSpec,
    campaign_row,
    create_campaign,
    pause_campaign,
    reconcile_campaigns,
    start_campaign,
    stop_campaign,
)
from engine.harness.package import HarnessError
from engine.intake.approval import approve_package

# A planner that logs each call, sleeps, then answers with an edit that breaks nothing and fixes
# nothing: every attempt of a usable task fails, slowly enough to be interrupted.
SLOW_PLANNER = """\
import json, sys, time
task = json.load(sys.stdin)
with open({log!r}, "a") as log:
    log.write(f"{{task['task']}} {{task['temperature']}} {{task['seed']}}\\n")
time.sleep({sleep})
plan = {{"summary": "add notes", "parts": [{{"id": "p1", "title": "notes",
        "steps": [{{"description": "write notes", "file": "NOTES.txt"}}]}}]}}
print(json.dumps({{"plan": plan, "edits": [{{"path": "NOTES.txt", "replace": "notes\\n"}}]}}))
"""


def _workspace(root: Path, extra: str = "") -> Workspace:
    return open_workspace(root, HARNESS + extra)


def _wait_status(ws: Workspace, campaign_id: int, wanted: set[str], limit_s: float = 180) -> str:
    def reached() -> str | None:
        reconcile_campaigns(ws)
        status = campaign_row(ws, campaign_id).status
        return status if status in wanted else None

    return wait_for(reached, f"campaign {campaign_id} to reach {wanted}", limit_s, every_s=0.2)


def _job(ws: Workspace, campaign_id: int) -> JobRow:
    """The campaign's newest job; there is one."""
    job = latest_job(ws, "campaign", campaign_id)
    assert job is not None
    return job


def _wait_job_gone(ws: Workspace, campaign_id: int, limit_s: float = 30) -> None:
    """The job records its end just before its process exits: give it that moment."""
    wait_for(
        lambda: not job_alive(_job(ws, campaign_id)),
        f"campaign {campaign_id}'s job to exit after it ended",
        limit_s,
    )


def _attempts(ws: Workspace, campaign_id: int) -> list[dict]:
    return list(ws.db["attempts"].rows_where("campaign_id = ?", [campaign_id], order_by="id"))


@pytest.mark.slow
def test_a_gold_campaign_resolves_every_usable_task(tmp_path: Path, valid_package: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    approve_package(ws, valid_package)
    result = CliRunner().invoke(
        cli,
        [
            "--workspace",
            str(ws.root),
            "harness",
            "run",
            "textkit",
            "--pipeline",
            "gold",
            "--temperatures",
            "0",
            "--workers",
            "2",
            "--wait",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "campaign 1 done" in result.output
    rows = _attempts(ws, 1)
    outcomes = {row["outcome"] for row in rows}
    assert outcomes <= {"resolved", "unusable"} and "resolved" in outcomes
    assert {row["state"] for row in rows} == {"done"}
    for row in rows:
        if row["outcome"] != "resolved":
            continue
        assert row["f2p_passed"] == row["f2p_total"] > 0
        assert row["file_recall"] == row["file_precision"] == 1.0
        folder = ws.root / row["artifacts"]
        assert "\n+++ b/textkit/" in (folder / "patch.diff").read_text()
        assert json.loads((folder / "report.json").read_text())["outcome"] == "resolved"
        assert json.loads(row["plan_json"])["parts"]
    assert {row["worker"] for row in rows} <= {1, 2}
    assert _job(ws, 1).status == "exited"
    derived = ws.db.execute(
        "SELECT COUNT(DISTINCT sha) FROM examples WHERE origin != 'plan_artifact'"
    ).fetchone()[0]
    assert derived == sum(row["outcome"] == "resolved" for row in rows) > 0
    artifacts = ws.db.execute("SELECT COUNT(*) FROM examples WHERE origin = 'plan_artifact'")
    assert artifacts.fetchone()[0] == 1, "the demo's good truncate plan is a meta_plan example"
    log = (ws.root / _job(ws, 1).log_path).read_text()
    assert "training data from textkit@" in log


def _slow_command_workspace(tmp_path: Path, short_package: Path, sleep: float) -> Workspace:
    log = tmp_path / "planner-calls.log"
    script = tmp_path / "planner.py"
    script.write_text(SLOW_PLANNER.format(log=str(log), sleep=sleep), encoding="utf-8")
    argv = json.dumps([sys.executable, str(script)])
    ws = _workspace(tmp_path / "ws", f"[harness.command]\nargv = {argv}\n")
    approve_package(ws, short_package)
    return ws


def _command_campaign(ws: Workspace, workers: int = 1) -> int:
    digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
    spec = CampaignSpec(
        packages=[digest],
        pipeline="command",
        model="agent",
        temperatures=[0.3, 0.9],
        seeds=[1],
        workers=workers,
    )
    return create_campaign(ws, spec, "tester")


def _wait_running_attempt(ws: Workspace, campaign_id: int, done_at_least: int) -> None:
    def running() -> bool:
        states = [row["state"] for row in _attempts(ws, campaign_id)]
        return states.count("done") >= done_at_least and "running" in states

    wait_for(running, f"an attempt running after {done_at_least} done", limit_s=180)


def _wait_planning(ws: Workspace, campaign_id: int, log: Path) -> None:
    """Until a running attempt, after at least one finished one, has called the planner."""

    def planning() -> bool:
        rows = _attempts(ws, campaign_id)
        calls = set(log.read_text().splitlines()) if log.exists() else set()
        running = [r for r in rows if r["state"] == "running"]
        return any(r["state"] == "done" for r in rows) and any(
            f"{r['task']} {r['temperature']} {r['seed']}" in calls for r in running
        )

    wait_for(planning, "a running attempt to reach the planner", limit_s=180)


@pytest.mark.slow
def test_a_campaign_killed_with_sigkill_resumes_without_redoing_finished_attempts(
    tmp_path: Path, short_package: Path
) -> None:
    ws = _slow_command_workspace(tmp_path, short_package, sleep=1.5)
    campaign_id = _command_campaign(ws)
    start_campaign(ws, campaign_id)
    _wait_planning(ws, campaign_id, tmp_path / "planner-calls.log")
    job = _job(ws, campaign_id)
    os.kill(job.pid, signal.SIGKILL)
    # Settled once its process is gone, run lock included: a killed process with threads shows
    # as a zombie a moment before its files are closed.
    interrupted = wait_for(
        lambda: reconcile_campaigns(ws), "reconcile to find the killed campaign", limit_s=10
    )
    assert interrupted == [campaign_id]
    row = campaign_row(ws, campaign_id)
    assert row.status == "interrupted" and f"pid {job.pid}" in row.reason
    finished_before = {
        r["id"]: r["finished_at"] for r in _attempts(ws, campaign_id) if r["state"] == "done"
    }
    assert finished_before
    assert "running" not in {r["state"] for r in _attempts(ws, campaign_id)}

    start_campaign(ws, campaign_id)
    assert _wait_status(ws, campaign_id, {"done", "failed"}) == "done"
    rows = _attempts(ws, campaign_id)
    assert {r["state"] for r in rows} == {"done"}
    for attempt_id, finished in finished_before.items():
        assert next(r for r in rows if r["id"] == attempt_id)["finished_at"] == finished
    calls = (tmp_path / "planner-calls.log").read_text().splitlines()
    planned = [r for r in rows if r["outcome"] != "unusable"]
    assert len(calls) == len(planned) + 1  # only the interrupted attempt was planned twice
    assert {r["outcome"] for r in planned} == {"failed"}


@pytest.mark.slow
def test_pause_lets_running_attempts_finish_and_stop_requeues_them(
    tmp_path: Path, short_package: Path
) -> None:
    ws = _slow_command_workspace(tmp_path, short_package, sleep=1.0)
    campaign_id = _command_campaign(ws)
    start_campaign(ws, campaign_id)
    _wait_running_attempt(ws, campaign_id, done_at_least=0)
    pause_campaign(ws, campaign_id)
    assert _wait_status(ws, campaign_id, {"paused", "failed"}) == "paused"
    states = [r["state"] for r in _attempts(ws, campaign_id)]
    assert "running" not in states and "pending" in states and "done" in states
    with pytest.raises(HarnessError, match="paused, not running"):
        pause_campaign(ws, campaign_id)

    start_campaign(ws, campaign_id)
    _wait_running_attempt(ws, campaign_id, done_at_least=0)
    stop_campaign(ws, campaign_id)
    assert _wait_status(ws, campaign_id, {"stopped", "failed"}) == "stopped"
    states = [r["state"] for r in _attempts(ws, campaign_id)]
    assert "running" not in states
    _wait_job_gone(ws, campaign_id)
    with pytest.raises(HarnessError, match="nothing to stop"):
        stop_campaign(ws, campaign_id)


def test_a_bad_campaign_request_is_a_clear_error(tmp_path: Path, valid_package: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    approve_package(ws, valid_package)
    runner = CliRunner()
    args = ["--workspace", str(ws.root), "harness", "run", "textkit"]
    result = runner.invoke(cli, [*args, "--temperatures", "0.3,5"])
    assert result.exit_code != 0
    assert "temperature 5.0 is outside 0–2" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["--workspace", str(ws.root), "harness", "run", "nosuch"])
    assert "no approved package is named 'nosuch'" in result.output
    with pytest.raises(HarnessError, match="there is no campaign 7"):
        start_campaign(ws, 7)


# -- several processes at once -------------------------------------------------------------

RACED = 1
"""The campaign the racers start: the first one of the workspace."""


def _raced_campaign(tmp_path: Path, valid_package: Path) -> Workspace:
    ws = _workspace(tmp_path / "ws")
    approve_package(ws, valid_package)
    digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
    spec = CampaignSpec(
        packages=[digest], pipeline="gold", model="gold", temperatures=[0], seeds=[1]
    )
    assert create_campaign(ws, spec, "tester") == RACED
    return ws


def _start(ws: Workspace, round_no: int, seen: object) -> str:
    return f"job {start_campaign(ws, RACED)}"


def _poll(ws: Workspace, round_no: int, seen: object) -> str:
    """`harness status` (or a console's poll) over and over while the other racer starts."""
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:
        if interrupted := reconcile_campaigns(ws):
            return f"declared dead: campaigns {interrupted}"
        time.sleep(0.002)
    return "ok"


def _kill_the_round(ws: Workspace, after_job: int) -> tuple[list[JobRow], list[int]]:
    """End the round's jobs (they would go on to run the campaign) and settle them: returns
    their rows and the campaigns the settling found interrupted (the raced one, so that it can
    start again in the next round)."""
    jobs = end_jobs(ws, "campaign", after_job)
    return jobs, reconcile_campaigns(ws)


@pytest.mark.slow
def test_two_starts_of_one_campaign_at_once_run_one_job(
    tmp_path: Path, valid_package: Path
) -> None:
    """Two processes start the same campaign at the same moment, round after round: each time
    exactly one job runs it, and the other start is refused, naming the job that runs."""
    ws = _raced_campaign(tmp_path, valid_package)
    mark = [last_job_id(ws)]

    def settle(round_no: int, outcomes: list[str]) -> None:
        jobs, settled = _kill_the_round(ws, mark[0])
        mark[0] = last_job_id(ws)
        started = [o for o in outcomes if o.startswith("job ")]
        assert len(jobs) == 1 and len(started) == 1, (round_no, outcomes, jobs)
        [refused] = [o for o in outcomes if o not in started]
        assert "still runs; one job per campaign" in refused, (round_no, refused)
        assert settled == [RACED]

    race(ws.root, [(None, _start), (None, _start)], settle)


@pytest.mark.slow
def test_a_status_poll_during_a_start_never_declares_it_dead(
    tmp_path: Path, valid_package: Path
) -> None:
    """While one process starts a campaign, another reconciles campaigns as fast as it can
    (`harness status`, the console's poll): the starting job is never declared dead, and the
    start always succeeds."""
    ws = _raced_campaign(tmp_path, valid_package)
    mark = [last_job_id(ws)]

    def settle(round_no: int, outcomes: list[str]) -> None:
        jobs, settled = _kill_the_round(ws, mark[0])
        mark[0] = last_job_id(ws)
        assert outcomes[1] == "ok", (round_no, outcomes)
        assert outcomes[0].startswith("job ") and len(jobs) == 1, (round_no, outcomes, jobs)
        assert settled == [RACED]

    race(ws.root, [(None, _start), (None, _poll)], settle)
