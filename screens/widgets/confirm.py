"""A yes/no question that must be answered before an action with consequences: y, n or esc."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from engine.core.terminal_text import neutralise


class ConfirmScreen(ModalScreen[bool]):
    """Shows `title` and `body`; dismisses with True on `y`, False on `n` or `esc`."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self._title = neutralise(title)
        self._body = neutralise(body)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title", markup=False)
            yield Static(self._body, classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-keys"):
                yield Label("[b]y[/] yes", classes="key-yes")
                yield Label("[b]n[/] no", classes="key-no")
                yield Label("[b]esc[/] cancel", classes="key-cancel")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
