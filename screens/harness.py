"""The Harness pane: campaigns, the selected one's progress and workers, and its attempts.

Top left, the campaigns (few: a small table). Top right, the selected campaign's progress per
package and overall (done/total, resolved rate, throughput, ETA) and one live line per worker.
Below, the campaign's attempts in an `AttemptList`: a Line API scroll view whose virtual height
is the attempt count; it draws only the lines in view from a small cache of pages read from
SQLite on demand, so 100,000 attempts cost what 40 do.

A one-second timer polls the database in a thread worker that only posts messages, and never
two at once (a tick is skipped while a poll runs); it is paused while the pane is out of view.
The poll posts the attempt list's page before the slower progress figures, so the list draws
first. Campaign actions (create, start, pause, stop) run in thread workers too; a refusal from
the engine becomes a notification.
"""

import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len, set_cell_size
from rich.console import Group
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, SelectionList, Static

from engine.core.errors import CraError
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from engine.harness.campaigns import (
    CampaignSpec,
    create_campaign,
    parse_spec,
    pause_campaign,
    reconcile_campaigns,
    start_campaign,
    stop_campaign,
)
from engine.harness.pipeline import PIPELINES
from engine.harness.progress import (
    OUTCOMES,
    AttemptRow,
    CampaignProgress,
    CampaignSummary,
    Clock,
    Outcome,
    Progress,
    WorkerLine,
    attempt_count,
    attempt_page,
    campaign_summaries,
    package_progress,
    parse_time,
    reopened,
    wall_clock,
    worker_lines,
)
from engine.intake.approval import list_corpus
from screens import PaneScreen
from screens.harness_attempt import AttemptScreen
from screens.widgets.confirm import ConfirmScreen

POLL_S = 1.0
PAGE_SIZE = 100
CACHE_PAGES = 8
FILTERS: tuple[Outcome | None, ...] = (None, *OUTCOMES)
Action = Literal["start", "pause", "stop"]
# What a worker turns into a message rather than a crash: refusals, a busy database, I/O.
WORKER_ERRORS = (CraError, sqlite3.Error, OSError)

OUTCOME_STYLE = {
    "resolved": Style(color="green", bold=True),
    "partial": Style(color="yellow"),
    "failed": Style(color="red"),
    "error": Style(color="magenta", bold=True),
    "unusable": Style(dim=True),
}
STATE_STYLE = {
    "pending": Style(dim=True),
    "running": Style(color="yellow", bold=True),
    "done": Style(),
}
STATUS_STYLE = {
    "running": "bold green",
    "pausing": "yellow",
    "stopping": "yellow",
    "paused": "yellow",
    "stopped": "dim",
    "done": "bold cyan",
    "failed": "bold red",
    "interrupted": "bold red",
    "pending": "dim",
}


# -- formatting ---------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    """12.3s, 4m 05s, 2h 03m; `—` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f} %"


def throughput_text(per_min: float | None) -> str:
    return "—" if per_min is None else f"{per_min:.1f}/min"


def eta_text(progress: Progress) -> str:
    return "done" if progress.remaining == 0 else duration_text(progress.eta_s)


def filter_name(outcome: Outcome | None) -> str:
    return outcome or "all"


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    right: bool = False


COLUMNS = (
    Column("id", 7, right=True),
    Column("package", 14),
    Column("commit", 12),
    Column("temp", 4, right=True),
    Column("seed", 4, right=True),
    Column("state", 7),
    Column("outcome", 8),
    Column("f2p", 7, right=True),
    Column("time", 7, right=True),
    Column("recall", 6, right=True),
)
REASON_MIN = 8


def _fit(text: str, width: int, right: bool) -> str:
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return text.rjust(width) if right else set_cell_size(text, width)


def _cells(values: list[str], width: int) -> list[str]:
    """The fixed columns, then the reason in whatever width is left."""
    fixed = [_fit(v, c.width, c.right) for v, c in zip(values, COLUMNS, strict=False)]
    used = sum(c.width + 1 for c in COLUMNS)
    reason = values[len(COLUMNS)] if len(values) > len(COLUMNS) else ""
    return [*fixed, _fit(reason, max(REASON_MIN, width - used), right=False)]


