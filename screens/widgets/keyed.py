"""A `Static` that redraws only when what it shows changed.

`Static.update` lays the whole screen out again and repaints the widget, even with the same
content: a pane that redraws a live view each poll from data that did not move spends the UI
thread, and the keys waiting behind it, on nothing.
"""

from collections.abc import Callable

from rich.console import RenderableType
from textual.widgets import Static


class KeyedStatic(Static):
    """`show(key, make)` draws `make()` when `key` differs from the last one shown."""

    _shown_key: object = None
    _shown = False

    def show(self, key: object, make: Callable[[], RenderableType]) -> None:
        if self._shown and key == self._shown_key:
            return
        self._shown, self._shown_key = True, key
        self.update(make())
