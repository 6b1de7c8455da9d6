"""The Report pane: the morning report (`cra report`), what the night did since a chosen time,
under a line saying what the autopilot is doing (`cra autopilot --status`).

Packages approved and rejected, campaigns and their resolved rates, datasets curated, training
runs that ended, eval runs and gate decisions, promotions and rollbacks. The window is the last
12 hours, 24 hours, 3 days or 7 days (`[` and `]`); the report is the pane's poll
(`EnginePane`): read when the pane comes into view, when the window changes, on `r`, and
whenever another process commits while it is in view.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from engine.reports.morning import morning_report, report_text
from engine.runners.autopilot import autopilot_status
from screens.pane import EnginePane

WINDOWS = (
    ("12 hours", timedelta(hours=12)),
    ("24 hours", timedelta(hours=24)),
    ("3 days", timedelta(days=3)),
    ("7 days", timedelta(days=7)),
)


@dataclass
class ReportRead(Message):
    """The poll read the report for the window, and the autopilot's status line."""

    text: str
    autopilot: str


class ReportScreen(EnginePane):
    """The report for the chosen window, scrollable."""

    PANE_TITLE = "Report"
    POLL_S = 1.0
    POLL_TITLE = "report"
    ACTION_TITLE = "report"
    CSS_PATH = "report.tcss"
    AUTO_FOCUS = "#report-box"
    BINDINGS = [
        Binding("right_square_bracket", "window(1)", "Longer", key_display="]/["),
        Binding("left_square_bracket", "window(-1)", "Shorter", show=False),
        Binding("r", "refresh", "Refresh", tooltip="Read the report again now"),
    ]

    def __init__(self, workspace: Workspace, now: datetime | None = None) -> None:
        super().__init__(workspace)
        self._report_now = now
        self._window = 1

    def compose_pane(self) -> ComposeResult:
        yield Static("autopilot: reading…", id="autopilot", markup=False)
        with VerticalScroll(id="report-box") as box:
            box.border_title = self._title()
            yield Static("reading…", id="report", markup=False)

    def _title(self) -> str:
        return f"Morning report · the last {WINDOWS[self._window][0]}"

    def action_window(self, step: int) -> None:
        self._window = min(max(self._window + step, 0), len(WINDOWS) - 1)
        self.query_one("#report-box").border_title = self._title()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.request_poll()

    def poll_args(self) -> tuple[datetime]:
        now = self._report_now or datetime.now(UTC)
        return (now - WINDOWS[self._window][1],)

    def read(self, ws: Workspace, since: datetime) -> None:
        text = report_text(morning_report(ws, since), since)
        self.post_message(ReportRead(text, autopilot_status(ws)))

    @on(ReportRead)
    def _show(self, message: ReportRead) -> None:
        self.query_one("#autopilot", Static).update(neutralise(message.autopilot))
        self.query_one("#report", Static).update(neutralise(message.text))
