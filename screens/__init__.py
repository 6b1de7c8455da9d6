"""The console's panes, one module each, plus `PaneScreen`, the frame every pane shares."""

import gc
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Header

from screens.widgets.footer import PaneFooter


class PaneScreen(Screen[None]):
    """A pane: the app's header and footer around the pane's own widgets.

    `PANE_TITLE` names the pane in the header, the help screen and the command palette; the
    pane's own `BINDINGS` shown in the footer also become command palette entries.
    """

    PANE_TITLE: ClassVar[str]

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)
    """Textual's `Screen.focused` without its repaint of the whole screen on every focus move:
    the widgets that gain and lose focus restyle and redraw themselves (`:focus`,
    `:focus-within`), so redrawing the rest of the pane is work for nothing (a few ms a tab on
    the biggest panes, `docs/BENCHMARKS.md`)."""

    def __init__(self) -> None:
        super().__init__()
        self.sub_title = self.PANE_TITLE
        self._styled_with_focus: bool | None = None

    def on_mount(self) -> None:
        """A pane lives as long as the console: once it is drawn, its widgets are frozen out of
        the cyclic collector's walks, as the start-up's objects are
        (`CraApp.on_worker_state_changed`)."""
        self._styled_with_focus = self.app.app_focus
        self.call_after_refresh(gc.freeze)

    def _on_screen_suspend(self) -> None:
        self._styled_with_focus = self.app.app_focus

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        """Textual restyles every widget of a screen coming into view (10-20 ms on a pane). A
        pane's styles cannot have gone stale out of view but through the app's own pseudo-classes
        (`:focus`, `:blur`, a theme's `:dark`): a theme change restyles every screen on its next
        visit anyway (`App.switch_mode` compares stylesheet generations), and the app's focus is
        compared here. Its widgets restyle themselves as their classes change, in view or not.
        Runs before Textual's own handler (`Screen._on_screen_resume`), which reads the flag."""
        if self._styled_with_focus == self.app.app_focus:
            event.refresh_styles = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_pane()
        yield PaneFooter()

    def compose_pane(self) -> ComposeResult:
        """The pane's own widgets, between the header and the footer."""
        raise NotImplementedError(f"{type(self).__name__} must define compose_pane()")
