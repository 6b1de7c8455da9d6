"""The Training pane: the training runs, and the selected one's progress, loss curve and log.

On top, every run, newest first, from the `training_runs` table (so runs started before the
console opened are there): stage, method, dataset, status, step, loss, the adapter version it
registered and that version's state, backend, start. In the middle, the selected run: its
status, backend, dataset and base, settings, the version it registered (or why none), a
progress bar with the ETA while it runs, tokens per second and memory, and its result once
there is one; beside it, the loss curve (raw and
smoothed, in braille). Below, its raw log (`train.log`), followed as it grows.

A half-second timer polls in a thread worker that only posts messages, never two at once, and
only while the pane is in view: it brings the running runs' rows up to date (`reconcile`),
reads the list, and reads what the selected run's folder gained since the previous poll (a
`RunView` over metrics.jsonl and result.json, a `LogTail` over train.log that opens a big log
near its end). Those two belong to the poll worker alone: selecting a run (the newest, when the
list first arrives) gives the next poll a new watch token, so it starts them afresh. When a
run's status turns done, failed or stopped between two polls, the pane notifies and rings the
bell.

`t` starts a run (a form: a curated dataset, the run's settings; a refusal stays on the form),
`x` stops the selected run (after a confirmation), `u` resumes it; each calls
`engine.training.runs` in a thread worker, and a refusal of a stop or resume becomes a
notification.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar

from engine.core.workspace import Workspace
from engine.training.contract import LOG_FILE
from engine.training.log_tail import LogTail, TailRead
from engine.training.run_view import TERMINAL, RunRow, RunState, RunView, recent_runs
from engine.training.start_options import StartOptions, parse_settings, start_options
from screens.pane import ActionDone, EnginePane
from screens.training_form import Started, StartRequest, StartRunScreen
from screens.training_view import (
    LIVE,
    about_table,
    head_table,
    headline,
    run_cells,
    stats_table,
)
from screens.widgets.keyed import KeyedStatic
from screens.widgets.progress import StableProgressBar
from screens.widgets.training_log import RING_LINES, LogView
from screens.widgets.training_plot import LossPlot

COLUMNS = (
    ("#", "id"),
    ("Stage", "stage"),
    ("Method", "method"),
    ("Dataset", "dataset"),
    ("Status", "status"),
    ("Step", "step"),
    ("Loss", "loss"),
    ("Adapter", "adapter"),
    ("Backend", "backend"),
    ("Started", "started"),
)
# Below this width the table leaves out what the run's panel shows anyway (its title names
# the method, its Started line the start), so every other column stays in view.
NARROW_BELOW = 120
NARROW_LEAVES_OUT = ("method", "started")
Reconcile = Callable[[Workspace], object]


# The engine's run functions, imported on use: engine.training.runs loads the training stack.


def reconcile_running(ws: Workspace) -> None:
    """Bring the running runs' rows up to date from their folders and workers."""
    from engine.training.runs import reconcile_runs

    reconcile_runs(ws)


def start_run(
    ws: Workspace, dataset_id: str, stage: str, method: str, settings: Sequence[str]
) -> int:
    """Start a run as `cra train start --set KEY=VALUE …` does."""
    from engine.training.runs import start_run

    return start_run(ws, dataset_id, stage, method, parse_settings(settings))


def stop_run(ws: Workspace, run_id: int) -> object:
    from engine.training.runs import stop_run

    return stop_run(ws, run_id)


def resume_run(ws: Workspace, run_id: int) -> object:
    from engine.training.runs import resume_run

    return resume_run(ws, run_id)


@dataclass(frozen=True)
class RunCalls:
    """The engine calls the pane's keys make; tests pass recorders."""

    reconcile: Reconcile = reconcile_running
    start: Callable[[Workspace, str, str, str, Sequence[str]], int] = start_run
    stop: Callable[[Workspace, int], object] = stop_run
    resume: Callable[[Workspace, int], object] = resume_run


# -- messages -----------------------------------------------------------------------------


@dataclass
class RunsPolled(Message):
    runs: list[RunRow]


@dataclass
class RunRead(Message):
    """What the folder of the run watched under `token` gained; `fresh`: a new watch."""

    token: int
    run_id: int
    fresh: bool
    state: RunState
    log: TailRead


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


# -- the pane -----------------------------------------------------------------------------


