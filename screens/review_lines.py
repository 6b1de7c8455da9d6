"""`RowsView`: rows of one or more aligned text columns, drawn a line at a time (Line API).

A prompt can hold 32K tokens (LoRA Training Strategy §2.2), thousands of lines; a pair's answers
hundreds. A `Static` lays all of it out whenever the item changes (about half a second for a 190 KB
prompt), so the Review pane draws them here instead: each row's height is known from its
cells' widths (only lines wider than their column are wrapped to find it), and only the rows
in view are wrapped and rendered, kept in a small cache until the width or the rows change.

A row's cells sit side by side in equal columns separated by a bar, each wrapped (code is
folded, never cut) and padded to the row's height, so the lines of a pair's chosen and rejected
answers stay level however they wrap. An optional header row stays on top as the rows scroll.
Rows too many to show whole open at a chosen row (the rows above it a scroll away).
"""

from bisect import bisect_right
from collections import OrderedDict

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

Row = tuple[Text, ...]
SEPARATOR = " │ "
CACHE_ROWS = 256


class RowsView(ScrollView, can_focus=True):
    """Rows of aligned columns; `shown` names what they belong to (an example id)."""

    COMPONENT_CLASSES = {"rows-view--header", "rows-view--separator"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: int | None = None
        self._rows: list[Row] = []
        self._header: Row | None = None
        self._columns = 1
        self._width = 0
        self._starts: list[int] = []
        self._wrapped: OrderedDict[int, list[list[Strip]]] = OrderedDict()
        self._opening = False

    def show(
        self, rows: list[Row], shown: int | None, header: Row | None = None, start: int = 0
    ) -> None:
        """Show `rows` (each with the same number of cells) from the top, or from row `start`
        when they are more than the view holds."""
        self._rows = rows
        self._header = header
        self._columns = len(header) if header else max((len(row) for row in rows), default=1)
        self.shown = shown
        self._width = 0
        self._starts = []
        self.scroll_to(0, 0, animate=False, immediate=True)
        self._layout()
        self._opening = bool(start)
        if start:
            self.call_after_refresh(self._open_at, rows, start)

    @property
    def opened(self) -> bool:
        """The rows shown last are where they open (a row to open at is scrolled to)."""
        return not self._opening

    def _open_at(self, rows: list[Row], start: int) -> None:
        """Scroll to row `start` if `rows` (still the rows shown, now laid out at the size the
        view really has) are more than it holds."""
        if rows is not self._rows:
            return
        self._opening = False
        self._layout()
        extra = 1 if self._header else 0
        if self._starts and self.line_count + extra > self.scrollable_content_region.height:
            self.scroll_to(y=self._starts[start], animate=False, immediate=True, force=True)

    @property
    def line_count(self) -> int:
        """How many lines the rows take at the current width (the header left out)."""
        return self._starts[-1] if self._starts else 0

    def _column_width(self) -> int:
        width = self.scrollable_content_region.width
        gaps = len(SEPARATOR) * (self._columns - 1)
        return max(1, (width - gaps) // self._columns)

    def _layout(self) -> None:
        width = self.scrollable_content_region.width
        if width == self._width and self._starts:
            return
        self._width = width
        self._wrapped.clear()
        self._starts = []
        if width <= 0:
            return
        column = self._column_width()
        starts = [0]
        for row in self._rows:
            starts.append(starts[-1] + max(self._height(cell, column) for cell in row))
        self._starts = starts
        extra = 1 if self._header else 0
        self.virtual_size = Size(width, starts[-1] + extra)
        self.refresh()

    def on_resize(self) -> None:
        self._layout()

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        """Textual moves the scrollbar's thumb only while the bar is shown: rows opened at a
        row before the bar first shows would have it drawn at the top."""
        if shown:
            self.vertical_scrollbar.position = self.scroll_y

    def _row_lines(self, index: int) -> list[list[Strip]]:
        """Row `index` wrapped: one list of strips per cell, padded to the row's height."""
        lines = self._wrapped.get(index)
        if lines is not None:
            self._wrapped.move_to_end(index)
            return lines
        lines = self._render_cells(self._rows[index])
        self._wrapped[index] = lines
        while len(self._wrapped) > CACHE_ROWS:
            self._wrapped.popitem(last=False)
        return lines

    def _render_cells(self, row: Row) -> list[list[Strip]]:
        column = self._column_width()
        console = self.app.console
        cells = []
        for cell in row:
            wrapped = cell.wrap(console, column) if cell.plain else [Text("")]
            cells.append(
                [Strip(list(line.render(console)), cell_len(line.plain)) for line in wrapped]
            )
        return cells

    def _height(self, cell: Text, width: int) -> int:
        """How many lines `cell` (one line of text) takes in a column `width` cells wide:
        one when it fits (no wrapping needed to know), else as many as wrapping makes."""
        plain = cell.plain
        if len(plain) <= width and (plain.isascii() or cell_len(plain) <= width):
            return 1
        return len(cell.wrap(self.app.console, width))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if width != self._width:
            # Shown while hidden (no width then) and drawn before its resize arrives.
            self._layout()
        base = self.rich_style
        if self._header is not None and y == 0:
            style = base + self.get_component_rich_style("rows-view--header")
            return self._join(self._render_cells(self._header), 0, style, width)
        line = self.scroll_offset.y + y - (1 if self._header is not None else 0)
        if not self._starts or line >= self._starts[-1]:
            return Strip.blank(width, base)
        index = bisect_right(self._starts, line) - 1
        return self._join(self._row_lines(index), line - self._starts[index], base, width)

    def _join(self, cells: list[list[Strip]], sub: int, base: Style, width: int) -> Strip:
        column = self._column_width()
        separator = base + self.get_component_rich_style("rows-view--separator")
        segments: list[Segment] = []
        for number, lines in enumerate(cells):
            if number:
                segments.append(Segment(SEPARATOR, separator))
            strip = lines[sub] if sub < len(lines) else Strip.blank(column)
            segments.extend(strip.apply_style(base).adjust_cell_length(column, base))
        return Strip(segments).adjust_cell_length(width, base)
