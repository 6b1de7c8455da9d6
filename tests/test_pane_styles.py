"""Each pane keeps its own layout whatever other panes' stylesheets hold.

The console reads every pane's CSS file into the app's one stylesheet at start-up
(`app.app.STYLESHEETS`). Unscoped, the Adapters pane's `#top` styled the Harness pane's `#top`
too, and its campaign box shrank from 18 lines to 12. Each pane's layout is measured on a
console that holds only the app's stylesheet and the pane's own (read as Textual reads a
screen's CSS when it first builds it) and on the console as it is, after every other pane was
opened; every widget with an id must have the same size.
"""

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from workspaces import open_workspace

from app.app import PANES, STYLESHEETS, CraApp, Pane

SIZE = (160, 50)


def layout(pilot: Pilot) -> dict[str, tuple[int, int]]:
    """The size of each widget with an id on the screen in view."""
    return {
        widget.id: (widget.size.width, widget.size.height)
        for widget in pilot.app.screen.query(Widget)
        if widget.id is not None and widget.display
    }


def alone(pane: Pane) -> type[CraApp]:
    """The console opening on `pane`, with the app's stylesheet and only the pane's own."""
    return type("Alone", (CraApp,), {"CSS_PATH": STYLESHEETS[:1], "DEFAULT_MODE": pane.mode})


@pytest.mark.parametrize("pane", PANES, ids=lambda pane: pane.mode)
async def test_a_pane_looks_the_same_beside_every_other_panes_stylesheet(tmp_path: Path, pane):
    ws = open_workspace(tmp_path / "ws")
    async with alone(pane)(ws, []).run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        first = layout(pilot)
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        for other in PANES:
            await pilot.press(other.key)
            await pilot.pause(0.2)
        await pilot.press(pane.key)
        await pilot.pause(0.5)
        again = layout(pilot)
    changed = {key: (first[key], again.get(key)) for key in first if again.get(key) != first[key]}
    assert changed == {}, (
        f"{pane.title}: widgets sized otherwise beside the other panes' stylesheets: {changed}"
    )
