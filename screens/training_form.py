"""The Training pane's start form: which dataset trains which stage's adapter, and how."""

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, Static

from engine.training_data.stages import LORA_STAGES

METHODS = ("sft", "dpo")


@dataclass(frozen=True)
class StartRequest:
    dataset_id: str
    stage: str
    method: str


class StartRunScreen(ModalScreen[StartRequest | None]):
    """Asks which dataset trains which stage's adapter, and how; enter or ctrl+s starts it,
    esc cancels. Typing a known dataset's id fills in its stage and method."""

    DEFAULT_CLASSES = "modal"
    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, datasets: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self._datasets = {dataset_id: (stage, fmt) for dataset_id, stage, fmt in datasets}

    def compose(self) -> ComposeResult:
        first = next(iter(self._datasets), "")
        stage, fmt = self._datasets.get(first, (None, "sft"))
        with Vertical(classes="dialog start-run"):
            yield Label("Start a training run", classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("Dataset", classes="form-label")
                yield Input(
                    first,
                    placeholder="dataset id (cra curate-data makes one)",
                    suggester=SuggestFromList(list(self._datasets), case_sensitive=True),
                    id="form-dataset",
                )
            with Horizontal(classes="form-row"):
                yield Label("Stage", classes="form-label")
                yield Select(
                    [(name, name) for name in LORA_STAGES],
                    value=stage or Select.NULL,
                    prompt="stage",
                    id="form-stage",
                )
            with Horizontal(classes="form-row"):
                yield Label("Method", classes="form-label")
                yield Select(
                    [(name, name) for name in METHODS],
                    value=_method(fmt),
                    allow_blank=False,
                    id="form-method",
                )
            yield Static("", id="form-error", markup=False)
            with Horizontal(classes="dialog-keys"):
                yield Label("[b]enter[/] / [b]ctrl+s[/] start", classes="key-yes")
                yield Label("[b]esc[/] cancel", classes="key-cancel")

    def on_mount(self) -> None:
        self.query_one("#form-error").display = False
        if not self._datasets:
            self._show_error("No dataset yet: `cra curate-data` makes one from reviewed items.")

    @on(Input.Changed, "#form-dataset")
    def _dataset_changed(self, event: Input.Changed) -> None:
        known = self._datasets.get(event.value.strip())
        if known is not None:
            self.query_one("#form-stage", Select).value = known[0]
            self.query_one("#form-method", Select).value = _method(known[1])

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        dataset_id = self.query_one("#form-dataset", Input).value.strip()
        stage = self.query_one("#form-stage", Select).value
        method = self.query_one("#form-method", Select).value
        if not dataset_id:
            self._show_error("Name the dataset to train on.")
            return
        if not isinstance(stage, str):
            self._show_error("Choose the stage whose adapter the run trains.")
            return
        self.dismiss(StartRequest(dataset_id, stage, str(method)))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _show_error(self, text: str) -> None:
        error = self.query_one("#form-error", Static)
        error.update(text)
        error.display = True


def _method(dataset_format: str) -> str:
    return "dpo" if dataset_format == "preference" else "sft"
