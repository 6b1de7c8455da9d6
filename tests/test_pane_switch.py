"""Pane switches and focus moves do only the work they need.

A first visit to a pane builds its screen without Textual parsing the stylesheet again. Textual
used to reparse every stylesheet source (its widgets' defaults included) two or three times on
each pane's first visit, 100-300 ms of a 90-390 ms switch: once to add the pane's own .tcss, and
twice more because it took a screen it had never styled for one with stale styles. The console
reads every pane's stylesheet at start-up and marks a new pane's screen as styled
(`CraApp._build_pane`); these tests fail if Textual stops honouring that. The console's
long-lived objects are frozen out of the collector's walks, and a focus move does not repaint
the whole screen.
"""

import gc
from pathlib import Path

from pilot_wait import until
from textual.color import Color
from textual.css.stylesheet import Stylesheet
from workspaces import open_workspace

from app.app import PANES, CraApp

SIZE = (160, 50)


async def test_a_first_visit_to_each_pane_and_the_return_to_the_first_parse_no_stylesheet(
    tmp_path: Path, monkeypatch
):
    parses: list[Stylesheet] = []
    parse = Stylesheet.reparse

    def counted(stylesheet: Stylesheet) -> None:
        parses.append(stylesheet)
        parse(stylesheet)

    monkeypatch.setattr(Stylesheet, "reparse", counted)
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        parses.clear()
        for pane in [*PANES[1:], PANES[0]]:
            await pilot.press(pane.key)
            await until(pilot, lambda mode=pane.mode: app.current_mode == mode, pane.title)
            await pilot.pause()
    assert parses == []


async def test_a_pane_first_visited_after_a_theme_change_wears_the_new_theme(tmp_path: Path):
    """Marking a new screen as styled must not keep it on the theme the console started with."""
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        started = app.screen.styles.background
        app.theme = "textual-light"
        await pilot.pause()
        await pilot.press(PANES[4].key)
        await until(pilot, lambda: app.current_mode == PANES[4].mode, PANES[4].title)
        await pilot.pause()
        light = Color.parse(app.current_theme.background)
        assert app.screen.styles.background == light != started


async def test_the_consoles_long_lived_objects_leave_the_collectors_walks(tmp_path: Path):
    """Half a million objects live as long as the console (modules, panes, caches): a full
    collection walking them took 100-300 ms in the middle of a key. Once the panes' modules are
    imported, and again once each pane is drawn, what is alive is frozen (`gc.freeze`), so a
    pane's widgets are not walked again; closing the console unfreezes them."""
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        for worker in [w for w in app.workers if w.group == "preload"]:
            await worker.wait()
        await pilot.pause()
        after_start = gc.get_freeze_count()
        assert after_start > 0
        harness = PANES[1]
        await pilot.press(harness.key)
        await until(pilot, lambda: app.current_mode == harness.mode, harness.title)
        await pilot.pause()
        assert gc.get_freeze_count() > after_start
        table = app.screen.query_one("DataTable")
        assert gc.is_tracked(table)
        assert not any(obj is table for obj in gc.get_objects())  # frozen objects are not listed
    assert gc.get_freeze_count() == 0  # a closed console's objects can be collected again


async def test_a_focus_move_repaints_only_the_widgets_it_restyles(tmp_path: Path, monkeypatch):
    """Textual's `Screen.focused` repaints the whole screen on every focus move; a pane's
    widgets that gain and lose focus redraw themselves, and the screen is not asked to."""
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        harness = PANES[1]
        await pilot.press(harness.key)
        await until(pilot, lambda: app.current_mode == harness.mode, harness.title)
        await pilot.pause()
        screen = app.screen
        refreshed: list[object] = []
        monkeypatch.setattr(screen, "refresh", lambda *a, **k: refreshed.append(a) or screen)
        focusable = [w for w in screen.focus_chain if w is not screen.focused]
        screen.set_focus(focusable[0])
        assert screen.focused is focusable[0]
        assert refreshed == []