def header_text(width: int) -> Text:
    titles = [c.title for c in COLUMNS] + ["reason"]
    return Text(" ".join(_cells(titles, width)), style="bold", no_wrap=True, overflow="crop")


def attempt_segments(row: AttemptRow, width: int) -> list[Segment]:
    """One attempt as styled segments, column by column (neutralised before they are fitted,
    so the columns hold what is drawn)."""
    f2p = "—" if row.f2p_total is None else f"{row.f2p_passed}/{row.f2p_total}"
    values = [
        str(row.id),
        row.package_name or "?",
        row.sha[:12],
        "—" if row.temperature is None else f"{row.temperature:g}",
        "—" if row.seed is None else str(row.seed),
        row.state,
        row.outcome or "",
        f2p,
        duration_text(row.duration_s),
        "—" if row.file_recall is None else f"{row.file_recall:.2f}",
        (row.reason or "").replace("\n", " "),
    ]
    values = [neutralise(value) for value in values]
    styles = [Style()] * len(COLUMNS) + [Style(dim=True)]
    styles[5] = STATE_STYLE.get(row.state, Style())
    styles[6] = OUTCOME_STYLE.get(row.outcome or "", Style())
    segments = []
    for text, style in zip(_cells(values, width), styles, strict=True):
        segments.append(Segment(text, style))
        segments.append(Segment(" "))
    return segments[:-1]


# -- the attempt list ---------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptSource:
    """Which attempts the list shows: a campaign's, all or those with one outcome."""

    campaign_id: int
    outcome: Outcome | None


