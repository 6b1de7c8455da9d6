"""A progress bar drawn from its value and its width at drawing time.

Textual's `Bar` rounds a new percentage to the half-cells of the width it has when the value
arrives; a value set before the first layout (width 0) is kept unrounded. The same campaign at
57 % was therefore drawn 18 or 18½ cells long depending on whether the first poll answered before
or after the pane was laid out. This bar keeps the value as given, so what it draws depends only
on the value and the width it is drawn at.
"""

from textual.app import ComposeResult
from textual.widgets import ProgressBar
from textual.widgets._progress_bar import Bar


class _ExactBar(Bar):
    def _validate_percentage(self, percentage: float | None) -> float | None:
        return percentage


class StableProgressBar(ProgressBar):
    """A `ProgressBar` whose bar does not depend on when its value was set."""

    def compose(self) -> ComposeResult:
        # Textual's compose, with its bar (not exported: `textual.widgets._progress_bar`) swapped.
        for widget in super().compose():
            if isinstance(widget, Bar):
                bar = _ExactBar(id="bar", clock=self._clock, bar_renderable=self.BAR_RENDERABLE)
                yield bar.data_bind(ProgressBar.percentage).data_bind(ProgressBar.gradient)
            else:
                yield widget
