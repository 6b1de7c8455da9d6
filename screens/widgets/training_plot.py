"""`LossPlot`: a run's raw and smoothed loss drawn in Unicode braille, a line at a time.

Each character cell holds 2 × 4 dots, so a 60 × 10 plot has 120 × 40 dots. `braille_cells`
maps the points of each series onto the dots and joins consecutive points with a line, so a
curve stays unbroken however few points it has; a cell takes the style of the last series that
put a dot in it (the smoothed curve is drawn over the raw one). The widget draws the y axis's
top and bottom values on the left and the first and last step under the plot, and renders its
lines once per change of curve or size.
"""

from collections.abc import Callable, Sequence
from functools import partial

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from engine.training.run_view import LossPoint

# The bit of each dot in a braille character, by dot row (0-3) and column (0-1).
DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
BRAILLE = 0x2800
AXIS_WIDTH = 8

Series = Sequence[tuple[float, float]]
Cell = tuple[int, int]  # (dot bits, index of the series drawn last in it; -1 for none)


def braille_cells(
    series: Sequence[Series],
    columns: int,
    rows: int,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> list[list[Cell]]:
    """`rows` lists of `columns` cells with the dots of every series, each a list of (x, y)
    points sorted by x, scaled so `x_range` spans the width and `y_range` the height (high
    values on top)."""
    width, height = 2 * columns, 4 * rows
    cells: list[list[Cell]] = [[(0, -1)] * columns for _ in range(rows)]
    x0, x1 = x_range
    y0, y1 = y_range

    def dot_x(x: float) -> int:
        return 0 if x1 <= x0 else round((x - x0) / (x1 - x0) * (width - 1))

    def dot_y(y: float) -> int:
        return height // 2 if y1 <= y0 else round((y1 - y) / (y1 - y0) * (height - 1))

    def put(index: int, x: int, y: int) -> None:
        x, y = min(max(x, 0), width - 1), min(max(y, 0), height - 1)
        bits, _ = cells[y // 4][x // 2]
        cells[y // 4][x // 2] = (bits | DOT_BITS[y % 4][x % 2], index)

    for index, points in enumerate(series):
        previous: tuple[int, int] | None = None
        for x, y in points:
            here = (dot_x(x), dot_y(y))
            if previous is None:
                put(index, *here)
            else:
                _join(previous, here, partial(put, index))
            previous = here
    return cells


def _join(start: tuple[int, int], end: tuple[int, int], put: Callable[[int, int], None]) -> None:
    """Dots from `start` to `end`: across each column, down or up to where the line is."""
    (x0, y0), (x1, y1) = start, end
    last_y = y0
    span = x1 - x0
    for x in range(x0, x1 + 1):
        y = y1 if span == 0 else round(y0 + (y1 - y0) * (x - x0) / span)
        low, high = sorted((last_y, y))
        for dot in range(low, high + 1):
            put(x, dot)
        last_y = y


def y_range(curve: Sequence[LossPoint]) -> tuple[float, float]:
    """The lowest and highest loss, raw or smoothed; a flat curve gets a unit range."""
    values = [p.loss for p in curve] + [p.smooth for p in curve]
    low, high = min(values), max(values)
    return (low - 0.5, high + 0.5) if high == low else (low, high)


def number(value: float) -> str:
    """A loss as the axis shows it: four significant digits."""
    return f"{value:.4g}"


class LossPlot(Widget):
    """The loss curve of one run; `show` gives it new points."""

    COMPONENT_CLASSES = {"loss-plot--raw", "loss-plot--smooth", "loss-plot--axis"}
    DEFAULT_CSS = """
    LossPlot > .loss-plot--raw { color: $text-muted; }
    LossPlot > .loss-plot--smooth { color: $accent; text-style: bold; }
    LossPlot > .loss-plot--axis { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._curve: tuple[LossPoint, ...] = ()
        self._empty = "No loss logged yet."
        self._lines: list[Strip] | None = None

    @property
    def curve(self) -> tuple[LossPoint, ...]:
        return self._curve

    def show(self, curve: tuple[LossPoint, ...], empty: str = "No loss logged yet.") -> None:
        """Draw `curve`; `empty` is said instead when it has no point."""
        if curve == self._curve and empty == self._empty:
            return
        self._curve, self._empty = curve, empty
        self._lines = None
        self.refresh()

    def on_resize(self) -> None:
        self._lines = None

    def render_line(self, y: int) -> Strip:
        if self._lines is None or len(self._lines) != self.size.height:
            self._lines = self._render_lines()
        return self._lines[y] if y < len(self._lines) else Strip.blank(self.size.width)

    def _render_lines(self) -> list[Strip]:
        width, height = self.size.width, self.size.height
        base = self.rich_style
        axis = base + self.get_component_rich_style("loss-plot--axis")
        if not self._curve or width <= AXIS_WIDTH + 2 or height < 3:
            blank = Strip.blank(width, base)
            line = Strip([Segment(self._empty.center(width), axis)]).adjust_cell_length(width, base)
            return [line if y == height // 2 else blank for y in range(height)]
        columns, rows = width - AXIS_WIDTH, height - 1
        low, high = y_range(self._curve)
        first, last = self._curve[0].first, self._curve[-1].step
        raw = [(float(p.step), p.loss) for p in self._curve]
        smooth = [(float(p.step), p.smooth) for p in self._curve]
        cells = braille_cells([raw, smooth], columns, rows, (first, last), (low, high))
        styles = [
            base + self.get_component_rich_style("loss-plot--raw"),
            base + self.get_component_rich_style("loss-plot--smooth"),
        ]
        lines = []
        for row, row_cells in enumerate(cells):
            label = number(high) if row == 0 else number(low) if row == rows - 1 else ""
            segments = [Segment(f"{label:>{AXIS_WIDTH - 1}} ", axis)]
            segments.extend(_cell_segments(row_cells, styles, base))
            lines.append(Strip(segments).adjust_cell_length(width, base))
        left, right = f"step {first}", f"step {last}"
        gap = max(1, columns - len(left) - len(right))
        footer = Strip([Segment(" " * AXIS_WIDTH + left + " " * gap + right, axis)])
        lines.append(footer.adjust_cell_length(width, base))
        return lines


def _cell_segments(cells: list[Cell], styles: list[Style], base: Style) -> list[Segment]:
    """One plot row as segments, consecutive cells of one style joined."""
    segments: list[Segment] = []
    text: list[str] = []
    current = -2
    for bits, owner in cells:
        if owner != current and text:
            segments.append(Segment("".join(text), base if current < 0 else styles[current]))
            text = []
        current = owner
        text.append(chr(BRAILLE + bits) if bits else " ")
    if text:
        segments.append(Segment("".join(text), base if current < 0 else styles[current]))
    return segments