class TrainingScreen(EnginePane):
    """The runs on top; the selected run's progress and loss curve, then its log."""

    PANE_TITLE = "Training"
    POLL_S = 0.5
    POLL_TITLE = "training poll failed"
    ACTION_TITLE = "training"
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
        self, workspace: Workspace, calls: RunCalls = RunCalls(), log_lines: int = RING_LINES
    ) -> None:
        super().__init__(workspace)
        self._calls = calls
        self._log_lines = log_lines
        self._runs: dict[int, RunRow] = {}
        self._runs_shown: list[RunRow] | None = None
        self._statuses: dict[int, str] | None = None
        self._selected: int | None = None
        self._token = 0
        self._state: RunState | None = None
        self._problems: set[str] = set()
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
                    yield KeyedStatic(id="run-head")
                    yield StableProgressBar(id="run-progress", show_eta=False)
                    yield KeyedStatic(id="run-stats")
                    yield KeyedStatic(id="run-about")
                plot = LossPlot(id="curve")
                plot.border_title = "Loss"
                yield plot
            log = LogView(self._log_lines, id="log")
            log.border_title = "Log"
            yield log

    def on_mount(self) -> None:
        self._fill_table()
        self._render_run()

    def on_resize(self) -> None:
        if self._columns() != list(self.query_one("#runs", DataTable).columns):
            self._fill_table()

    def _columns(self) -> list[str]:
        narrow = self.size.width < NARROW_BELOW
        return [key for _, key in COLUMNS if not (narrow and key in NARROW_LEAVES_OUT)]

    def _fill_table(self) -> None:
        """The table's columns for the pane's width, and a row per run."""
        table = self.query_one("#runs", DataTable)
        keys = self._columns()
        table.clear(columns=True)
        for label, key in COLUMNS:
            if key in keys:
                table.add_column(label, key=key)
        for run in self._runs.values():
            cells = run_cells(run)
            table.add_row(*(cells[key] for key in keys), key=str(run.id))
        if self._selected in self._runs:
            table.move_cursor(row=table.get_row_index(str(self._selected)), animate=False)

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

    def poll_args(self) -> tuple[Any, ...]:
        return (self._selected, self._token)

    def settle(self, ws: Workspace) -> None:
        self._calls.reconcile(ws)

    def must_read(self) -> bool:
        """A live run's folder grows without the database changing."""
        run = self._runs.get(self._selected) if self._selected is not None else None
        return run is not None and run.status in LIVE

    def read(self, ws: Workspace, wanted: int | None, token: int) -> None:
        runs = recent_runs(ws.db)
        self.post_message(RunsPolled(runs))
        run = next((run for run in runs if run.id == wanted), None)
        if run is not None:
            self._read_run(run, token)

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
        if message.runs == self._runs_shown:
            return
        self._runs_shown = message.runs
        self._announce(message.runs)
        previous = list(self._runs)
        self._runs = {run.id: run for run in message.runs}
        table = self.query_one("#runs", DataTable)
        table.border_title = f"Training runs · {len(self._runs)}"
        if list(self._runs) == previous:
            for run in message.runs:
                for key, value in run_cells(run).items():
                    if key in table.columns:
                        table.update_cell(str(run.id), key, value, update_width=True)
        else:
            self._fill_table()
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

    # -- selection ------------------------------------------------------------------------

    def _select(self, run_id: int | None) -> None:
        if run_id == self._selected:
            return
        self._selected = run_id
        self._token += 1
        self._state = None
        self.query_one(LogView).reset()
        self._render_run()
        self.request_poll()

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
        """The start form over the trainable datasets and the stages' settings, read first in
        a worker; the form starts the run and stays open on a refusal."""
        self.fetch(
            lambda ws: start_options(ws.db, ws.config.training), self._start_form, title="training"
        )

    def _start_form(self, options: StartOptions) -> None:
        calls = self._calls

        def start(ws: Workspace, request: StartRequest) -> int:
            return calls.start(
                ws, request.dataset_id, request.stage, request.method, request.settings
            )

        def started(done: Started | None) -> None:
            if done is None:
                return
            request = done.request
            text = f"run {done.run_id} started: {request.stage} on {request.dataset_id}"
            self.notify(text, title=self.ACTION_TITLE, markup=False)
            self._select(done.run_id)
            self.request_poll()

        self.app.push_screen(StartRunScreen(self._ws, options, start), started)

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
        self.confirm(f"Stop training run {run.id}?", body, lambda: self._stop_run(run.id))

    def _stop_run(self, run_id: int) -> None:
        self.act(
            lambda ws: self._calls.stop(ws, run_id),
            lambda _: f"run {run_id} stopping after its next step",
        )

    def action_resume(self) -> None:
        if self._selected is None:
            self.notify("No run to resume: start one first (t).", severity="warning")
            return
        run_id = self._selected
        self.act(lambda ws: self._calls.resume(ws, run_id), lambda _: f"run {run_id} resumed")

    def acted(self, message: ActionDone) -> None:
        if message.select is not None:
            self._select(message.select)

    # -- drawing --------------------------------------------------------------------------

    def _render_run(self) -> None:
        box = self.query_one("#run")
        head = self.query_one("#run-head", KeyedStatic)
        stats = self.query_one("#run-stats", KeyedStatic)
        about = self.query_one("#run-about", KeyedStatic)
        bar = self.query_one("#run-progress", ProgressBar)
        plot = self.query_one(LossPlot)
        log = self.query_one(LogView)
        run = self._runs.get(self._selected) if self._selected is not None else None
        state = self._state
        if run is None:
            box.border_title = "Run"
            read = self._statuses is not None
            head.show(
                ("no run", read),
                lambda: (
                    Text("No training run yet: press t to start one on a curated dataset.", "dim")
                    if read
                    else Text("Reading the runs…", style="dim")
                ),
            )
            stats.show(None, str)
            about.show(None, str)
            bar.display = False
            plot.show((), "No run selected.")
            log.border_title = "Log"
            return
        box.border_title = f"Run {run.id} · {run.stage} · {run.method}"
        head.show((run, state), lambda: head_table(run, state))
        about.show((run, state), lambda: about_table(run, state))
        log.border_title = f"Log · {run.run_dir}/{LOG_FILE}"
        if state is None:
            stats.show(None, lambda: Text("Reading the run's folder…", style="dim"))
            bar.display = False
            plot.show((), "Reading the run's folder…")
            return
        latest = state.latest
        bar.display = latest is not None
        if latest is not None:
            done = latest.max_steps if state.progress == 1.0 else latest.step
            bar.update(total=latest.max_steps, progress=done)
        stats.show((run, state), lambda: stats_table(run, state))
        plot.border_title = "Loss · raw (dim) and smoothed" + (
            f" · {state.steps_per_point} steps a point" if state.steps_per_point > 1 else ""
        )
        plot.show(state.curve)
