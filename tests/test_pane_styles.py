"""Each pane keeps its own layout whatever panes were opened before it.

Textual reads a screen's CSS file into the app's one stylesheet the first time the screen is
shown, and the rules stay there. Unscoped, the Adapters pane's `#top` then styled the Harness
pane's `#top` too: after a visit to Adapters, Harness's campaign box shrank from 18 lines to
12. Each pane's layout is measured on a console that opened it first and again after every
other pane had been opened; every widget with an id must have the same size.
"""

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from workspaces import open_workspace

from app.app import PANES, CraApp

SIZE = (160, 50)


def layout(pilot: Pilot) -> dict[str, tuple[int, int]]:
    """The size of each widget with an id on the screen in view."""
    return {
        widget.id: (widget.size.width, widget.size.height)
        for widget in pilot.app.screen.query(Widget)
        if widget.id is not None and widget.display
    }


@pytest.mark.parametrize("pane", PANES, ids=lambda pane: pane.mode)
async def test_a_pane_looks_the_same_after_every_other_pane_was_opened(tmp_path: Path, pane):
    ws = open_workspace(tmp_path / "ws")
    async with CraApp(ws, []).run_test(size=SIZE) as pilot:
        await pilot.press(pane.key)
        await pilot.pause(0.5)
        first = layout(pilot)
        for other in PANES:
            await pilot.press(other.key)
            await pilot.pause(0.2)
        await pilot.press(pane.key)
        await pilot.pause(0.5)
        again = layout(pilot)
    changed = {key: (first[key], again.get(key)) for key in first if again.get(key) != first[key]}
    assert changed == {}, f"{pane.title}: widgets sized otherwise after the other panes: {changed}"
