"""The recovery drill: a harness campaign, a training run and a promotion are each killed
mid-way; the console, opened afresh, shows each in its true state, and its keys resume or retry
each to the end, with nothing lost and nothing counted twice.

Everything is real (the package, the sandboxed tests, the tiny model training on the CPU, the
jobs and their SIGKILL) except the inference server, which is the local vLLM stand-in.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from eval_fixtures import add_version, pass_gate
from fake_vllm import FakeVllm
from pilot_wait import until, wait_for
from test_adapter_switch import DIE_AFTER_LOAD
from test_campaigns import SLOW_PLANNER
from textual.pilot import Pilot
from textual.widgets import DataTable

from app.app import CraApp
from engine.adapters.activation import history, promote, resolve
from engine.core.jobs import JobRow, job_alive, latest_job
from engine.core.workspace import Workspace
from engine.harness.campaigns import CampaignSpec, create_campaign, start_campaign
from engine.harness.task_validation import validate_task
from engine.intake.approval import approve_package
from engine.serving.command import free_base_port
from engine.training.registry import last_step
from engine.training.runs import start_run
from engine.training.tiny_model import build_tiny_model
from engine.training_data.curate import curate
from engine.training_data.derive import build_training_data
from engine.training_data.review import decide, draw_sample
from screens.widgets.confirm import ConfirmScreen

pytestmark = pytest.mark.slow  # a campaign, a training run and an eval killed and finished

SIZE = (140, 40)
wait = partial(until, limit_s=240)
"""`until` with room for the drill's campaign, run and switch on a loaded machine."""


def _wait(what: str, check: Callable[[], bool], limit_s: float = 240) -> None:
    wait_for(check, what, limit_s, every_s=0.1)


def _planning(ws: Workspace, calls: Path) -> bool:
    """Whether a running attempt, after a finished planned one, has called the planner."""
    if not calls.exists() or not ws.db["attempts"].count_where("outcome = 'failed'"):
        return False
    logged = set(calls.read_text().splitlines())
    return any(
        f"{row['task']} {row['temperature']} {row['seed']}" in logged
        for row in ws.db["attempts"].rows_where("state = 'running'")
    )


def _kill(job: JobRow | None) -> None:
    assert job is not None and job.pid is not None
    os.killpg(job.pid, signal.SIGKILL)
    _wait("the killed job to go", lambda: not job_alive(job), 20)


def _rows(pilot: Pilot, table: str) -> list[str]:
    widget = pilot.app.screen.query_one(table, DataTable)
    return [" ".join(map(str, widget.get_row_at(n))) for n in range(widget.row_count)]


def _workspace(tmp_path: Path, short_package: Path, vllm_url: str) -> Workspace:
    root = tmp_path / "ws"
    build_tiny_model(root / "models/tiny")
    planner = tmp_path / "planner.py"
    calls = tmp_path / "planner-calls.log"
    planner.write_text(SLOW_PLANNER.format(log=str(calls), sleep=1.0), encoding="utf-8")
    (root / "cra.toml").write_text(
        "[usb]\nmount_roots = []\n"
        "[harness]\nflaky_runs = 1\ntest_timeout_s = 60\n"
        f"[harness.command]\nargv = {json.dumps([sys.executable, str(planner)])}\n"
        "[curation]\nmax_domain_share = 1.0\neval_share = 0.25\n"
        "[training_data]\nreview_min_sample = 1\n"  # the demo package's rounds are small
        '[training.base_models]\nreasoning = "models/tiny"\n'
        f'[serving]\nbase_url = "{vllm_url}"\ntimeout_s = 5\n'
        '[serving.bases]\nreasoning = "models/tiny"\n',
        encoding="utf-8",
    )
    ws = Workspace.open(root)
    digest = approve_package(ws, short_package).digest
    for commit in json.loads((short_package / "manifest.json").read_text())["commits"]:
        validate_task(ws, digest, commit["sha"])
    build_training_data(ws)
    round_id = draw_sample(ws, "scope", 15, seed=0)
    for position in range(1, ws.db["review_items"].count_where("round_id = ?", [round_id]) + 1):
        decide(ws, round_id, position, "accept")
    assert [d.id for d in curate(ws, stage="scope", format="sft").curated] == ["scope-d1"]
    return ws


