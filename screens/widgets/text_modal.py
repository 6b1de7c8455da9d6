"""A long read-only text in a scrollable dialog: esc or q closes it."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from engine.core.terminal_text import neutralise


class TextScreen(ModalScreen[None]):
    """Shows `title` over `body` (plain text, scrollable)."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self._title = neutralise(title)
        self._body = neutralise(body)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self._title, classes="dialog-title", markup=False)
            with VerticalScroll(classes="dialog-scroll"):
                yield Static(self._body, classes="dialog-body", markup=False)
            yield Label("[b]esc[/] close", classes="dialog-keys")

    def action_close(self) -> None:
        self.dismiss(None)
