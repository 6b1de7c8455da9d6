"""The panes' footer: Textual's, rebuilt only when the keys it shows change.

Textual's `Footer` recomposes on every bindings update: each time its screen comes back into
view and each time focus moves. Recomposing mounts and styles a widget per key against the
whole console's stylesheet, most of a pane switch's time, to draw the same keys again.
"""

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


def shown_keys(screen: Screen[object]) -> tuple[Hashable, ...]:
    """What the footer draws of `screen`'s bindings: each shown key, its words and state."""
    return tuple(
        (binding.key, binding.action, binding.description, binding.key_display, enabled, tooltip)
        for _node, binding, enabled, tooltip in screen.active_bindings.values()
        if binding.show
    )


class PaneFooter(Footer):
    """A `Footer` that skips a recompose when the keys it would show are the ones it shows."""

    _composed: tuple[Hashable, ...] | None = None

    def compose(self) -> ComposeResult:
        self._composed = shown_keys(self.screen) if self._bindings_ready else None
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        if self._bindings_ready and self._composed == shown_keys(screen):
            return
        super().bindings_changed(screen)
