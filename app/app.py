"""The console: a Textual app with one screen (a Textual mode) per pane and a key per pane.

A later pane slots in by adding a `Pane` to `PANES`: its key, its mode name, its title and a
factory building its `PaneScreen` from the app. The app adds the key binding, the mode and the
command palette entries; `?` lists every binding of the pane in view and of the app.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.notifications import SeverityLevel

from engine.terminal_text import neutralise
from engine.workspace import Workspace
from screens import PaneScreen
from screens.adapters import AdaptersScreen
from screens.datasets import DatasetsScreen
from screens.harness import HarnessScreen
from screens.help import HelpScreen, binding_sections
from screens.ingest import IngestScreen
from screens.report import ReportScreen
from screens.review import ReviewScreen
from screens.training import TrainingScreen


@dataclass(frozen=True)
class Pane:
    """One pane of the console and how to build its screen."""

    key: str
    mode: str
    title: str
    build: Callable[["CraApp"], PaneScreen]


PANES: list[Pane] = [
    Pane("1", "ingest", "Ingest", lambda app: IngestScreen(app.workspace, app.usb_dirs)),
    Pane("2", "harness", "Harness", lambda app: HarnessScreen(app.workspace)),
    Pane("3", "review", "Review", lambda app: ReviewScreen(app.workspace)),
    Pane("4", "datasets", "Datasets", lambda app: DatasetsScreen(app.workspace)),
    Pane("5", "training", "Training", lambda app: TrainingScreen(app.workspace)),
    Pane("6", "adapters", "Adapters", lambda app: AdaptersScreen(app.workspace)),
    Pane("7", "report", "Report", lambda app: ReportScreen(app.workspace)),
]


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
    """The operator's console over a workspace; `usb_dirs` are watched as drives too."""

    TITLE = "cra console"
    DEFAULT_MODE = PANES[0].mode
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {PaneCommands}
    BINDINGS = [
        *(Binding(pane.key, f"switch_pane('{pane.mode}')", pane.title) for pane in PANES),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, workspace: Workspace, usb_dirs: list[Path]) -> None:
        super().__init__()
        self.workspace = workspace
        if workspace.read_only:
            self.title = f"cra console · read-only workspace ({workspace.read_only})"
        self.usb_dirs = list(usb_dirs)
        for pane in PANES:
            self.add_mode(pane.mode, partial(pane.build, self))

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
