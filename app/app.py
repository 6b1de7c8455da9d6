"""The console: a Textual app with one screen (a Textual mode) per pane and a key per pane.

A later pane slots in by adding a `Pane` to `PANES`: its key, its mode name, its title and a
factory building its `PaneScreen` from the app. The app adds the key binding, the mode and the
command palette entries; `?` lists every binding of the pane in view and of the app.
"""

import gc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState

from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from screens import PaneScreen
from screens.help import HelpScreen, binding_sections


@dataclass(frozen=True)
class Pane:
    """One pane of the console and how to build its screen."""

    key: str
    mode: str
    title: str
    build: Callable[["CraApp"], PaneScreen]
    module: str
    """The module `build` imports, which the console imports ahead, after its first frame."""


# Each pane's module is imported when its screen is first built, so the console's first frame
# pays only for the pane it opens on; the others are imported on a thread right after that frame
# (`CraApp.on_mount`), so a first visit to a pane does not wait for its import.

STYLESHEETS = [
    Path(__file__).with_name("app.tcss"),
    *sorted((Path(__file__).parent.parent / "screens").glob("*.tcss")),
]
"""The app's look and every pane's, read once at start-up. Each pane's rules are nested under its
screens' classes, so reading them early styles nothing else; a pane that found its own .tcss
unread would have Textual parse the whole stylesheet again on its first visit."""


def _ingest(app: "CraApp") -> PaneScreen:
    from screens.ingest import IngestScreen

    return IngestScreen(app.workspace, app.usb_dirs)


def _harness(app: "CraApp") -> PaneScreen:
    from screens.harness import HarnessScreen

    return HarnessScreen(app.workspace)


def _review(app: "CraApp") -> PaneScreen:
    from screens.review import ReviewScreen

    return ReviewScreen(app.workspace)


def _datasets(app: "CraApp") -> PaneScreen:
    from screens.datasets import DatasetsScreen

    return DatasetsScreen(app.workspace)


def _training(app: "CraApp") -> PaneScreen:
    from screens.training import TrainingScreen

    return TrainingScreen(app.workspace)


def _adapters(app: "CraApp") -> PaneScreen:
    from screens.adapters import AdaptersScreen

    return AdaptersScreen(app.workspace)


def _report(app: "CraApp") -> PaneScreen:
    from screens.report import ReportScreen

    return ReportScreen(app.workspace)


PANES: list[Pane] = [
    Pane("1", "ingest", "Ingest", _ingest, "screens.ingest"),
    Pane("2", "harness", "Harness", _harness, "screens.harness"),
    Pane("3", "review", "Review", _review, "screens.review"),
    Pane("4", "datasets", "Datasets", _datasets, "screens.datasets"),
    Pane("5", "training", "Training", _training, "screens.training"),
    Pane("6", "adapters", "Adapters", _adapters, "screens.adapters"),
    Pane("7", "report", "Report", _report, "screens.report"),
]


def _import_panes() -> None:
    """Import every pane's module (a thread worker: it posts nothing, it only fills the module
    cache the panes' factories import from)."""
    for pane in PANES:
        importlib.import_module(pane.module)


