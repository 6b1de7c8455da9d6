"""Snapshots taken after a live update, at the two terminal sizes the operator uses.

A live update is a change another process makes while the pane is open: a promotion from the
command line, an attempt finishing in a campaign. The pane redraws the changed cells in place;
these screenshots prove the redrawn cells read whole at 160 × 50 and at 100 × 30 (a cell cut to
its old width once read `scope-v` for `scope-v1`). Regenerate with
`pytest tests/test_live_snapshots.py --snapshot-update`, then read the SVGs' text.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pilot_wait import until
from test_adapters_pane import _open, fill, on_scope, promote_elsewhere, serving_shown
from test_harness_pane import console, finish_every_attempt, live_campaign, settled
from textual.pilot import Pilot
from textual.widgets import DataTable
from workspaces import open_workspace

from app.app import CraApp
from engine.adapters import activation
from engine.core.workspace import Workspace

SIZES = [(160, 50), (100, 30)]
PROMOTED_AT = "2026-11-22T06:00:00Z"


@pytest.fixture
def adapters_ws(tmp_path: Path) -> Workspace:
    """Every stage on its base except scope, whose v1 waits inactive; served at port 1, where
    nothing listens, so the serving line never changes."""
    ws = _open(tmp_path / "ws", 1)
    fill(ws)
    with ws.db.conn:
        ws.db.execute("UPDATE adapter_versions SET status = 'inactive' WHERE name = 'scope-v1'")
    return ws


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_adapters_after_a_promotion_from_the_cli(
    snap_compare, adapters_ws, size, monkeypatch
) -> None:
    """scope-v1 promoted by another process while the pane shows scope on its base: the
    Serving cell and the version's status read whole after the poll."""
    # The history shows the promotion's time: fixed, so the screenshot is stable.
    monkeypatch.setattr(activation, "utc_now", lambda: PROMOTED_AT)

    async def run_before(pilot: Pilot) -> None:
        screen = await on_scope(pilot)
        await until(pilot, lambda: "not running" in serving_shown(screen), "serving status")
        await promote_elsewhere(pilot, adapters_ws, screen)
        history = screen.query_one("#history", DataTable)
        await until(
            pilot,
            lambda: history.row_count == 3 and "2026-11-22 06:00" in str(history.get_row_at(0)),
            "the history to show the promotion",
        )
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(CraApp(adapters_ws, []), terminal_size=size, run_before=run_before)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_harness_after_every_attempt_finished(snap_compare, tmp_path, sleeper, size) -> None:
    """The running campaign's last attempts finish while the pane is open: Done reads 14/14
    whole, and the attempt list shows each outcome."""
    ws = open_workspace(tmp_path / "workspace")
    first, _ = live_campaign(ws, sleeper)

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("2")
        screen = pilot.app.screen
        await settled(pilot, screen, first + 1)
        table = screen.query_one("#campaigns", DataTable)
        table.focus()
        await pilot.press("down")
        await settled(pilot, screen, first)
        await finish_every_attempt(pilot, ws, screen, first)
        await settled(pilot, screen, first)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(console(ws), terminal_size=size, run_before=run_before)
