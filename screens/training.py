"""The Training pane: the training runs, and the selected one's progress, loss curve and log.

On top, every run, newest first, from the `training_runs` table (so runs started before the
console opened are there): stage, method, dataset, status, step, loss, start. In the middle,
the selected run: its status, backend, dataset and base, a progress bar with the ETA, tokens
per second and memory, and its result once there is one; beside it, the loss curve (raw and
smoothed, in braille). Below, its raw log (`train.log`), followed as it grows.

A half-second timer polls in a thread worker that only posts messages, never two at once, and
only while the pane is in view: it brings the running runs' rows up to date (`reconcile`),
reads the list, and reads what the selected run's folder gained since the previous poll (a
`RunView` over metrics.jsonl and result.json, a `LogTail` over train.log that opens a big log
near its end). Those two belong to the poll worker alone: selecting a run (the newest, when the
list first arrives) gives the next poll a new watch token, so it starts them afresh. When a
run's status turns done, failed or stopped between two polls, the pane notifies and rings the
bell.

`t` starts a run (a form: dataset, stage, method), `x` stops the selected run (after a
confirmation), `u` resumes it; each calls `engine.training.runs` in a thread worker and an
engine refusal becomes a notification.
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Input, Label, ProgressBar, Select, Static

from engine.core.errors import CraError
from engine.core.stages import LORA_STAGES
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from engine.harness.progress import reopened
from engine.training.contract import LOG_FILE
from engine.training.log_tail import LogTail, TailRead
from engine.training.run_view import TERMINAL, RunRow, RunState, RunView, recent_runs
from screens import PaneScreen
from screens.harness import duration_text
from screens.training_log import RING_LINES, LogView
from screens.training_plot import LossPlot, number
from screens.widgets.confirm import ConfirmScreen

POLL_S = 0.5
# What a worker turns into a message rather than a crash: refusals, a busy database, I/O.
WORKER_ERRORS = (CraError, sqlite3.Error, OSError)
METHODS = ("sft", "dpo")
LABEL_WIDTH = 8
STATUS_STYLE = {
    "pending": "dim",
    "running": "bold green",
    "stopping": "yellow",
    "stopped": "yellow",
    "done": "bold cyan",
    "failed": "bold red",
}
COLUMNS = (
    ("#", "id"),
    ("Stage", "stage"),
    ("Method", "method"),
    ("Dataset", "dataset"),
    ("Status", "status"),
    ("Step", "step"),
    ("Loss", "loss"),
    ("Started", "started"),
    ("Backend", "backend"),
)
Reconcile = Callable[[Workspace], object]


def reconcile_running(ws: Workspace) -> None:
    """Bring the running runs' rows up to date from their folders and workers."""
    from engine.training.runs import reconcile_runs

    reconcile_runs(ws)


# -- formatting ---------------------------------------------------------------------------


def when(timestamp: str | None) -> str:
    """`2026-05-02T09:16:00Z` as `2026-05-02 09:16`; `—` when unknown."""
    return "—" if not timestamp else timestamp[:16].replace("T", " ")


def memory_text(megabytes: float | None) -> str:
    if megabytes is None:
        return "—"
    return f"{megabytes / 1024:.1f} GiB" if megabytes >= 1024 else f"{megabytes:.0f} MiB"


def loss_text(loss: float | None) -> str:
    return "—" if loss is None else number(loss)


def step_text(step: int | None, max_steps: int | None) -> str:
    if step is None:
        return "—"
    return f"{step:,}/{max_steps:,}" if max_steps is not None else f"{step:,}"


def headline(reason: str) -> str:
    """A reason's first line (a failed run's reason goes on with the end of its log, which
    the log view shows in full)."""
    first, _, rest = reason.strip().partition("\n")
    return f"{first} (…)" if rest else first


def run_cells(run: RunRow) -> dict[str, Text]:
    """One run's row in the table, by column key."""
    return {
        "id": Text(str(run.id), justify="right"),
        "stage": Text(run.stage),
        "method": Text(run.method),
        "dataset": Text(neutralise(run.dataset_id)),
        "status": Text(run.status, style=STATUS_STYLE.get(run.status, "")),
        "step": Text(step_text(run.step, run.max_steps), justify="right"),
        "loss": Text(loss_text(run.loss), justify="right"),
        "started": Text(when(run.started_at or run.created_at)),
        "backend": Text(neutralise(run.backend or "—")),
    }


