"""A progress bar for a pane that is polled: exact, and still when nothing changes.

Textual's `ProgressBar` suits a bar a task drives; on a pane it costs and it drifts:

- its `Bar` rounds a new percentage to the half-cells of the width it has when the value
  arrives, and keeps a value set before the first layout (width 0) unrounded, so the same
  campaign at 57 % was drawn 18 or 18½ cells long depending on whether the first poll answered
  before or after layout. This bar keeps the value as given: what it draws depends only on the
  value and the width it is drawn at.
- a bar with no value yet animates (a timer at 15 frames a second) even when hidden, and the
  `ProgressBar` recomputes its ETA every second even with `show_eta=False`: most of an idle
  Training or Harness pane's CPU. This bar never animates and keeps no timer; the panes hide it
  while it has no value.
"""

from textual import events
from textual.app import ComposeResult
from textual.widgets import ProgressBar
from textual.widgets._progress_bar import Bar


class _ExactBar(Bar):
    def _validate_percentage(self, percentage: float | None) -> float | None:
        return percentage

    def watch_percentage(self, percentage: float | None) -> None:
        self.auto_refresh = None


class StableProgressBar(ProgressBar):
    """A `ProgressBar` drawn from its value alone, with no timer of its own."""

    def compose(self) -> ComposeResult:
        # Textual's compose, with its bar (not exported: `textual.widgets._progress_bar`) swapped.
        for widget in super().compose():
            if isinstance(widget, Bar):
                bar = _ExactBar(id="bar", clock=self._clock, bar_renderable=self.BAR_RENDERABLE)
                yield bar.data_bind(ProgressBar.percentage).data_bind(ProgressBar.gradient)
            else:
                yield widget

    def on_mount(self, event: events.Mount) -> None:
        # Skips ProgressBar's own mount handler, whose only lasting effect is the ETA timer.
        event.prevent_default()