class PaneCommands(Provider):
    """Command palette entries: switch to each pane, and each footer action of the pane."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        commands: list[tuple[str, Callable[[], object], str]] = [
            (f"Pane: {pane.title}", partial(app.switch_mode, pane.mode), f"key {pane.key}")
            for pane in PANES
        ]
        screen = self.screen
        if isinstance(screen, PaneScreen):
            for binding in screen.BINDINGS:
                if isinstance(binding, Binding) and binding.show and binding.description:
                    commands.append(
                        (
                            f"{screen.PANE_TITLE}: {binding.description}",
                            partial(screen.run_action, binding.action),
                            f"key {binding.key}"
                            + (f" · {binding.tooltip}" if binding.tooltip else ""),
                        )
                    )
        return commands

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)


class CraApp(App[None]):
    """The operator's console over a workspace; `usb_dirs` are watched as drives too.

    `panes` builds each pane (`PANES`, the console's own, unless a test passes panes built with
    its own clock or seed: same keys and modes, other factories)."""

    TITLE = "cra console"
    BUILD_AHEAD_AFTER_S: ClassVar[float | None] = 1.0
    """How long after the panes' modules are imported the console starts building the other
    panes out of view (an operator reads the first pane for longer than that); None builds
    none ahead, each pane is built on its first visit (the tests' default, `tests/conftest.py`:
    most open a console for a second or two, and a build cut off by the close would fail
    them)."""
    DEFAULT_MODE = PANES[0].mode
    CSS_PATH = STYLESHEETS
    COMMANDS = App.COMMANDS | {PaneCommands}
    BINDINGS = [
        *(Binding(pane.key, f"switch_pane('{pane.mode}')", pane.title) for pane in PANES),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self, workspace: Workspace, usb_dirs: list[Path], panes: Sequence[Pane] = PANES
    ) -> None:
        super().__init__()
        if [(p.key, p.mode, p.module) for p in panes] != [(p.key, p.mode, p.module) for p in PANES]:
            raise ValueError("panes must keep the console's keys, modes and modules, in order")
        self.workspace = workspace
        if workspace.read_only:
            self.title = f"cra console · read-only workspace ({workspace.read_only})"
        self.usb_dirs = list(usb_dirs)
        self._first_pane_drawn = False
        self._panes = list(panes)
        self._building: PaneScreen | None = None
        self._quit_when_built = False
        for pane in panes:
            self.add_mode(pane.mode, partial(self._build_pane, pane))

    def _build_pane(self, pane: Pane) -> PaneScreen:
        """Build `pane`'s screen; once the console is up, marked as styled by the stylesheet as
        it stands.

        Textual takes a screen it has never styled for one whose styles are stale, and restyles
        the whole app with a full reparse of every stylesheet twice on its first visit (100-300
        ms): `App._init_mode` and `App.switch_mode` compare the screen's `_css_update_count`,
        which starts at -1, with the app's. Once the first pane is drawn, the stylesheet holds
        every pane's rules (`STYLESHEETS`) and the theme's variables, and a new screen's widgets
        are styled by it as they mount, so nothing is stale; a theme change still bumps the
        app's count and restyles every screen on its next visit. The first pane is built before
        Textual has applied the theme, so it takes Textual's own path. Private to Textual
        (pinned below 8.3): `tests/test_pane_switch.py` fails if it stops holding."""
        screen = pane.build(self)
        if self._first_pane_drawn:
            screen._css_update_count = self._css_update_count
        return screen

    def on_mount(self) -> None:
        self._first_pane_drawn = True
        self.call_after_refresh(
            self.run_worker, _import_panes, thread=True, group="preload", name="import panes"
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Once the panes' modules are imported, what is alive is frozen out of the cyclic
        collector's walks: the modules, the first pane and the workspace's state, half a million
        objects, live as long as the console, and a full collection walking them all took
        100-300 ms in the middle of a key or a switch. Each pane freezes its own widgets once
        drawn (`PaneScreen.on_mount`)."""
        if event.worker.group == "preload" and event.state is WorkerState.SUCCESS:
            gc.freeze()
            if self.BUILD_AHEAD_AFTER_S is not None:
                self.set_timer(self.BUILD_AHEAD_AFTER_S, self._build_next_pane)

    @property
    def built_panes(self) -> list[str]:
        """The modes whose panes are built, in view or not."""
        return [pane.mode for pane in self._panes if self._screen_stacks.get(pane.mode)]

    def _build_next_pane(self) -> None:
        """Build the first pane not built yet, out of view, then the next once this one is
        mounted and the pane in view is idle: one pane at a time, so a key waits for one pane's
        build at most.

        A first visit then only lays out and draws the pane (composing, mounting and styling
        its widgets was half its cost, `docs/BENCHMARKS.md`). The pane goes on its mode's stack
        as `App._init_mode` would put it there, but without the `ScreenResume` that method
        posts: a pane polls only while resumed (`EnginePane.on_screen_resume`), so a pane built
        ahead reads nothing until its visit. Private to Textual (pinned below 8.3):
        `tests/test_pane_switch.py` fails if it stops holding.

        Nothing is built once the console is closing, and a quit waits for the pane being
        built: a pane torn down in the middle of its mount fails its own `on_mount` and
        Textual's `Header`, a traceback on the way out."""
        self._building = None
        if self._quit_when_built:
            self.exit()
            return
        pane = next((p for p in self._panes if p.mode not in self._screen_stacks), None)
        if pane is None or self._exit or not self.is_running:
            return
        screen = self._build_pane(pane)
        self._building = screen
        self._register(self, screen)
        self._screen_stacks[pane.mode] = [screen]
        screen.call_after_refresh(self._build_next_pane)

    async def action_quit(self) -> None:
        """Quit, once the pane being built out of view (if one is) is mounted."""
        if self._building is not None:
            self._quit_when_built = True
            return
        self.exit()

    def on_unmount(self) -> None:
        """What was frozen goes back to the collector when the console closes, or a process
        that opens the console again (the tests) would keep every closed console's cycles."""
        gc.unfreeze()

    def on_ready(self) -> None:
        """The first pane is drawn, styled by the stylesheet as it stands; Textual's start-up
        restyle ran before its widgets were mounted, so it would take the pane for stale and
        restyle the whole app again on the first return to it (100-150 ms)."""
        self.screen._css_update_count = self._css_update_count

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification of every pane: neutralised and never read as markup, since
        messages quote package names, paths, reasons and the engine's errors."""
        super().notify(
            neutralise(message),
            title=neutralise(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def action_switch_pane(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(binding_sections(self.screen)))
