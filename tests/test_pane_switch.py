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

import pytest
from pilot_wait import until
from textual.color import Color
from textual.css.stylesheet import Stylesheet
from workspaces import open_workspace

from app.app import PANES, CraApp, Pane
from screens import PaneScreen
from screens.pane import EnginePane

SIZE = (160, 50)


@pytest.fixture(autouse=True)
def _panes_built_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's own behaviour, which `tests/conftest.py` turns off for other tests: the
    panes are built out of view once the first one is drawn (at once here, not a second later)."""
    monkeypatch.setattr(CraApp, "BUILD_AHEAD_AFTER_S", 0.01)


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


async def test_panes_are_built_out_of_view_after_start_and_read_nothing_until_visited(
    tmp_path: Path, monkeypatch
):
    """Once the first pane is drawn the console builds the others out of view, one at a time, so
    a first visit only draws its pane; a pane built ahead polls nothing (no thread, no timer)
    until the operator brings it into view, and is built once."""
    built: list[str] = []
    build = CraApp._build_pane

    def counted(app: CraApp, pane: Pane) -> PaneScreen:
        built.append(pane.mode)
        return build(app, pane)

    polled: list[str] = []
    poll = EnginePane._poll

    def counted_poll(pane: EnginePane, force: bool, args: tuple[object, ...]) -> None:
        polled.append(pane.PANE_TITLE)
        poll(pane, force, args)

    monkeypatch.setattr(CraApp, "_build_pane", counted)
    monkeypatch.setattr(EnginePane, "_poll", counted_poll)
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.built_panes == [p.mode for p in PANES], "every pane built")
        await pilot.pause(2.5)  # more than two poll periods of every pane
        assert set(polled) == {PANES[0].title}
        adapters = PANES[5]
        await pilot.press(adapters.key)
        await until(pilot, lambda: adapters.title in polled, "the Adapters pane's first read")
        assert app.screen.in_view
        assert app.screen.query_one("#stages").size.width > 0
    assert built == [p.mode for p in PANES]


async def test_a_pane_visited_while_the_console_builds_it_out_of_view_is_drawn(tmp_path: Path):
    """A key pressed before the panes are all built: the pane comes into view at once, built
    ahead or on the visit, and never twice."""
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        for pane in [*PANES[1:], PANES[0]]:
            await pilot.press(pane.key)
            await until(pilot, lambda mode=pane.mode: app.current_mode == mode, pane.title)
        await until(pilot, lambda: app.built_panes == [p.mode for p in PANES], "every pane built")
        training = PANES[4]
        await pilot.press(training.key)
        await until(pilot, lambda: app.screen.query_one("#runs").size.width > 0, "the runs table")
        assert len({id(stack[0]) for stack in app._screen_stacks.values()}) == len(PANES)


async def test_quitting_while_a_pane_is_built_out_of_view_closes_cleanly(tmp_path: Path):
    """q in the middle of the panes' build: the console waits for the pane being built to mount,
    then closes; a pane torn down mid-mount would fail its own `on_mount` on the way out."""
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: 1 < len(app.built_panes) < len(PANES), "the build under way")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the console to close")
    assert app.return_code == 0


async def test_the_consoles_long_lived_objects_leave_the_collectors_walks(tmp_path: Path):
    """Half a million objects live as long as the console (modules, panes, caches): a full
    collection walking them took 100-300 ms in the middle of a key. Once the panes' modules are
    imported, and again once each pane is drawn, what is alive is frozen (`gc.freeze`), so a
    pane's widgets are not walked again; closing the console unfreezes them."""
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.built_panes == [p.mode for p in PANES], "every pane built")
        await pilot.pause()
        assert gc.get_freeze_count() > 0
        harness = PANES[1]
        await pilot.press(harness.key)
        await until(pilot, lambda: app.current_mode == harness.mode, harness.title)
        await pilot.pause()
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


async def test_a_pane_coming_into_view_is_restyled_only_when_the_apps_focus_changed(
    tmp_path: Path, monkeypatch
):
    """Textual restyles a whole screen as it comes into view; a pane's styles go stale out of
    view only through the app's focus (`:focus`, `:blur`), so a visit restyles the pane only
    when that changed since the pane was last in view, and the pane then wears it."""
    restyled: list[str] = []
    update = PaneScreen.update_node_styles

    def counted(screen: PaneScreen, animate: bool = True) -> None:
        restyled.append(screen.PANE_TITLE)
        update(screen, animate)

    monkeypatch.setattr(PaneScreen, "update_node_styles", counted)
    app = CraApp(open_workspace(tmp_path / "ws"), [])
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.built_panes == [p.mode for p in PANES], "every pane built")
        harness, training = PANES[1], PANES[4]
        for pane in [harness, PANES[0], harness]:
            await pilot.press(pane.key)
            await until(pilot, lambda mode=pane.mode: app.current_mode == mode, pane.title)
            await pilot.pause()
        assert restyled == []
        app.app_focus = False  # the terminal lost focus; a key would give it back
        await pilot.pause()
        restyled.clear()
        app.switch_mode(training.mode)  # as the command palette does
        await pilot.pause()
        assert restyled == [training.title]
        app.app_focus = True
        await pilot.pause()
        restyled.clear()
        for pane in [PANES[0], harness]:
            await pilot.press(pane.key)
            await until(pilot, lambda mode=pane.mode: app.current_mode == mode, pane.title)
            await pilot.pause()
        # Ingest was left with the focus it has again; Harness was left without it.
        assert restyled == [harness.title]
