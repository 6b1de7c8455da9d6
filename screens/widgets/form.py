"""`FormScreen`: a modal form that enter or ctrl+s submits and esc cancels, whose error line
stays under the fields until the operator fixes what it names."""

from typing import TypeVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

Result = TypeVar("Result")


class FormScreen(ModalScreen[Result | None]):
    """A form's shared end: the error line, the keys, submitting and cancelling. A form binds
    ctrl+s to `submit` and esc to `cancel`, and defines `submit`."""

    DEFAULT_CLASSES = "modal"

    def form_end(self, verb: str) -> ComposeResult:
        """The error line (hidden until `show_error`) and the keys, `verb` naming the submit."""
        error = Static("", id="form-error", markup=False)
        error.display = False
        yield error
        with Horizontal(classes="dialog-keys"):
            yield Label(f"[b]enter[/] / [b]ctrl+s[/] {verb}", classes="key-yes")
            yield Label("[b]esc[/] cancel", classes="key-cancel")

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define action_submit()")

    def action_cancel(self) -> None:
        self.dismiss(None)

    def show_error(self, text: str) -> None:
        error = self.query_one("#form-error", Static)
        error.update(text)
        error.display = True
