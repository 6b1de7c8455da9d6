"""The Training pane's start form: a curated dataset to train on, and the run's settings.

The datasets are those `cra train start` accepts (`trainable_datasets`), newest first; the one
picked sets the stage and method the run trains. The settings are that stage's own
(`stage_settings`: LoRA Training Strategy §7.3's defaults under the workspace's
`[training.hyper.<stage>]`), each written as `--set` takes it; those the operator changes go to
the engine as `cra train start --set KEY=VALUE` does, the rest stay the engine's to fill in.

The form starts the run itself, in a worker: a refusal (a guardrail, a bad setting, a dataset
whose files are gone) stays on the form under the fields, the input as it was; a started run
closes it with the run's id.
"""

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Label, Static

from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from engine.training.start_options import (
    SETTINGS,
    UNSET_MEANS,
    StartOptions,
    TrainableDataset,
)
from screens.widgets.form import FormScreen
from screens.widgets.formatting import when
from screens.workers import Fetches

# A DPO run of execute_code keeps the LoRA shape of the SFT adapter it continues.
SHAPE = ("rank", "alpha", "dropout", "target_modules")


@dataclass(frozen=True)
class StartRequest:
    """A run to start: the dataset, the stage and method it trains, and the settings the
    operator changed as `KEY=VALUE` (what `cra train start --set` takes)."""

    dataset_id: str
    stage: str
    method: str
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Started:
    """A run the form started."""

    request: StartRequest
    run_id: int


StartCall = Callable[[Workspace, StartRequest], int]


def continues_adapter(dataset: TrainableDataset) -> bool:
    """A DPO run of execute_code continues the stage's SFT adapter (LoRA Training Strategy §1)."""
    return (dataset.stage, dataset.method) == ("execute_code", "dpo")


class StartRunScreen(FormScreen[Started], Fetches):
    """Pick a dataset, adjust the settings; enter or ctrl+s starts the run, esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Start"),
        Binding("escape", "cancel", "Cancel"),
    ]
    # Below 40 lines the settings scroll in fewer of them (`.-short` in training.tcss).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    def __init__(self, workspace: Workspace, options: StartOptions, start: StartCall) -> None:
        super().__init__()
        self._ws = workspace
        self._options = options
        self._start = start
        self._datasets = {dataset.id: dataset for dataset in options.datasets}
        self._dataset: TrainableDataset | None = None
        # The default each setting's input shows (its value until the operator edits it).
        self._shown: dict[str, str] = {}
        self._starting = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog start-run"):
            yield Label("Start a training run", classes="dialog-title", id="form-title")
            table: DataTable[Text] = DataTable(id="form-datasets", cursor_type="row")
            table.border_title = "Curated datasets"
            yield table
            yield Static(id="form-trains")
            with VerticalScroll(id="form-settings") as settings:
                settings.border_title = "Settings (--set)"
                with Grid(id="form-settings-grid"):
                    for name in SETTINGS:
                        yield Label(name, classes="setting-name", id=f"label-{name}")
                        yield Input(
                            placeholder=UNSET_MEANS.get(name, ""),
                            compact=True,
                            id=f"set-{name}",
                        )
            yield from self.form_end("start")

    def on_mount(self) -> None:
        table = self.query_one("#form-datasets", DataTable)
        for label, key in (
            ("Dataset", "id"),
            ("Stage", "stage"),
            ("Method", "method"),
            ("Train", "train"),
            ("Eval", "eval"),
            ("Created", "created"),
        ):
            table.add_column(label, key=key)
        for dataset in self._options.datasets:
            table.add_row(
                Text(neutralise(dataset.id)),
                Text(dataset.stage),
                Text(dataset.method),
                Text(f"{dataset.train_count:,}", justify="right"),
                Text(f"{dataset.eval_count:,}", justify="right"),
                Text(when(dataset.created_at)),
                key=dataset.id,
            )
        if not self._datasets:
            self.query_one("#form-trains", Static).update("")
            self.query_one("#form-settings").display = False
            self.show_error(
                "No curated dataset to train on: `cra curate-data` makes one from a stage's "
                "reviewed items (the Datasets pane's c)."
            )
        table.focus()

    # -- what the form holds -----------------------------------------------------------------

    @property
    def dataset(self) -> TrainableDataset | None:
        """The dataset picked."""
        return self._dataset

    def settings(self) -> tuple[str, ...]:
        """The settings the operator changed, as `KEY=VALUE`; an emptied one is `KEY=null`."""
        changed = []
        for name in SETTINGS:
            field = self.query_one(f"#set-{name}", Input)
            text = field.value.strip()
            if field.disabled or text == self._shown.get(name):
                continue
            changed.append(f"{name}={text or 'null'}")
        return tuple(changed)

    # -- picking a dataset -------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#form-datasets")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._pick(self._datasets[event.row_key.value])

    @on(DataTable.RowSelected, "#form-datasets")
    def _chosen(self) -> None:
        self.action_submit()

    def _pick(self, dataset: TrainableDataset) -> None:
        """Show what `dataset` trains, and its stage's settings: a setting the operator edited
        keeps the edit, the others change to the new stage's default."""
        self._dataset = dataset
        stage = self._options.settings[dataset.stage]
        keeps_shape = continues_adapter(dataset)
        for name in SETTINGS:
            field = self.query_one(f"#set-{name}", Input)
            default = "" if keeps_shape and name in SHAPE else stage.values[name]
            if field.disabled or field.value.strip() == self._shown.get(name, ""):
                field.value = default
            field.disabled = keeps_shape and name in SHAPE
            field.placeholder = "the SFT adapter's" if field.disabled else UNSET_MEANS.get(name, "")
            self.query_one(f"#label-{name}", Label).set_class(
                name in stage.configured, "configured"
            )
            self._shown[name] = default
        self.query_one("#form-trains", Static).update(self._trains_text(dataset))
        if stage.error is not None:
            self.show_error(stage.error)
        else:
            self.query_one("#form-error").display = False

    def _trains_text(self, dataset: TrainableDataset) -> Text:
        stage = self._options.settings[dataset.stage]
        text = Text.assemble(
            "Trains the ",
            (dataset.stage, "bold"),
            " adapter with ",
            (dataset.method, "bold"),
            f" on the {dataset.base_model} base. Defaults: LoRA Training Strategy §7.3 at "
            f"rank {stage.values['rank']}",
        )
        if stage.configured:
            text.append(f", cra.toml [training.hyper.{dataset.stage}] for ")
            text.append(", ".join(stage.configured), style="bold")
        text.append(".")
        if continues_adapter(dataset):
            text.append(
                " It continues the newest execute_code SFT version and keeps its "
                f"{', '.join(SHAPE)}."
            )
        return text

    # -- starting ----------------------------------------------------------------------------

    def action_submit(self) -> None:
        if self._starting:
            return
        dataset = self._dataset
        if dataset is None:
            self.show_error("No dataset picked: a run trains on a curated dataset.")
            return
        request = StartRequest(dataset.id, dataset.stage, dataset.method, self.settings())
        self._starting = True
        self.query_one("#form-title", Label).update(f"Starting a run on {dataset.id}…")
        self.fetch(
            lambda ws: self._start(ws, request),
            lambda run_id: self.dismiss(Started(request, run_id)),
            title="training",
            failed=self._refused,
            group="start",
        )

    def action_cancel(self) -> None:
        """Cancel, unless a start is under way: its answer (the run, or why not) comes here."""
        if not self._starting:
            self.dismiss(None)

    def _refused(self, error: str) -> None:
        self._starting = False
        self.query_one("#form-title", Label).update("Start a training run")
        self.show_error(error)
