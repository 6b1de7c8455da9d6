"""The Training pane's start form: which dataset trains which stage's adapter, and how."""

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select

from engine.core.stages import LORA_STAGES
from screens.widgets.form import FormScreen

METHODS = ("sft", "dpo")


@dataclass(frozen=True)
class StartRequest:
    dataset_id: str
    stage: str
    method: str


class StartRunScreen(FormScreen[StartRequest]):
    """Asks which dataset trains which stage's adapter, and how; enter or ctrl+s starts it,
    esc cancels. Typing a known dataset's id fills in its stage and method."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Start"),
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
            yield from self.form_end("start")

    def on_mount(self) -> None:
        if not self._datasets:
            self.show_error("No dataset yet: `cra curate-data` makes one from reviewed items.")

    @on(Input.Changed, "#form-dataset")
    def _dataset_changed(self, event: Input.Changed) -> None:
        known = self._datasets.get(event.value.strip())
        if known is not None:
            self.query_one("#form-stage", Select).value = known[0]
            self.query_one("#form-method", Select).value = _method(known[1])

    def action_submit(self) -> None:
        dataset_id = self.query_one("#form-dataset", Input).value.strip()
        stage = self.query_one("#form-stage", Select).value
        method = self.query_one("#form-method", Select).value
        if not dataset_id:
            self.show_error("Name the dataset to train on.")
            return
        if not isinstance(stage, str):
            self.show_error("Choose the stage whose adapter the run trains.")
            return
        self.dismiss(StartRequest(dataset_id, stage, str(method)))


def _method(dataset_format: str) -> str:
    return "dpo" if dataset_format == "preference" else "sft"
