"""`LogView`: the tail of a run's raw log, drawn a line at a time (Line API) from a `LineRing`.

The view keeps at most `capacity` lines, however long the log, and draws only those in view.
Each line is made safe to draw when it arrives: a progress bar's frames overwrite each other
with `\\r`, so only the last frame is kept, after a visible `\\x0d` that says earlier ones were
there; every other control character is shown as its escape (`engine.core.terminal_text`), tabs
are expanded, at most `MAX_SHOWN` characters. The unfinished last line of the log is drawn
dimmed under the rest.

The view is anchored to its end (Textual's `anchor`), so it follows the log; scrolled up, the
anchor is released and the view stays on the lines in view as new ones arrive (and as the
oldest leave the ring); scrolling back to the end (or `end`) follows again. Where the log was
truncated or rotated, or where lines were passed over, a marker line says so.
"""

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.core.terminal_text import neutralise
from engine.training.log_tail import LineRing, TailRead
from screens.datasets import size_text

RING_LINES = 5000
MAX_SHOWN = 2000
MARKER = "\x00"  # starts a marker line; log lines never hold it (controls are neutralised)


def shown(line: str) -> str:
    """`line` as the view draws it."""
    if line.isascii() and line.isprintable():
        return line[:MAX_SHOWN]
    line = line.removesuffix("\r")
    frame = line.rfind("\r")
    return neutralise(line[frame:] if frame >= 0 else line).expandtabs(8)[:MAX_SHOWN]


class LogView(ScrollView, can_focus=True):
    """The last `capacity` lines of a log, following its end while scrolled to the end."""

    COMPONENT_CLASSES = {"log-view--marker", "log-view--partial"}
    DEFAULT_CSS = """
    LogView > .log-view--marker { color: $warning; text-style: italic; }
    LogView > .log-view--partial { color: $text-muted; }
    """

    def __init__(self, capacity: int = RING_LINES, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ring = LineRing(capacity)
        self._partial = ""
        self._widest = 0

    @property
    def partial(self) -> str:
        return self._partial

    def reset(self) -> None:
        """Forget every line (another log is about to be shown)."""
        self.ring.clear()
        self._partial = ""
        self._widest = 0
        self._resize()
        self.anchor()

    def on_mount(self) -> None:
        self.anchor()

    def add(self, read: TailRead, name: str) -> None:
        """Show what a read of the log `name` found."""
        lines: list[str] = []
        if read.restarted is not None:
            lines.append(f"{MARKER}── {name} was {read.restarted}: reading it from its start ──")
        if read.skipped:
            lines.append(f"{MARKER}── {size_text(read.skipped)} of {name} not shown ──")
        lines.extend(shown(line) for line in read.lines)
        partial = shown(read.partial)
        if not lines and partial == self._partial:
            return
        dropped = self.ring.extend(lines)
        self._partial = partial
        self._widest = max([self._widest, len(partial), *(len(line) for line in lines)])
        self._resize()
        if dropped and not self.following:
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self.refresh()

    @property
    def following(self) -> bool:
        """The view keeps to the end of the log as it grows."""
        return self.is_anchored and not self._anchor_released

    def _resize(self) -> None:
        self.virtual_size = Size(self._widest, len(self.ring) + (1 if self._partial else 0))

    def line_text(self, index: int) -> str:
        """The text of line `index` of the view (the ring's lines, then the partial line)."""
        if index < len(self.ring):
            return self.ring[index].removeprefix(MARKER)
        return self._partial

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = self.scroll_offset.y + y
        kept = len(self.ring)
        if index < kept:
            text = self.ring[index]
            style = base
            if text.startswith(MARKER):
                text = text[1:]
                style = base + self.get_component_rich_style("log-view--marker")
        elif index == kept and self._partial:
            text = self._partial
            style = base + self.get_component_rich_style("log-view--partial")
        else:
            return Strip.blank(width, base)
        left = self.scroll_offset.x
        strip = Strip([Segment(text, style)]).crop(left, left + width)
        return strip.adjust_cell_length(width, base)
