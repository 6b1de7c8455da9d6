"""Snapshots of the Harness pane and its drill-down at a fixed terminal size.

Deterministic by construction: every timestamp in the database is fixed, the pane's clock is
stopped at NOW (throughput, ETA and worker times follow), and each screenshot waits until the
poll has shown the campaign and the attempt list has every line in view. Regenerate with
`pytest tests/test_harness_snapshots.py --snapshot-update`, then read the SVGs' text.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_harness_pane import console, live_campaign, settled
from test_harness_progress import (
    DIFF,
    PLAN,
    add_campaign,
    add_job,
    bulk_attempts,
    bulk_finished_at,
    write_artifacts,
)
from textual.pilot import Pilot
from textual.widgets import DataTable
from workspaces import open_workspace

from app.app import CraApp
from engine.core.workspace import Workspace
from engine.harness.progress import TEST_OUTPUT
from screens.harness import HarnessScreen
from screens.harness_attempt import AttemptScreen
from screens.widgets.attempt_list import AttemptList

SIZE = (120, 40)
OUTPUT = """\
============================= test session starts ==============================
collected 2 items

tests/test_slug.py::test_unicode PASSED                                  [ 50%]
tests/test_slug.py::test_ascii PASSED                                    [100%]

============================== 2 passed in 0.04s ===============================
"""


@pytest.fixture
def workspace_root(tmp_path: Path) -> Workspace:
    return open_workspace(tmp_path / "workspace")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def live_app(workspace_root: Workspace, sleeper: subprocess.Popen) -> CraApp:
    """The known campaign running with two workers, its second attempt holding artifacts."""
    _, ids = live_campaign(workspace_root, sleeper)
    folder = "runs/task/attempts/2"
    with workspace_root.db.conn:
        workspace_root.db["attempts"].update(
            ids[1],
            {
                "plan_json": json.dumps(PLAN),
                "artifacts": folder,
                "prompt_tokens": 1834,
                "completion_tokens": 412,
                "test_duration_s": 4.2,
                "p2p_passed": 12,
                "p2p_total": 12,
                "file_precision": 0.5,
                "file_recall": 1.0,
                "symbol_precision": 1.0,
                "symbol_recall": 0.5,
                "order_agreement": None,
            },
        )
    write_artifacts(
        workspace_root,
        folder,
        {"patch.diff": DIFF, TEST_OUTPUT: OUTPUT, "raw.txt": json.dumps({"plan": PLAN})},
    )
    return console(workspace_root)


async def _on_campaign(pilot: Pilot, campaign_id: int) -> HarnessScreen:
    await pilot.press("2")
    screen = pilot.app.screen
    assert isinstance(screen, HarnessScreen)
    await settled(pilot, screen, campaign_id + 1)
    screen.query_one("#campaigns", DataTable).focus()
    await pilot.press("down")
    await settled(pilot, screen, campaign_id)
    await pilot.wait_for_scheduled_animations()
    return screen


def test_harness_running_campaign_with_two_workers(snap_compare, live_app):
    async def run_before(pilot: Pilot) -> None:
        await _on_campaign(pilot, 1)

    assert snap_compare(live_app, terminal_size=SIZE, run_before=run_before)


def test_harness_campaign_on_a_cluster(snap_compare, workspace_root, sleeper):
    """The nodes a campaign on a Ray cluster sees, one lost, and which node runs each slot."""
    first, ids = live_campaign(workspace_root, sleeper)
    at = "2025-06-01T12:29:50Z"
    with workspace_root.db.conn:
        workspace_root.db["harness_workers"].update(
            (first, 1), {"node_id": "7e8e207b" + "a" * 48, "node_address": "10.0.0.2"}
        )
        workspace_root.db["harness_nodes"].insert_all(
            {"campaign_id": first, "updated_at": at, **node}
            for node in [
                {"node_id": "7e8e207b" + "a" * 48, "address": "10.0.0.2", "cpus": 16, "alive": 1},
                {"node_id": "0a863e8a" + "b" * 48, "address": "10.0.0.3", "cpus": 16, "alive": 1},
                {"node_id": "5c01d9f2" + "c" * 48, "address": "10.0.0.4", "cpus": 0, "alive": 0},
            ]
        )

    async def run_before(pilot: Pilot) -> None:
        await _on_campaign(pilot, 1)

    assert snap_compare(console(workspace_root), terminal_size=SIZE, run_before=run_before)


async def _drill_down(pilot: Pilot) -> AttemptScreen:
    await _on_campaign(pilot, 1)
    await pilot.press("enter", "down", "enter")
    for _ in range(400):
        screen = pilot.app.screen
        if isinstance(screen, AttemptScreen) and screen.detail is not None:
            await pilot.wait_for_scheduled_animations()
            return screen
        await pilot.pause(0.05)
    raise AssertionError("the drill-down did not load")


def test_harness_attempt_plan(snap_compare, live_app):
    async def run_before(pilot: Pilot) -> None:
        await _drill_down(pilot)

    assert snap_compare(live_app, terminal_size=SIZE, run_before=run_before)


def test_harness_attempt_diff(snap_compare, live_app):
    async def run_before(pilot: Pilot) -> None:
        await _drill_down(pilot)
        await pilot.press("d")
        await pilot.pause()

    assert snap_compare(live_app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.slow
def test_harness_100000_attempts_at_the_end(snap_compare, workspace_root):
    campaign_id = add_campaign(workspace_root, status="paused", reason="paused by the operator")
    bulk_attempts(workspace_root, campaign_id, 100_000)
    add_job(workspace_root, campaign_id, bulk_finished_at(0), ended_at=bulk_finished_at(99_999))
    app = console(workspace_root)

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("2")
        screen = pilot.app.screen
        assert isinstance(screen, HarnessScreen)
        attempts = await settled(pilot, screen, campaign_id)
        attempts.focus()
        await pilot.press("end")
        for _ in range(400):
            if attempts.all_visible_loaded():
                break
            await pilot.pause(0.05)
        assert screen.query_one(AttemptList).cursor == 99_999
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