class AttemptList(ScrollView, can_focus=True):
    """A campaign's attempts, one line each, read a page at a time as they scroll into view."""

    COMPONENT_CLASSES = {"attempt-list--cursor", "attempt-list--loading"}
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "home", "First", show=False),
        Binding("end", "end", "Last", show=False),
        Binding("enter", "choose", "Open attempt", tooltip="Show the attempt's plan, diff, output"),
    ]

    class Chosen(Message):
        """Enter on an attempt."""

        def __init__(self, attempt_id: int) -> None:
            super().__init__()
            self.attempt_id = attempt_id

    class PageLoaded(Message):
        """A page read on demand (rows), or the message of the error that stopped it."""

        def __init__(
            self, source: AttemptSource, generation: int, page: int, rows: list[AttemptRow] | str
        ) -> None:
            super().__init__()
            self.source = source
            self.generation = generation
            self.page = page
            self.rows = rows

    def __init__(self, workspace: Workspace, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ws = workspace
        self._source: AttemptSource | None = None
        self._count = 0
        self._cursor = 0
        self._pages: OrderedDict[int, list[AttemptRow]] = OrderedDict()
        self._loading: set[int] = set()
        self._generation = 0

    @property
    def source(self) -> AttemptSource | None:
        return self._source

    @property
    def count(self) -> int:
        return self._count

    @property
    def cursor(self) -> int:
        return self._cursor

    def row_at(self, index: int) -> AttemptRow | None:
        """The attempt at `index` if its page is loaded."""
        rows = self._pages.get(index // PAGE_SIZE)
        if rows is None:
            return None
        offset = index % PAGE_SIZE
        return rows[offset] if offset < len(rows) else None

    def visible_pages(self) -> list[int]:
        """The pages holding the lines in view."""
        top = self.scroll_offset.y
        bottom = min(self._count, top + max(1, self.size.height)) - 1
        if bottom < top:
            return [0]
        return list(range(top // PAGE_SIZE, bottom // PAGE_SIZE + 1))

    def all_visible_loaded(self) -> bool:
        top = self.scroll_offset.y
        bottom = min(self._count, top + self.size.height)
        return all(self.row_at(i) is not None for i in range(top, bottom))

    def show(
        self, source: AttemptSource | None, count: int, pages: dict[int, list[AttemptRow]]
    ) -> None:
        """Show `count` attempts of `source` with these freshly read pages; other cached pages
        are dropped (they may be stale) and read again when they come into view."""
        if source != self._source:
            self._cursor = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        self._source = source
        self._count = count
        self._generation += 1
        self._loading.clear()
        self._pages = OrderedDict(sorted(pages.items()))
        self._cursor = max(0, min(self._cursor, count - 1))
        self.virtual_size = Size(0, count)
        self.refresh()

    # -- drawing --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = self.scroll_offset.y + y
        if index >= self._count:
            return Strip.blank(width, self.rich_style)
        row = self.row_at(index)
        if row is None:
            self._want(index // PAGE_SIZE)
            style = self.rich_style + self.get_component_rich_style("attempt-list--loading")
            strip = Strip([Segment(f"{'…':>{COLUMNS[0].width}}", style)])
        else:
            strip = Strip(attempt_segments(row, width)).apply_style(self.rich_style)
        strip = strip.adjust_cell_length(width, self.rich_style)
        if index == self._cursor:
            strip = strip.apply_style(self.get_component_rich_style("attempt-list--cursor"))
        return strip

    def _want(self, page: int) -> None:
        if self._source is None or page in self._loading:
            return
        self._loading.add(page)
        self._fetch(self._source, self._generation, page)

    @work(thread=True, group="attempt-pages")
    def _fetch(self, source: AttemptSource, generation: int, page: int) -> None:
        try:
            with reopened(self._ws) as ws:
                rows = attempt_page(
                    ws, source.campaign_id, page * PAGE_SIZE, PAGE_SIZE, source.outcome
                )
        except WORKER_ERRORS as exc:
            self.post_message(self.PageLoaded(source, generation, page, str(exc)))
            return
        self.post_message(self.PageLoaded(source, generation, page, rows))

    @on(PageLoaded)
    def _page_loaded(self, message: PageLoaded) -> None:
        message.stop()
        if message.source != self._source or message.generation != self._generation:
            return
        self._loading.discard(message.page)
        if isinstance(message.rows, str):
            self.notify(
                message.rows, title="attempts could not be read", severity="error", markup=False
            )
            return
        self._pages[message.page] = message.rows
        while len(self._pages) > CACHE_PAGES:
            self._pages.popitem(last=False)
        self.refresh()

    # -- cursor ---------------------------------------------------------------------------

    def move_cursor(self, index: int) -> None:
        """Put the cursor on `index` (clamped) and scroll it into view."""
        if not self._count:
            return
        self._cursor = max(0, min(index, self._count - 1))
        top, height = self.scroll_offset.y, max(1, self.size.height)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, immediate=True)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self._cursor + direction * max(1, self.size.height - 1))

    def action_home(self) -> None:
        self.move_cursor(0)

    def action_end(self) -> None:
        self.move_cursor(self._count - 1)

    def action_choose(self) -> None:
        row = self.row_at(self._cursor)
        if row is None:
            self.notify("No attempt under the cursor yet.", severity="warning")
            return
        self.post_message(self.Chosen(row.id))

    def on_click(self, event: events.Click) -> None:
        self.move_cursor(self.scroll_offset.y + event.y)


# -- messages -----------------------------------------------------------------------------


class CampaignsPolled(Message):
    def __init__(self, campaigns: list[CampaignSummary]) -> None:
        super().__init__()
        self.campaigns = campaigns


class AttemptsPolled(Message):
    def __init__(
        self, source: AttemptSource, count: int, pages: dict[int, list[AttemptRow]]
    ) -> None:
        super().__init__()
        self.source = source
        self.count = count
        self.pages = pages


class ProgressPolled(Message):
    def __init__(
        self, campaign_id: int, progress: CampaignProgress, workers: list[WorkerLine]
    ) -> None:
        super().__init__()
        self.campaign_id = campaign_id
        self.progress = progress
        self.workers = workers


class PollDone(Message):
    """A poll ended; `error` is set when it could not finish."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class ActionDone(Message):
    """A campaign action returned: what it did, or the engine's refusal."""

    def __init__(self, text: str, error: str | None, select: int | None = None) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.select = select


# -- the new-campaign form ----------------------------------------------------------------


def _listed(text: str) -> list[str]:
    """Comma-separated values as written; pydantic converts and judges each one."""
    return [part.strip() for part in text.split(",")] if text.strip() else []


class NewCampaignScreen(ModalScreen[CampaignSpec | None]):
    """A form for a campaign's spec; enter checks it through `CampaignSpec`, and an error stays
    on the form until it is fixed; esc cancels."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [
        Binding("ctrl+s", "create", "Create"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, packages: list[tuple[str, str]], model: str) -> None:
        super().__init__()
        self._packages = packages
        self._model = model

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog new-campaign"):
            yield Label("New campaign", classes="dialog-title")
            with Horizontal(classes="form-row form-packages"):
                yield Label("Packages", classes="form-label")
                yield SelectionList[str](
                    *[
                        (Text(neutralise(f"{name}  {digest[:12]}")), digest, True)
                        for name, digest in self._packages
                    ],
                    id="form-packages",
                )
            with Horizontal(classes="form-row"):
                yield Label("Pipeline", classes="form-label")
                yield Select(
                    [(name, name) for name in PIPELINES],
                    value="gold",
                    allow_blank=False,
                    id="form-pipeline",
                )
            for key, label, value in [
                ("model", "Model", self._model),
                ("temperatures", "Temperatures", "0.3,0.6,0.9"),
                ("seeds", "Seeds", "1"),
                ("workers", "Workers", "2"),
            ]:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(value, id=f"form-{key}")
            yield Static("", id="form-error", markup=False)
            with Horizontal(classes="dialog-keys"):
                yield Label("[b]enter[/] / [b]ctrl+s[/] create", classes="key-yes")
                yield Label("[b]esc[/] cancel", classes="key-cancel")

    def on_mount(self) -> None:
        self.query_one("#form-error").display = False
        if not self._packages:
            self._show_error("No approved package: approve one in the Ingest pane first.")

    def spec_data(self) -> dict[str, object]:
        """The form's fields as `CampaignSpec` input, unconverted."""
        return {
            "packages": self.query_one("#form-packages", SelectionList).selected,
            "pipeline": self.query_one("#form-pipeline", Select).value,
            "model": self.query_one("#form-model", Input).value.strip(),
            "temperatures": _listed(self.query_one("#form-temperatures", Input).value),
            "seeds": _listed(self.query_one("#form-seeds", Input).value),
            "workers": self.query_one("#form-workers", Input).value.strip(),
        }

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_create()

    def action_create(self) -> None:
        try:
            spec = parse_spec(self.spec_data())
        except CraError as exc:
            self._show_error(str(exc))
            return
        self.dismiss(spec)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _show_error(self, text: str) -> None:
        error = self.query_one("#form-error", Static)
        error.update(text)
        error.display = True


# -- the pane -----------------------------------------------------------------------------


class HarnessScreen(PaneScreen):
    """Campaigns and the selected campaign's progress on top; its attempts below."""

    PANE_TITLE = "Harness"
    CSS_PATH = "harness.tcss"
    BINDINGS = [
        Binding("n", "new_campaign", "New campaign", tooltip="Create a campaign over packages"),
        Binding("s", "campaign('start')", "Start/resume", tooltip="Start or resume the campaign"),
        Binding("p", "campaign('pause')", "Pause", tooltip="Finish running attempts, then stop"),
        Binding("x", "stop", "Stop", tooltip="Stop now; running attempts are redone on start"),
        Binding("f", "cycle_filter", "Filter", tooltip="Cycle the attempt list's outcome filter"),
        Binding("escape", "focus_campaigns", "Back to the campaigns", show=False),
    ]

    def __init__(self, workspace: Workspace, now: Clock = wall_clock) -> None:
        super().__init__()
        self._ws = workspace
        self._now = now
        self._campaigns: dict[int, CampaignSummary] = {}
        self._selected: int | None = None
        self._outcome: Outcome | None = None
        self._polling = False
        self._poll_wanted = False
        self._last_error: str | None = None

    def compose_pane(self) -> ComposeResult:
        with Vertical(id="harness"):
            with Horizontal(id="top"):
                campaigns = DataTable(id="campaigns", cursor_type="row")
                campaigns.border_title = "Campaigns"
                yield campaigns
                with VerticalScroll(id="progress") as progress:
                    progress.border_title = "Progress"
                    yield Static(id="progress-head")
                    yield ProgressBar(id="overall", show_eta=False)
                    yield Static(id="overall-text")
                    yield Static(id="packages-progress")
                    yield Static(id="workers")
            with Vertical(id="attempts-box") as box:
                box.border_title = "Attempts"
                yield Static(id="attempts-header")
                yield AttemptList(self._ws, id="attempts")

    def on_mount(self) -> None:
        table = self.query_one("#campaigns", DataTable)
        for label, key in [
            ("#", "id"),
            ("Status", "status"),
            ("Pipeline", "pipeline"),
            ("Model", "model"),
            ("Done", "done"),
        ]:
            table.add_column(label, key=key)
        self._render_progress(None, [])
        self._update_attempts_title()
        self._timer = self.set_interval(POLL_S, self._tick, pause=True)

    def on_screen_resume(self) -> None:
        """Poll while the pane is in view, and at once when it comes back into view."""
        self._timer.resume()
        self._request_poll()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    def on_resize(self) -> None:
        header = self.query_one("#attempts-header", Static)
        header.update(header_text(self.query_one(AttemptList).size.width))

    # -- polling --------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self._polling:
            self._start_poll()

    def _request_poll(self) -> None:
        """Poll now, or right after the poll under way (whose answer may be out of date)."""
        if self._polling:
            self._poll_wanted = True
        else:
            self._start_poll()

    def _start_poll(self) -> None:
        self._polling = True
        self._poll_wanted = False
        attempts = self.query_one(AttemptList)
        source = self._source()
        pages = attempts.visible_pages() if source == attempts.source else [0]
        self._poll(self._selected, self._outcome, pages)

    @work(thread=True, group="poll")
    def _poll(self, wanted: int | None, outcome: Outcome | None, pages: list[int]) -> None:
        try:
            with reopened(self._ws) as ws:
                reconcile_campaigns(ws)
                campaigns = campaign_summaries(ws)
                self.post_message(CampaignsPolled(campaigns))
                ids = [c.id for c in campaigns]
                chosen = wanted if wanted in ids else (ids[0] if ids else None)
                if chosen is not None:
                    count = attempt_count(ws, chosen, outcome)
                    rows = {
                        page: attempt_page(ws, chosen, page * PAGE_SIZE, PAGE_SIZE, outcome)
                        for page in pages
                        if page * PAGE_SIZE < count
                    }
                    self.post_message(AttemptsPolled(AttemptSource(chosen, outcome), count, rows))
                    now = self._now()
                    progress = package_progress(ws, chosen, now)
                    self.post_message(
                        ProgressPolled(chosen, progress, worker_lines(ws, chosen, now))
                    )
        except WORKER_ERRORS as exc:
            self.post_message(PollDone(str(exc)))
            return
        self.post_message(PollDone(None))

    @on(CampaignsPolled)
    def _campaigns_polled(self, message: CampaignsPolled) -> None:
        previous = list(self._campaigns)
        self._campaigns = {c.id: c for c in message.campaigns}
        if self._selected not in self._campaigns:
            self._select(next(iter(self._campaigns), None))
        table = self.query_one("#campaigns", DataTable)
        if list(self._campaigns) == previous:
            for campaign in message.campaigns:
                for key, value in self._campaign_cells(campaign).items():
                    table.update_cell(str(campaign.id), key, value)
        else:
            table.clear()
            for campaign in message.campaigns:
                table.add_row(*self._campaign_cells(campaign).values(), key=str(campaign.id))
        if self._selected is not None:
            table.move_cursor(row=table.get_row_index(str(self._selected)), animate=False)
        self._render_head()

    @on(AttemptsPolled)
    def _attempts_polled(self, message: AttemptsPolled) -> None:
        if message.source != self._source():
            return
        self.query_one(AttemptList).show(message.source, message.count, message.pages)
        self._update_attempts_title()

    @on(ProgressPolled)
    def _progress_polled(self, message: ProgressPolled) -> None:
        if message.campaign_id == self._selected:
            self._render_progress(message.progress, message.workers)

    @on(PollDone)
    def _poll_done(self, message: PollDone) -> None:
        self._polling = False
        if message.error is not None and message.error != self._last_error:
            self.notify(message.error, title="harness poll failed", severity="error", markup=False)
        self._last_error = message.error
        if self._poll_wanted:
            self._start_poll()

    # -- selection ------------------------------------------------------------------------

    def _source(self) -> AttemptSource | None:
        return None if self._selected is None else AttemptSource(self._selected, self._outcome)

    def _select(self, campaign_id: int | None) -> None:
        if campaign_id == self._selected:
            return
        self._selected = campaign_id
        self.query_one(AttemptList).show(None, 0, {})
        self._render_progress(None, [])
        self._render_head()
        self._update_attempts_title()
        self._request_poll()

    @on(DataTable.RowHighlighted, "#campaigns")
    def _campaign_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(int(event.row_key.value))

    @on(DataTable.RowSelected, "#campaigns")
    def _campaign_chosen(self) -> None:
        self.query_one(AttemptList).focus()

    @on(AttemptList.Chosen)
    def _attempt_chosen(self, message: AttemptList.Chosen) -> None:
        self.app.push_screen(AttemptScreen(self._ws, message.attempt_id))

    @property
    def selected_campaign(self) -> int | None:
        return self._selected

    @property
    def outcome_filter(self) -> Outcome | None:
        return self._outcome

    # -- actions --------------------------------------------------------------------------

    def action_cycle_filter(self) -> None:
        self._outcome = FILTERS[(FILTERS.index(self._outcome) + 1) % len(FILTERS)]
        self.query_one(AttemptList).show(None, 0, {})
        self._update_attempts_title()
        self._request_poll()

    def action_focus_campaigns(self) -> None:
        self.query_one("#campaigns").focus()

    def action_new_campaign(self) -> None:
        packages = [(e.name, e.digest) for e in list_corpus(self._ws) if e.present]

        def submitted(spec: CampaignSpec | None) -> None:
            if spec is not None:
                self._create(spec)

        model = self._ws.config.harness.openai.model
        self.app.push_screen(NewCampaignScreen(packages, model), submitted)

    def action_campaign(self, action: Action) -> None:
        campaign_id = self._require_campaign(action)
        if campaign_id is not None:
            self._act(action, campaign_id)

    def action_stop(self) -> None:
        campaign_id = self._require_campaign("stop")
        if campaign_id is None:
            return
        body = (
            "Stopping kills the campaign's workers now. The attempts they are running are "
            "interrupted and redone from the start on the next start (s); finished attempts "
            "are kept."
        )

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._act("stop", campaign_id)

        self.app.push_screen(ConfirmScreen(f"Stop campaign {campaign_id}?", body), confirmed)

    def _require_campaign(self, verb: str) -> int | None:
        if self._selected is None:
            self.notify(f"No campaign to {verb}: create one first (n).", severity="warning")
        return self._selected

    @work(thread=True, group="campaign-action")
    def _act(self, action: Action, campaign_id: int) -> None:
        calls = {"start": start_campaign, "pause": pause_campaign, "stop": stop_campaign}
        done = {"start": "started", "pause": "pausing", "stop": "stopping"}
        try:
            with reopened(self._ws) as ws:
                calls[action](ws, campaign_id)
        except WORKER_ERRORS as exc:
            self.post_message(ActionDone("", str(exc)))
            return
        self.post_message(ActionDone(f"campaign {campaign_id} {done[action]}", None))

    @work(thread=True, group="campaign-action")
    def _create(self, spec: CampaignSpec) -> None:
        try:
            with reopened(self._ws) as ws:
                campaign_id = create_campaign(ws, spec, ws.config.operator)
        except WORKER_ERRORS as exc:
            self.post_message(ActionDone("", str(exc)))
            return
        text = f"campaign {campaign_id} created; start it with s"
        self.post_message(ActionDone(text, None, select=campaign_id))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        if message.error is not None:
            self.notify(message.error, title="harness", severity="error", markup=False)
        else:
            self.notify(message.text, title="harness", markup=False)
        if message.select is not None:
            self._select(message.select)
        self._request_poll()

    # -- drawing --------------------------------------------------------------------------

    def _campaign_cells(self, campaign: CampaignSummary) -> dict[str, Text]:
        totals = campaign.totals
        return {
            "id": Text(str(campaign.id), justify="right"),
            "status": Text(campaign.status, style=STATUS_STYLE.get(campaign.status, "")),
            "pipeline": Text(neutralise(campaign.pipeline)),
            "model": Text(neutralise(campaign.model)),
            "done": Text(f"{totals.done:,}/{totals.total:,}", justify="right"),
        }

    def _render_head(self) -> None:
        box = self.query_one("#progress")
        head = self.query_one("#progress-head", Static)
        campaign = self._campaigns.get(self._selected) if self._selected is not None else None
        if campaign is None:
            box.border_title = "Progress"
            head.update(Text("No campaign yet: press n to create one.", style="dim"))
            return
        box.border_title = f"Campaign {campaign.id} · {campaign.status}"
        temperatures = " ".join(f"{t:g}" for t in campaign.temperatures)
        seeds = " ".join(str(s) for s in campaign.seeds)
        text = Text.assemble(
            (neutralise(campaign.pipeline), "bold"),
            neutralise(
                f" · model {campaign.model} · temperatures {temperatures} · seeds {seeds} · "
                f"{campaign.workers} workers"
            ),
            ("\ncreated ", "dim"),
            neutralise(f"{campaign.created_at} by {campaign.created_by}"),
        )
        if campaign.reason:
            reason = neutralise(f"\n{campaign.reason}")
            text.append(reason, style=STATUS_STYLE.get(campaign.status, ""))
        head.update(text)

    def _render_progress(
        self, progress: CampaignProgress | None, workers: list[WorkerLine]
    ) -> None:
        bar = self.query_one("#overall", ProgressBar)
        overall = self.query_one("#overall-text", Static)
        packages = self.query_one("#packages-progress", Static)
        workers_box = self.query_one("#workers", Static)
        # Hidden, not removed: the bar keeps its width, which it rounds each new value to.
        bar.visible = progress is not None
        if progress is None:
            overall.update("")
            packages.update("")
            workers_box.update("")
            return
        whole = progress.overall
        bar.update(total=max(1, whole.total), progress=whole.done)
        overall.update(_overall_text(progress))
        packages.update(_packages_table(progress))
        workers_box.update(_workers_text(workers))

    def _update_attempts_title(self) -> None:
        box = self.query_one("#attempts-box")
        attempts = self.query_one(AttemptList)
        if self._selected is None:
            box.border_title = "Attempts"
            return
        count = f" · {attempts.count:,}" if attempts.source == self._source() else ""
        box.border_title = (
            f"Attempts of campaign {self._selected} · filter {filter_name(self._outcome)}{count}"
        )


def _window_text(progress: CampaignProgress) -> str:
    if progress.window_start is None or progress.window_end is None:
        return "(never ran)"
    start, end = parse_time(progress.window_start), parse_time(progress.window_end)
    return f"over the last {duration_text((end - start).total_seconds())}"


def _overall_text(progress: CampaignProgress) -> Text:
    whole = progress.overall
    return Text.assemble(
        (f"{whole.done:,}/{whole.total:,} done", "bold"),
        f" · {whole.running} running",
        f"\n{whole.resolved:,} resolved · {rate_text(whole.resolved_rate)} of the usable",
        f"\n{throughput_text(whole.throughput_per_min)} {_window_text(progress)}",
        f" · ETA {eta_text(whole)}",
    )


def _packages_table(progress: CampaignProgress) -> Table:
    table = Table(box=None, padding=(0, 1), show_edge=False, expand=False, header_style="bold")
    for title, justify in [
        ("Package", "left"),
        ("Done", "right"),
        ("Resolved", "right"),
        ("Rate", "right"),
        ("Throughput", "right"),
        ("ETA", "right"),
    ]:
        table.add_column(title, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for package in progress.packages:
        p = package.progress
        table.add_row(
            Text(neutralise(package.name or package.digest[:12])),
            f"{p.done:,}/{p.total:,}",
            f"{p.resolved:,}",
            rate_text(p.resolved_rate),
            throughput_text(p.throughput_per_min),
            eta_text(p),
        )
    return table


def _workers_text(workers: list[WorkerLine]) -> Group | Text:
    if not workers:
        return Text("No worker has reported yet.", style="dim")
    lines = [Text("Workers", style="bold")]
    for worker in workers:
        stage_style = "dim" if worker.stage in ("idle", "exited") else "bold yellow"
        lines.append(
            Text.assemble(
                f"slot {worker.slot:<2} ",
                (f"{worker.stage:<8}", stage_style),
                neutralise(f" {worker.task or '—'}"),
                (neutralise("  " + (worker.package_name or "")), "dim"),
                f"  {duration_text(worker.elapsed_s)}",
            )
        )
    return Group(*lines)
