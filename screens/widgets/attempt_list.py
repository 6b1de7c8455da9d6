"""`AttemptList`: a campaign's attempts in a Line API scroll view, read a page at a time.

Its virtual height is the attempt count; it draws only the lines in view from a small LRU
cache of pages read from SQLite on demand in a thread worker, so 100,000 attempts cost what 40
do. The pane that holds it hands it freshly read pages on each poll (`show`).
"""

from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.core.terminal_text import neutralise
from engine.core.timestamps import duration_text
from engine.core.workspace import Workspace, reopened
from engine.harness.progress import AttemptRow, Outcome, attempt_page
from screens.workers import WORKER_ERRORS

PAGE_SIZE = 100
CACHE_PAGES = 8

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

    @dataclass
    class Chosen(Message):
        """Enter on an attempt."""

        attempt_id: int

    @dataclass
    class PageLoaded(Message):
        """A page read on demand (rows), or the message of the error that stopped it."""

        source: AttemptSource
        generation: int
        page: int
        rows: list[AttemptRow] | str

    def __init__(self, workspace: Workspace, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ws = workspace
        self._source: AttemptSource | None = None
        self._count = 0
        self._cursor = 0
        self._pages: LRUCache[int, list[AttemptRow]] = LRUCache(CACHE_PAGES)
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
        are dropped (they may be stale) and read again when they come into view. Pages that
        read as they are shown are not drawn again."""
        if (
            source == self._source
            and count == self._count
            and all(self._pages.get(page) == rows for page, rows in pages.items())
        ):
            for page in set(self._pages.keys()) - pages.keys():
                self._pages.discard(page)
            return
        if source != self._source:
            self._cursor = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        self._source = source
        self._count = count
        self._generation += 1
        self._loading.clear()
        self._pages.clear()
        for page, rows in sorted(pages.items()):
            self._pages.set(page, rows)
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
        self._pages.set(message.page, message.rows)
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
