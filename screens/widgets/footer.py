"""The panes' footer: Textual's, whose keys are shown and hidden instead of rebuilt.

Textual's `Footer` recomposes on every bindings update: each time its screen comes back into
view and each time focus moves. Recomposing mounts and styles a widget per key against the
whole console's stylesheet, most of a pane switch's time and half of a tab's (focus moving from
a table to a list changes the keys shown). `PaneFooter` composes every key it has shown so far,
hiding those the focused widget does not offer, so moving between widgets it has seen shows
and hides keys; it recomposes only when a key it has never shown appears.
"""

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

Shown = tuple[str, str, str, str, bool, str]
"""One key as the footer draws it: key, action, description, key display, enabled, tooltip."""


def shown_keys(screen: Screen[object]) -> list[Shown]:
    """What the footer draws of `screen`'s bindings, in order: the first shown binding of each
    action (as Textual's `Footer` draws them), without the command palette's key."""
    palette = screen.app.COMMAND_PALETTE_BINDING
    keys: dict[str, Shown] = {}
    for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items():
        if binding.show and binding.action not in keys and key != palette:
            display = screen.app.get_key_display(binding)
            keys[binding.action] = (
                binding.key,
                binding.action,
                binding.description,
                display,
                enabled,
                tooltip,
            )
    return list(keys.values())


def merged(known: list[Shown], shown: list[Shown]) -> list[Shown]:
    """`known` with the keys of `shown` it lacks, each after the key `shown` has before it; when
    the two disagree on an order, `shown` alone."""
    result = list(known)
    previous = -1
    for key in shown:
        if key in result:
            previous = result.index(key)
        else:
            previous += 1
            result.insert(previous, key)
    return result if _in_order(shown, result) else list(shown)


def _in_order(shown: list[Shown], known: list[Shown]) -> bool:
    """Whether `shown` is `known` with some keys left out."""
    rest = iter(known)
    return all(key in rest for key in shown)


class PaneFooter(Footer):
    """A `Footer` that hides and shows the keys it has composed instead of composing again."""

    def __init__(self) -> None:
        super().__init__()
        self._known: list[Shown] = []
        self._keys: dict[Shown, FooterKey] = {}
        self._showing: list[Shown] | None = None

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        if any(b.group is not None for _n, b, _e, _t in self.screen.active_bindings.values()):
            raise ValueError("PaneFooter draws no binding groups; give the binding no group")
        shown = shown_keys(self.screen)
        self._known = merged(self._known, shown)
        self._showing = shown
        self._keys = {}
        for entry in self._known:
            key, action, description, display, enabled, tooltip = entry
            widget = FooterKey(
                key, display, description, action, disabled=not enabled, tooltip=tooltip
            ).data_bind(compact=Footer.compact)
            widget.display = entry in shown
            self._keys[entry] = widget
            yield widget
        yield from self._palette_key()

    def _palette_key(self) -> ComposeResult:
        """The command palette's key on the right, as Textual's `Footer` draws it."""
        app = self.app
        if not (self.show_command_palette and app.ENABLE_COMMAND_PALETTE):
            return
        found = self.screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)
        if found is None:
            return
        _node, binding, enabled, _tooltip = found
        yield FooterKey(
            binding.key,
            app.get_key_display(binding),
            binding.description,
            binding.action,
            classes="-command-palette",
            disabled=not enabled,
            tooltip=binding.tooltip or binding.description,
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not (self._bindings_ready and self.is_attached and screen is self.screen):
            super().bindings_changed(screen)
            return
        shown = shown_keys(screen)
        if shown == self._showing:
            return
        if not _in_order(shown, self._known):
            super().bindings_changed(screen)
            return
        self._showing = shown
        wanted = set(shown)
        for entry, widget in self._keys.items():
            widget.display = entry in wanted