async def test_killed_work_is_shown_true_and_finishes_once(
    tmp_path: Path, short_package: Path
) -> None:
    base = str(tmp_path / "ws" / "models/tiny")
    port = free_base_port()
    with FakeVllm(base, port=port) as fake:
        ws = _workspace(tmp_path, short_package, fake.url)
        digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
        calls = tmp_path / "planner-calls.log"

        # The campaign: killed (job and workers) while an attempt is with the planner.
        spec = CampaignSpec(
            packages=[digest],
            pipeline="command",
            model="agent",
            temperatures=[0.3],
            seeds=[1, 2],
            workers=1,
        )
        campaign_id = create_campaign(ws, spec, "night")
        start_campaign(ws, campaign_id)
        _wait("an attempt with the planner after one finished", lambda: _planning(ws, calls))
        _kill(latest_job(ws, "campaign", campaign_id))
        finished = dict(
            ws.db.execute("SELECT id, finished_at FROM attempts WHERE state = 'done'").fetchall()
        )

        # The training run: killed after its first checkpoint. Forced: the stand-in server
        # answers on the base's port, which the guardrail reads as a server holding the GPU.
        run_id = start_run(
            ws, "scope-d1", "scope", overrides={"max_steps": 24, "save_steps": 2}, force=True
        )
        run_dir = ws.root / "training" / str(run_id)
        _wait("step 3", lambda: (step := last_step(run_dir)) is not None and step.step >= 3)
        _kill(latest_job(ws, "training", run_id))

        # The promotion: precision-v2 loaded on the server, the process killed before the flip.
        for version in (1, 2):
            add_version(ws, "precision", version)
        promote(ws, "precision-v1")
        pass_gate(ws, "precision-v2", "precision-v1")
        crashed = subprocess.run(
            [sys.executable, "-c", DIE_AFTER_LOAD, str(ws.root), "precision-v2"],
            capture_output=True,
        )
        assert crashed.returncode == 9, crashed.stderr
        assert "precision-v2" in fake.loaded and resolve(ws, "precision") == "precision-v1"
        ws.db.conn.close()

    # The console, opened afresh, shows each as it truly is, and resumes each. The server is
    # down while the run resumes (a supervisor stops it while a run holds the GPU, and the
    # guardrail refuses to train beside one) and back, with nothing loaded, for the switch.
    ws = Workspace.open(ws.root)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(
            pilot,
            lambda: any("interrupted" in row for row in _rows(pilot, "#campaigns")),
            "the interrupted campaign",
        )
        assert ws.db["attempts"].count_where("state = 'running'") == 0
        await pilot.press("s")
        await wait(
            pilot,
            lambda: ws.db["campaigns"].get(campaign_id)["status"] == "done",
            "the campaign to finish",
        )

        await pilot.press("5")
        await wait(
            pilot,
            lambda: any(" failed " in f" {row} " for row in _rows(pilot, "#runs")),
            "the failed run",
        )
        await pilot.press("u")
        await wait(
            pilot,
            lambda: ws.db["training_runs"].get(run_id)["status"] == "done",
            "the resumed run to finish",
        )

        with FakeVllm(base, port=port) as restarted:
            await pilot.press("6")
            await wait(
                pilot,
                lambda: [h.action for h in history(ws, "precision")] == ["promote", "interrupted"],
                "the interrupted switch in the history",
            )
            await pilot.press("down", "down")
            await wait(pilot, lambda: len(_rows(pilot, "#versions")) == 2, "precision's versions")
            assert any("interrupted" in row for row in _rows(pilot, "#history"))
            await pilot.press("tab")
            await pilot.press("p")
            await wait(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question")
            await pilot.press("y")
            await wait(pilot, lambda: resolve(ws, "precision") == "precision-v2", "the promotion")

    # Nothing lost, nothing counted twice.
    attempts = list(ws.db["attempts"].rows_where("campaign_id = ?", [campaign_id]))
    assert {row["state"] for row in attempts} == {"done"}
    for attempt_id, finished_at in finished.items():
        assert ws.db["attempts"].get(attempt_id)["finished_at"] == finished_at
    planned = [row for row in attempts if row["outcome"] != "unusable"]
    assert len(calls.read_text().splitlines()) == len(planned) + 1
    run = ws.db["training_runs"].get(run_id)
    assert (run["status"], run["step"]) == ("done", 24)
    assert [r["name"] for r in ws.db["adapter_versions"].rows_where("stage = 'scope'")] == [
        "scope-v1"
    ]
    steps = [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 24
    assert restarted.load_requests == ["precision-v2"]
    assert [h.action for h in history(ws, "precision")] == [
        "promote",
        "interrupted",
        "promote",
    ]