def head_table(run: RunRow, state: RunState | None) -> Table:
    """The selected run: status, backend, dataset and base, settings, times, reason."""
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True, width=LABEL_WIDTH)
    table.add_column(ratio=1, overflow="fold")
    backend = run.backend or (state.result.backend if state and state.result else None)
    table.add_row(
        "Status",
        Text.assemble(
            (run.status, STATUS_STYLE.get(run.status, "")),
            neutralise(f" · backend {backend or '—'}"),
        ),
    )
    spec = state.spec if state is not None else None
    base = f"base {run.base_model}" + (f" ({spec.base_model_path})" if spec is not None else "")
    table.add_row("Dataset", Text(neutralise(f"{run.dataset_id} · {base}")))
    if spec is not None:
        hyper = spec.hyper
        steps = f"{hyper.max_steps} steps" if hyper.max_steps else f"{hyper.epochs:g} epochs"
        table.add_row(
            "Settings",
            f"r{hyper.rank} α{hyper.lora_alpha} · lr {hyper.learning_rate:g} {hyper.scheduler} "
            f"· {steps} · batch {hyper.batch_size}×{hyper.gradient_accumulation}",
        )
    started = f"{when(run.started_at or run.created_at)} by {run.created_by or '—'}"
    table.add_row("Started", Text(neutralise(started)))
    if run.finished_at:
        table.add_row("Finished", when(run.finished_at))
    if run.reason:
        style = STATUS_STYLE.get(run.status, "")
        table.add_row("Reason", Text(neutralise(headline(run.reason)), style=style))
    return table


def stats_table(state: RunState) -> Table:
    """The selected run's figures from its folder: progress, speed, loss, result."""
    table = Table(box=None, padding=(0, 1, 0, 0), show_header=False, expand=True)
    table.add_column(style="bold", no_wrap=True, width=LABEL_WIDTH)
    table.add_column(ratio=1, overflow="fold")
    latest = state.latest
    if latest is None:
        table.add_row("Step", Text("no step logged yet", style="dim"))
    else:
        progress = state.progress or 0.0
        table.add_row(
            "Step",
            f"{latest.step:,}/{latest.max_steps:,} · {100 * progress:.1f} % · "
            f"ETA {duration_text(state.eta_s)} · {duration_text(latest.elapsed_s)} so far",
        )
        tokens = "—" if state.tokens_per_s is None else f"{state.tokens_per_s:,.0f}"
        table.add_row("Speed", f"{tokens} tokens/s · memory {memory_text(state.memory_mb)}")
        smooth = state.curve[-1].smooth if state.curve else None
        lr = "—" if latest.learning_rate is None else f"{latest.learning_rate:.3g}"
        grad = "—" if latest.grad_norm is None else f"{latest.grad_norm:.3g}"
        table.add_row(
            "Loss",
            f"{loss_text(latest.loss)} · smoothed {loss_text(smooth)} · lr {lr} · grad {grad}",
        )
    result = state.result
    if result is not None:
        text = Text.assemble(
            (result.status, STATUS_STYLE.get(result.status, "")),
            f" after {result.steps:,}/{result.max_steps:,} steps in "
            f"{duration_text(result.train_runtime_s)} · final loss {loss_text(result.final_loss)}",
        )
        if result.adapter_dir:
            text.append(neutralise(f" · adapter {result.adapter_dir}/"))
        if result.effective:
            used = ", ".join(f"{name} {value}" for name, value in result.effective.items())
            text.append(neutralise(f" · instead: {used}"), style="dim")
        table.add_row("Result", text)
    return table


# -- messages -----------------------------------------------------------------------------


class RunsPolled(Message):
    def __init__(self, runs: list[RunRow]) -> None:
        super().__init__()
        self.runs = runs


