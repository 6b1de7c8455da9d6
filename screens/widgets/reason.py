"""Asks why (a package is rejected, a promotion overrides the gate): enter submits a non-blank
reason, esc cancels."""

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.core.terminal_text import neutralise


class ReasonScreen(ModalScreen[str | None]):
    """Dismisses with the stripped reason, or None when cancelled; a blank reason is refused."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, prompt: str, blank: str = "A rejection needs a reason.") -> None:
        super().__init__()
        self._title = neutralise(title)
        self._prompt = neutralise(prompt)
        self._blank = blank

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title", markup=False)
            yield Static(self._prompt, classes="dialog-body", markup=False)
            yield Input(placeholder="reason (required)", id="reason")
            yield Label("[b]enter[/] submit   [b]esc[/] cancel", classes="dialog-keys")

    @on(Input.Submitted, "#reason")
    def _submit(self, event: Input.Submitted) -> None:
        reason = event.value.strip()
        if not reason:
            self.notify(self._blank, severity="warning")
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