class RunRead(Message):
    """What the folder of the run watched under `token` gained; `fresh`: a new watch."""

    def __init__(
        self, token: int, run_id: int, fresh: bool, state: RunState, log: TailRead
    ) -> None:
        super().__init__()
        self.token = token
        self.run_id = run_id
        self.fresh = fresh
        self.state = state
        self.log = log


class PollDone(Message):
    """A poll ended; `error` is set when it could not finish."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class ActionDone(Message):
    """A run action returned: what it did, or the engine's refusal."""

    def __init__(self, text: str, error: str | None, select: int | None = None) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.select = select


@dataclass
class Watch:
    """The folder of one run as the poll worker follows it."""

    token: int
    run_id: int
    view: RunView
    log: LogTail

    def close(self) -> None:
        self.view.close()
        self.log.close()


# -- the start form -----------------------------------------------------------------------


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


# -- the pane -----------------------------------------------------------------------------


class TrainingScreen(PaneScreen):
    """The runs on top; the selected run's progress and loss curve, then its log."""

    PANE_TITLE = "Training"
    CSS_PATH = "training.tcss"
    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("t", "start", "Train", tooltip="Start a training run on a curated dataset"),
        Binding("x", "stop", "Stop", tooltip="Stop the run at its next step, after a checkpoint"),
        Binding("u", "resume", "Resume", tooltip="Resume a stopped or failed run"),
        Binding("l", "focus_log", "Log", tooltip="Scroll the run's log (end follows it)"),
        Binding("escape", "focus_runs", "Back to the runs", show=False),
    ]

    def __init__(
        self,
        workspace: Workspace,
        reconcile: Reconcile = reconcile_running,
        log_lines: int = RING_LINES,
    ) -> None:
        super().__init__()
        self._ws = workspace
        self._reconcile = reconcile
        self._log_lines = log_lines
        self._runs: dict[int, RunRow] = {}
        self._statuses: dict[int, str] | None = None
        self._selected: int | None = None
        self._token = 0
        self._state: RunState | None = None
        self._problems: set[str] = set()
        self._polling = False
        self._poll_wanted = False
        self._last_error: str | None = None
        # Touched only by the poll worker (polls never overlap).
        self._watch: Watch | None = None

    def compose_pane(self) -> ComposeResult:
        with Vertical(id="training"):
            table = DataTable(id="runs", cursor_type="row")
            table.border_title = "Training runs"
            yield table
            with Horizontal(id="middle"):
                with Vertical(id="run") as run:
                    run.border_title = "Run"
                    yield Static(id="run-head")
                    yield ProgressBar(id="run-progress", show_eta=False)
                    yield Static(id="run-stats")
                plot = LossPlot(id="curve")
                plot.border_title = "Loss"
                yield plot
            log = LogView(self._log_lines, id="log")
            log.border_title = "Log"
            yield log

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        self._render_run()
        self._timer = self.set_interval(POLL_S, self._tick, pause=True)

    def on_screen_resume(self) -> None:
        """Poll while the pane is in view, and at once when it comes back into view."""
        self._timer.resume()
        self._request_poll()

    def on_screen_suspend(self) -> None:
        self._timer.pause()

    # -- what the pane holds, for tests and the bench ------------------------------------

    @property
    def selected_run(self) -> int | None:
        return self._selected

    @property
    def run_ids(self) -> list[int]:
        return list(self._runs)

    @property
    def state(self) -> RunState | None:
        """What the selected run's folder said at the last poll."""
        return self._state

    # -- polling --------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self._polling:
            self._start_poll()

    def _request_poll(self) -> None:
        """Poll now, or right after the poll under way (whose answer may be out of date)."""
        if self._polling:
            self._poll_wanted = True
        else:
            self._start_poll()

    def _start_poll(self) -> None:
        self._polling = True
        self._poll_wanted = False
        self._poll(self._selected, self._token)

    @work(thread=True, group="poll")
    def _poll(self, wanted: int | None, token: int) -> None:
        try:
            with reopened(self._ws) as ws:
                self._reconcile(ws)
                runs = recent_runs(ws.db)
            self.post_message(RunsPolled(runs))
            run = next((run for run in runs if run.id == wanted), None)
            if run is not None:
                self._read_run(run, token)
        except WORKER_ERRORS as exc:
            self.post_message(PollDone(str(exc)))
            return
        self.post_message(PollDone(None))

    def _read_run(self, run: RunRow, token: int) -> None:
        """Read what the run's folder gained, watching it afresh under a new token."""
        watch = self._watch
        fresh = watch is None or watch.token != token or watch.run_id != run.id
        if fresh:
            if watch is not None:
                watch.close()
            run_dir = self._ws.root / run.run_dir
            # Opening a long log leaves a line of the view for the marker saying so.
            log = LogTail(run_dir / LOG_FILE, keep_last=max(1, self._log_lines - 1))
            watch = self._watch = Watch(token, run.id, RunView(run_dir), log)
        assert watch is not None
        state = watch.view.read()
        self.post_message(RunRead(token, run.id, fresh, state, watch.log.read()))

    @on(RunsPolled)
    def _runs_polled(self, message: RunsPolled) -> None:
        self._announce(message.runs)
        previous = list(self._runs)
        self._runs = {run.id: run for run in message.runs}
        table = self.query_one("#runs", DataTable)
        table.border_title = f"Training runs · {len(self._runs)}"
        if list(self._runs) == previous:
            for run in message.runs:
                for key, value in run_cells(run).items():
                    table.update_cell(str(run.id), key, value)
        else:
            table.clear()
            for run in message.runs:
                table.add_row(*run_cells(run).values(), key=str(run.id))
        if self._selected not in self._runs:
            self._select(next(iter(self._runs), None))
        if self._selected is not None:
            table.move_cursor(row=table.get_row_index(str(self._selected)), animate=False)
        self._render_run()

    def _announce(self, runs: list[RunRow]) -> None:
        """Notify, with the bell, each run whose status turned terminal since the last poll."""
        statuses = {run.id: run.status for run in runs}
        if self._statuses is not None:
            for run in runs:
                before = self._statuses.get(run.id)
                if before is None or before == run.status or run.status not in TERMINAL:
                    continue
                text = f"Run {run.id} ({run.stage}, {run.method} on {run.dataset_id}) {run.status}"
                if run.reason:
                    text += f": {headline(run.reason)}"
                severity = {"done": "information", "stopped": "warning"}.get(run.status, "error")
                self.app.notify(text, title="training", severity=severity, markup=False)  # type: ignore[arg-type]
                self.app.bell()
        self._statuses = statuses

    @on(RunRead)
    def _run_read(self, message: RunRead) -> None:
        if message.run_id != self._selected or message.token != self._token:
            return
        log = self.query_one(LogView)
        if message.fresh:
            log.reset()
            self._problems.clear()
        log.add(message.log, LOG_FILE)
        self._state = message.state
        for problem in message.state.problems:
            if problem not in self._problems:
                self._problems.add(problem)
                self.notify(problem, title="run folder", severity="warning", markup=False)
        if message.state.more or message.log.more:
            self._poll_wanted = True
        self._render_run()

    @on(PollDone)
    def _poll_done(self, message: PollDone) -> None:
        self._polling = False
        if message.error is not None and message.error != self._last_error:
            self.notify(message.error, title="training poll failed", severity="error", markup=False)
        self._last_error = message.error
        if self._poll_wanted:
            self._start_poll()

    # -- selection ------------------------------------------------------------------------

    def _select(self, run_id: int | None) -> None:
        if run_id == self._selected:
            return
        self._selected = run_id
        self._token += 1
        self._state = None
        self.query_one(LogView).reset()
        self._render_run()
        self._request_poll()

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(int(event.row_key.value))

    @on(DataTable.RowSelected, "#runs")
    def _run_chosen(self) -> None:
        self.query_one(LogView).focus()

    def action_focus_log(self) -> None:
        self.query_one(LogView).focus()

    def action_focus_runs(self) -> None:
        self.query_one("#runs").focus()

    # -- actions --------------------------------------------------------------------------

    def action_start(self) -> None:
        datasets = [
            (row["id"], row["stage"], row["format"])
            for row in self._ws.db.query(
                "SELECT id, stage, format FROM datasets ORDER BY created_at DESC, id"
            )
        ]

        def submitted(request: StartRequest | None) -> None:
            if request is not None:
                self._start_run(request)

        self.app.push_screen(StartRunScreen(datasets), submitted)

    def action_stop(self) -> None:
        run = self._runs.get(self._selected) if self._selected is not None else None
        if run is None:
            self.notify("No run to stop: start one first (t).", severity="warning")
            return
        if run.status != "running":
            self.notify(f"Run {run.id} is {run.status}: only a running run stops.", markup=False)
            return
        body = (
            "The worker saves a checkpoint at its next step and exits; the run is then "
            "stopped, and u resumes it from that checkpoint."
        )

        def confirmed(answer: bool | None) -> None:
            if answer:
                self._stop_run(run.id)

        self.app.push_screen(ConfirmScreen(f"Stop training run {run.id}?", body), confirmed)

    def action_resume(self) -> None:
        if self._selected is None:
            self.notify("No run to resume: start one first (t).", severity="warning")
            return
        self._resume_run(self._selected)

    @work(thread=True, group="run-action")
    def _start_run(self, request: StartRequest) -> None:
        from engine.training.runs import start_run

        try:
            with reopened(self._ws) as ws:
                run_id = start_run(ws, request.dataset_id, request.stage, request.method)
        except WORKER_ERRORS as exc:
            self.post_message(ActionDone("", str(exc)))
            return
        text = f"run {run_id} started: {request.stage} on {request.dataset_id}"
        self.post_message(ActionDone(text, None, select=run_id))

    @work(thread=True, group="run-action")
    def _stop_run(self, run_id: int) -> None:
        from engine.training.runs import stop_run

        try:
            with reopened(self._ws) as ws:
                stop_run(ws, run_id)
        except WORKER_ERRORS as exc:
            self.post_message(ActionDone("", str(exc)))
            return
        self.post_message(ActionDone(f"run {run_id} stopping after its next step", None))

    @work(thread=True, group="run-action")
    def _resume_run(self, run_id: int) -> None:
        from engine.training.runs import resume_run

        try:
            with reopened(self._ws) as ws:
                resume_run(ws, run_id)
        except WORKER_ERRORS as exc:
            self.post_message(ActionDone("", str(exc)))
            return
        self.post_message(ActionDone(f"run {run_id} resumed", None))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        if message.error is not None:
            self.notify(message.error, title="training", severity="error", markup=False)
        else:
            self.notify(message.text, title="training", markup=False)
        if message.select is not None:
            self._select(message.select)
        self._request_poll()

    # -- drawing --------------------------------------------------------------------------

    def _render_run(self) -> None:
        box = self.query_one("#run")
        head = self.query_one("#run-head", Static)
        stats = self.query_one("#run-stats", Static)
        bar = self.query_one("#run-progress", ProgressBar)
        plot = self.query_one(LossPlot)
        log = self.query_one(LogView)
        run = self._runs.get(self._selected) if self._selected is not None else None
        state = self._state
        if run is None:
            box.border_title = "Run"
            head.update(
                Text("No training run yet: press t to start one on a curated dataset.", "dim")
                if self._statuses is not None
                else Text("Reading the runs…", style="dim")
            )
            stats.update("")
            bar.display = False
            plot.show((), "No run selected.")
            log.border_title = "Log"
            return
        box.border_title = f"Run {run.id} · {run.stage} · {run.method}"
        head.update(head_table(run, state))
        log.border_title = f"Log · {run.run_dir}/{LOG_FILE}"
        if state is None:
            stats.update(Text("Reading the run's folder…", style="dim"))
            bar.display = False
            plot.show((), "Reading the run's folder…")
            return
        latest = state.latest
        bar.display = latest is not None
        if latest is not None:
            done = latest.max_steps if state.progress == 1.0 else latest.step
            bar.update(total=latest.max_steps, progress=done)
        stats.update(stats_table(state))
        plot.border_title = "Loss · raw (dim) and smoothed" + (
            f" · {state.steps_per_point} steps a point" if state.steps_per_point > 1 else ""
        )
        plot.show(state.curve)
