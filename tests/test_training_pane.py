"""The Training pane over a real workspace: `training_runs` rows and run folders written the way
a worker leaves them (spec.json, metrics.jsonl of StepRecords, train.log, result.json), driven
by Pilot in a small app that shows only this pane.

Nothing reconciles the rows with worker processes here (the pane is given a `reconcile` that
does nothing): the test plays the engine and changes the rows and files itself. The pane is
given recorders for the engine's start, stop and resume, so what the keys send is what is
checked.
Snapshots are taken at 120 × 40 once the poll has shown the selected run, and at 160 × 50 and
100 × 30 after a live training step; every timestamp is fixed. Regenerate with
`pytest tests/test_training_pane.py --snapshot-update`, then read the SVGs' text.
"""

import io
import math
from pathlib import Path
from typing import Any

import pytest
from pilot_wait import until
from rich.console import Console
from tables import cut_cells
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.training.contract import (
    LOG_FILE,
    METRICS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    Hyper,
    RunResult,
    RunSpec,
    StepRecord,
)
from engine.training.log_tail import TailRead
from screens.training import RunCalls, TrainingScreen
from screens.training_form import StartRunScreen
from screens.widgets.confirm import ConfirmScreen
from screens.widgets.training_log import LogView, shown
from screens.widgets.training_plot import LossPlot, braille_cells

SIZE = (120, 40)
DONE, RUNNING = 2, 3


class PaneApp(App[None]):
    """Just the Training pane over `workspace`, with the console's shared look (its dialogs);
    the bell is counted, not rung."""

    TITLE = "cra console"
    CSS_PATH = Path(__file__).parents[1] / "app" / "app.tcss"

    def __init__(
        self, workspace: Workspace, log_lines: int = 5000, calls: RunCalls | None = None
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.log_lines = log_lines
        self.calls = calls or RunCalls(reconcile=lambda ws: None)
        self.rings = 0

    def on_mount(self) -> None:
        self.push_screen(TrainingScreen(self.workspace, self.calls, self.log_lines))

    def bell(self) -> None:
        self.rings += 1


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    return Workspace.open(root)


def add_dataset(
    ws: Workspace, dataset_id: str, stage: str, fmt: str = "sft", created: str = "2026-05-01"
) -> None:
    """A dataset's row (its folder is not written: starting a run on it is refused)."""
    with ws.db.conn:
        ws.db["datasets"].insert(
            {
                "id": dataset_id,
                "stage": stage,
                "base_model": "coding" if stage == "execute_code" else "reasoning",
                "format": fmt,
                "path": f"datasets/{dataset_id}",
                "created_at": f"{created}T20:00:00Z",
                "created_by": "night-shift",
                "train_count": 120,
                "eval_count": 12,
                "replay_count": 18,
                "manifest_sha256": "0" * 64,
                "manifest_json": "{}",
            }
        )


def spec(dataset_id: str, stage: str, method: str = "sft") -> RunSpec:
    return RunSpec(
        stage=stage,
        method=method,
        base_model="coding" if stage == "execute_code" else "reasoning",
        base_model_path="models/qwen2.5-coder-3b" if stage == "execute_code" else "models/qwen3-4b",
        dataset_id=dataset_id,
        dataset_path=f"datasets/{dataset_id}",
        dataset_sha256="0" * 64,
        hyper=Hyper(max_steps=40, save_steps=10),
    )


def loss_at(step: int) -> float:
    """A falling loss with a fixed wobble, so raw and smoothed differ."""
    return round(2.2 * math.exp(-step / 12) + 0.4 + 0.15 * math.sin(step * 1.7), 4)


def step_line(step: int, max_steps: int = 40, **extra: Any) -> str:
    record = StepRecord(
        step=step,
        max_steps=max_steps,
        epoch=round(step / 20, 3),
        loss=loss_at(step),
        learning_rate=2e-4 * (1 - step / max_steps / 2),
        grad_norm=round(1.5 - step / 40, 3),
        tokens_per_s=1800.0 + step,
        memory_mb=6144.0 + 10 * step,
        elapsed_s=3.0 * step,
        eta_s=3.0 * (max_steps - step),
        **extra,
    )
    return record.model_dump_json() + "\n"


def log_line(n: int) -> str:
    return f"[worker] step {n}: loss {loss_at(n):.4f}\n"


def add_version(
    ws: Workspace, run_id: int, name: str, status: str = "candidate", gate: str | None = None
) -> None:
    """Record `name` as the version run `run_id` registered, and its gate decision if any."""
    stage, _, version = name.rpartition("-v")
    with ws.db.conn:
        adapter_id = (
            ws.db["adapter_versions"]
            .insert(
                {
                    "stage": stage,
                    "version": int(version),
                    "name": name,
                    "status": status,
                    "base_model": "reasoning",
                    "path": f"adapters/{stage}/v{version}",
                    "run_id": run_id,
                    "created_at": "2026-05-02T23:00:00Z",
                }
            )
            .last_pk
        )
        ws.db["training_runs"].update(run_id, {"adapter_id": adapter_id})
        if gate is not None:
            ws.db["gate_decisions"].insert(
                {
                    "adapter_id": adapter_id,
                    "stage": stage,
                    "baseline": "base",
                    "decision": gate,
                    "reasons_json": "[]",
                    "at": "2026-05-03T07:00:00Z",
                }
            )


def add_run(
    ws: Workspace,
    run_id: int,
    dataset_id: str,
    stage: str,
    status: str,
    steps: int,
    *,
    method: str = "sft",
    reason: str = "",
    result: RunResult | None = None,
) -> Path:
    run_dir = ws.root / "training" / str(run_id)
    run_dir.mkdir(parents=True)
    run_spec = spec(dataset_id, stage, method)
    (run_dir / SPEC_FILE).write_text(run_spec.model_dump_json(indent=2), encoding="utf-8")
    (run_dir / METRICS_FILE).write_text(
        "".join(step_line(n) for n in range(1, steps + 1)), encoding="utf-8"
    )
    (run_dir / LOG_FILE).write_text(
        "loading base model models/qwen3-4b\n" + "".join(log_line(n) for n in range(1, steps + 1)),
        encoding="utf-8",
    )
    if result is not None:
        (run_dir / RESULT_FILE).write_text(result.model_dump_json(), encoding="utf-8")
    with ws.db.conn:
        ws.db["training_runs"].insert(
            {
                "id": run_id,
                "stage": stage,
                "base_model": run_spec.base_model,
                "method": method,
                "dataset_id": dataset_id,
                "spec_json": run_spec.model_dump_json(),
                "backend": "trl",
                "status": status,
                "reason": reason,
                "run_dir": f"training/{run_id}",
                "created_at": f"2026-05-0{run_id}T21:00:00Z",
                "created_by": "night-shift",
                "started_at": f"2026-05-0{run_id}T21:00:05Z",
                "finished_at": f"2026-05-0{run_id}T23:00:00Z" if status == "done" else None,
                "step": steps,
                "max_steps": 40,
                "loss": loss_at(steps),
            }
        )
    return run_dir


def fill(ws: Workspace) -> dict[int, Path]:
    """A failed run, a done one that registered scope-v1 (gated: pass) and a running one
    (newest)."""
    add_dataset(ws, "scope-d1", "scope")
    add_dataset(ws, "execute_code-d1", "execute_code")
    done = RunResult(
        status="done",
        backend="trl",
        steps=40,
        max_steps=40,
        final_loss=loss_at(40),
        train_runtime_s=120.0,
        effective={"quantize_4bit": "off (no CUDA)", "optimizer": "adamw_torch"},
        adapter_dir="adapter",
    )
    folders = {
        1: add_run(
            ws, 1, "scope-d1", "scope", "failed", 5, reason="worker exited 1 without result.json"
        ),
        DONE: add_run(ws, DONE, "scope-d1", "scope", "done", 40, result=done),
        RUNNING: add_run(ws, RUNNING, "execute_code-d1", "execute_code", "running", 24),
    }
    add_version(ws, DONE, "scope-v1", gate="pass")
    return folders


def pane(pilot: Pilot) -> TrainingScreen:
    screen = pilot.app.screen
    assert isinstance(screen, TrainingScreen)
    return screen


def text_of(screen: Screen[Any], selector: str) -> str:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


def log_lines(screen: TrainingScreen) -> list[str]:
    log = screen.query_one(LogView)
    count = len(log.ring) + (1 if log.partial else 0)
    return [log.line_text(i) for i in range(count)]


def shown_lines(screen: TrainingScreen) -> list[str]:
    log = screen.query_one(LogView)
    return [log.render_line(y).text.rstrip() for y in range(log.size.height)]


async def settled(pilot: Pilot, run_id: int, step: int) -> TrainingScreen:
    """Wait until `run_id` is selected and its folder read up to `step`."""
    screen = pane(pilot)

    def ready() -> bool:
        state = screen.state
        return (
            screen.selected_run == run_id
            and state is not None
            and state.latest is not None
            and state.latest.step == step
            and not state.more
            and log_line(step).rstrip("\n") in log_lines(screen)[-2:]
        )

    await until(pilot, ready, f"run {run_id} read up to step {step}")
    await pilot.pause()
    return screen


def messages(app: App[None]) -> list[str]:
    return [n.message for n in app._notifications]


async def test_runs_are_listed_newest_first_and_the_newest_is_shown(ws: Workspace) -> None:
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, RUNNING, 24)
        assert screen.run_ids == [3, 2, 1]
        table = screen.query_one("#runs", DataTable)
        assert [str(cell) for cell in table.get_row("3")] == [
            "3",
            "execute_code",
            "sft",
            "execute_code-d1",
            "running",
            "24/40",
            f"{loss_at(24):.4g}",
            "—",
            "trl",
            "2026-05-03 21:00",
        ]
        assert "running · backend trl" in text_of(screen, "#run-head")
        about = text_of(screen, "#run-about")
        assert "execute_code-d1 · base coding (models/qwen2.5-coder-3b)" in about
        assert "r16 α32 · lr 0.0002 cosine · 40 steps · batch 1×4" in about
        stats = text_of(screen, "#run-stats")
        assert "24/40 · 60.0 % · ETA 48.0s · 1m 12s so far" in stats
        assert "1,824 tokens/s · memory 6.2 GiB" in stats
        state = screen.state
        assert state is not None and [p.step for p in state.curve] == list(range(1, 25))
        assert screen.query_one(LossPlot).curve == state.curve


async def test_a_done_run_shows_its_curve_log_and_result(ws: Workspace) -> None:
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        await pilot.press("down")
        screen = await settled(pilot, DONE, 40)
        stats = text_of(screen, "#run-stats")
        assert "40/40 · 100.0 % · 2m 00s trained" in stats
        assert f"done after 40/40 steps in 2m 00s · final loss {loss_at(40):.4g}" in stats
        assert "registered scope-v1" in stats
        assert "instead: quantize_4bit off (no CUDA), optimizer adamw_torch" in stats
        lines = log_lines(screen)
        assert lines[0] == "loading base model models/qwen3-4b"
        assert len(lines) == 41
        assert shown_lines(screen)[-1] == log_line(40).rstrip("\n")  # follows the end
        assert screen.query_one("#run").border_title == "Run 2 · scope · sft"
        await pilot.press("down")
        screen = await settled(pilot, 1, 5)
        assert "worker exited 1 without result.json" in text_of(screen, "#run-head")
        assert "Result" not in text_of(screen, "#run-stats")
        assert len(log_lines(screen)) == 6


# -- what a run produced, and what is left of it ----------------------------------------


STOPPED = 4


def add_stopped(ws: Workspace) -> Path:
    """Run 4, stopped at step 20 of 40: its last step still carries the worker's estimate."""
    stopped = RunResult(
        status="stopped",
        backend="trl",
        steps=20,
        max_steps=40,
        final_loss=loss_at(20),
        train_runtime_s=60.0,
        adapter_dir=None,
    )
    reason = "stopped at step 20 of 40"
    return add_run(ws, STOPPED, "scope-d1", "scope", "stopped", 20, reason=reason, result=stopped)


async def test_a_finished_run_names_the_version_it_registered(ws: Workspace) -> None:
    """A done run's row and detail name the adapter version it registered and its gate state,
    not the run folder's `adapter/`; the state follows the version (once promoted: active)."""
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, RUNNING, 24)
        table = screen.query_one("#runs", DataTable)
        assert table.get_cell(str(DONE), "adapter").plain == "scope-v1 gate pass"
        await pilot.press("down")
        await settled(pilot, DONE, 40)
        assert "Adapter  scope-v1 · candidate · gate: pass" in text_of(screen, "#run-head")
        stats = text_of(screen, "#run-stats")
        assert "registered scope-v1" in stats and "adapter/" not in stats
        with ws.db.conn:
            ws.db.execute("UPDATE adapter_versions SET status = 'active' WHERE name = 'scope-v1'")
        await until(
            pilot,
            lambda: table.get_cell(str(DONE), "adapter").plain == "scope-v1 active",
            "the promotion to show",
        )
        assert "Adapter  scope-v1 · active · gate: pass" in text_of(screen, "#run-head")
        await pilot.pause()  # the table sizes its columns when idle, after the update
        assert cut_cells(table) == []


async def test_a_run_that_registered_nothing_says_why(ws: Workspace) -> None:
    """A stopped or failed run's row says `none` and its detail why it registered no version
    and what resuming does; a running run has none yet."""
    fill(ws)
    add_stopped(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, STOPPED, 20)
        table = screen.query_one("#runs", DataTable)
        cells = {run: table.get_cell(str(run), "adapter").plain for run in (STOPPED, RUNNING, 1)}
        assert cells == {STOPPED: "none", RUNNING: "—", 1: "none"}
        assert "Adapter  none: stopped before its last step; u resumes it" in text_of(
            screen, "#run-head"
        )
        await pilot.press("down")
        await settled(pilot, RUNNING, 24)
        head = text_of(screen, "#run-head")
        assert "Adapter  none yet: a finished run registers the next execute_code version" in head
        await pilot.press("down", "down")
        await settled(pilot, 1, 5)
        assert "Adapter  none: the run failed before registering one" in text_of(
            screen, "#run-head"
        )


async def test_only_a_running_run_has_an_eta(ws: Workspace) -> None:
    """A stopped, failed or finished run shows how long it trained and no ETA (though its last
    logged step carries the worker's estimate); a running run shows its ETA."""
    fill(ws)
    add_stopped(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, STOPPED, 20)
        stats = text_of(screen, "#run-stats")
        assert "20/40 · 50.0 % · 1m 00s trained" in stats
        assert "ETA" not in stats
        await pilot.press("down")
        await settled(pilot, RUNNING, 24)
        assert "24/40 · 60.0 % · ETA 48.0s · 1m 12s so far" in text_of(screen, "#run-stats")
        for run_id, step in ((DONE, 40), (1, 5)):
            await pilot.press("down")
            await settled(pilot, run_id, step)
            assert "ETA" not in text_of(screen, "#run-stats")


async def test_a_running_run_shows_what_its_files_gain(ws: Workspace) -> None:
    folders = fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, RUNNING, 24)
        with (folders[RUNNING] / LOG_FILE).open("a", encoding="utf-8") as log:
            log.write(log_line(25) + log_line(26) + "saving checkpoint-2")
        with (folders[RUNNING] / METRICS_FILE).open("a", encoding="utf-8") as metrics:
            metrics.write(step_line(25) + step_line(26))
        await settled(pilot, RUNNING, 26)
        assert log_lines(screen)[-2:] == [log_line(26).rstrip("\n"), "saving checkpoint-2"]
        assert "26/40 · 65.0 %" in text_of(screen, "#run-stats")
        state = screen.state
        assert state is not None and state.curve[-1].step == 26
        with (folders[RUNNING] / LOG_FILE).open("a", encoding="utf-8") as log:
            log.write("0\n" + log_line(27))
        with (folders[RUNNING] / METRICS_FILE).open("a", encoding="utf-8") as metrics:
            metrics.write(step_line(27))
        await settled(pilot, RUNNING, 27)
        assert log_lines(screen)[-2] == "saving checkpoint-20"
        assert shown_lines(screen)[-1] == log_line(27).rstrip("\n")


async def live_step(pilot: Pilot, folder: Path, ws: Workspace) -> TrainingScreen:
    """Run 3 logs step 25 while the pane is open (its folder gains a line of metrics.jsonl
    and of train.log, and a reconcile elsewhere records the step); returns once it shows."""
    with (folder / LOG_FILE).open("a", encoding="utf-8") as log:
        log.write(log_line(25))
    with (folder / METRICS_FILE).open("a", encoding="utf-8") as metrics:
        metrics.write(step_line(25))
    with ws.db.conn:
        ws.db["training_runs"].update(RUNNING, {"step": 25, "loss": loss_at(25)})
    screen = await settled(pilot, RUNNING, 25)
    table = screen.query_one("#runs", DataTable)
    await until(pilot, lambda: table.get_cell(str(RUNNING), "step").plain == "25/40", "the row")
    return screen


@pytest.mark.parametrize(("size", "log_at_least"), [((100, 30), 8), ((160, 50), 20)])
async def test_the_log_keeps_several_lines_on_a_small_terminal(
    ws: Workspace, size: tuple[int, int], log_at_least: int
) -> None:
    """At 100 × 30 the log shows several lines beside the runs and the run's figures (it once
    got one); at 160 × 50 the middle keeps its full 15 lines and the log takes the rest. The
    runs table takes the lines its rows need and every column it shows fits (at 100 columns
    it leaves out method and start, which the run's panel shows); the run's status and
    progress lead its panel, so they show however short it gets."""
    folders = fill(ws)
    async with PaneApp(ws).run_test(size=size) as pilot:
        screen = await settled(pilot, RUNNING, 24)
        await live_step(pilot, folders[RUNNING], ws)
        log = screen.query_one(LogView)
        assert log.content_size.height >= log_at_least
        assert shown_lines(screen)[-1] == log_line(25).rstrip("\n")
        runs = screen.query_one("#runs", DataTable)
        assert runs.size.height == 1 + 3  # the header and three rows
        assert runs.max_scroll_x == 0
        wide = size == (160, 50)
        assert ("method" in runs.columns, "started" in runs.columns) == (wide, wide)
        if wide:
            assert screen.query_one("#middle").size.height == 15
        run_box = screen.query_one("#run")
        stats = screen.query_one("#run-stats")
        assert stats.region.y + 1 < run_box.region.bottom  # the Step line is in view


async def test_a_step_that_grows_in_place_is_shown_whole(ws: Workspace) -> None:
    """A running run's Step going from 2/40 to 12/40 (as a reconcile elsewhere records it)
    widens its column: the operator reads 12/40, not a count cut to the width it had."""
    add_dataset(ws, "scope-d1", "scope")
    folder = add_run(ws, 1, "scope-d1", "scope", "running", 2)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, 1, 2)
        table = screen.query_one("#runs", DataTable)
        assert table.get_cell("1", "step").plain == "2/40"
        with (folder / METRICS_FILE).open("a", encoding="utf-8") as metrics:
            metrics.write("".join(step_line(n) for n in range(3, 13)))
        with ws.db.conn:
            ws.db["training_runs"].update(1, {"step": 12})
        await until(pilot, lambda: table.get_cell("1", "step").plain == "12/40", "the step to grow")
        await until(pilot, lambda: cut_cells(table) == [], "the column to widen to its new value")


async def test_a_status_change_notifies_and_rings_the_bell(ws: Workspace) -> None:
    fill(ws)
    app = PaneApp(ws)
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, RUNNING, 24)
        assert app.rings == 0  # runs already finished when the pane opened are not news
        with ws.db.conn:
            ws.db["training_runs"].update(
                RUNNING,
                {"status": "failed", "reason": "CUDA out of memory\n-- train.log:\n[worker] …"},
            )
        expected = "Run 3 (execute_code, sft on execute_code-d1) failed: CUDA out of memory (…)"
        await until(pilot, lambda: expected in messages(app), "the notification")
        assert app.rings == 1
        await until(
            pilot, lambda: "CUDA out of memory" in text_of(screen, "#run-head"), "the reason"
        )
        await pilot.pause(0.6)
        assert app.rings == 1  # once, not on every poll


async def test_a_malformed_metrics_line_is_reported_and_the_rest_shown(ws: Workspace) -> None:
    folders = fill(ws)
    with (folders[RUNNING] / METRICS_FILE).open("a", encoding="utf-8") as metrics:
        metrics.write('{"step": "twenty-five"}\n' + step_line(26))
    (folders[RUNNING] / LOG_FILE).write_text(log_line(26), encoding="utf-8")
    app = PaneApp(ws)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 26)
        path = folders[RUNNING] / METRICS_FILE
        assert any(f"{path} line 25: key step" in m for m in messages(app))


async def test_a_long_log_keeps_only_its_last_lines(ws: Workspace) -> None:
    folders = fill(ws)
    (folders[RUNNING] / LOG_FILE).write_text(
        "".join(f"[data] tokenized example {n}\n" for n in range(100_000))
        + "".join(log_line(n) for n in range(1, 25)),
        encoding="utf-8",
    )
    async with PaneApp(ws, log_lines=50).run_test(size=SIZE) as pilot:
        screen = await settled(pilot, RUNNING, 24)
        lines = log_lines(screen)
        assert lines[0].endswith("not shown ──")  # opened near its end: the rest skipped
        assert lines[1:26] == [f"[data] tokenized example {n}" for n in range(99_975, 100_000)]
        assert lines[26:] == [log_line(n).rstrip("\n") for n in range(1, 25)]
        with (folders[RUNNING] / LOG_FILE).open("a", encoding="utf-8") as log:
            log.write("".join(log_line(n) for n in range(25, 125)))
        with (folders[RUNNING] / METRICS_FILE).open("a", encoding="utf-8") as metrics:
            metrics.write(step_line(124, max_steps=400))
        await settled(pilot, RUNNING, 124)
        log = screen.query_one(LogView)
        assert len(log.ring) == 50
        assert log_lines(screen) == [log_line(n).rstrip("\n") for n in range(75, 125)]


async def test_an_empty_workspace_says_how_to_start(ws: Workspace) -> None:
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        screen = pane(pilot)
        await until(
            pilot, lambda: "No training run yet" in text_of(screen, "#run-head"), "the hint"
        )
        await pilot.press("x")
        assert "No run to stop: start one first (t)." in messages(pilot.app)


# -- actions: the engine's functions given as recorders ---------------------------------


class Recorder:
    """Stands in for an engine function: records its calls, then returns or raises."""

    def __init__(self, returns: Any = None, raises: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.returns = returns
        self.raises = raises

    def __call__(self, ws: Workspace, *args: Any) -> Any:
        self.calls.append((ws.root, *args))
        if self.raises is not None:
            raise CraError(self.raises)
        return self.returns


async def test_stop_asks_first_then_asks_the_engine(ws: Workspace) -> None:
    fill(ws)
    stop = Recorder()
    app = PaneApp(ws, calls=RunCalls(reconcile=lambda ws: None, stop=stop))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert stop.calls == []
        await pilot.press("x", "y")
        await until(pilot, lambda: bool(stop.calls), "stop_run to be called")
        assert stop.calls == [(ws.root, RUNNING)]
        await until(
            pilot, lambda: "run 3 stopping after its next step" in messages(app), "the notice"
        )
        await pilot.press("down")
        await settled(pilot, DONE, 40)
        await pilot.press("x")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Run 2 is done: only a running run stops." in messages(app)


async def test_resume_reports_the_engines_refusal(ws: Workspace) -> None:
    fill(ws)
    resume = Recorder(raises="run 1 is failed; no checkpoint to resume from")
    app = PaneApp(ws, calls=RunCalls(reconcile=lambda ws: None, resume=resume))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        await pilot.press("down", "down")
        await settled(pilot, 1, 5)
        await pilot.press("u")
        await until(
            pilot,
            lambda: "run 1 is failed; no checkpoint to resume from" in messages(app),
            "the refusal",
        )
        assert resume.calls == [(ws.root, 1)]


CONFIGURED = "[training.hyper.scope]\nlearning_rate = 0.0001\nmax_steps = 60\n"


def configure(ws: Workspace, table: str = CONFIGURED) -> None:
    """Give scope's runs their own settings in the workspace's cra.toml."""
    config = ws.root / "cra.toml"
    config.write_text(config.read_text(encoding="utf-8") + table, encoding="utf-8")


async def open_form(pilot: Pilot) -> StartRunScreen:
    await pilot.press("t")
    await until(pilot, lambda: isinstance(pilot.app.screen, StartRunScreen), "the form")
    form = pilot.app.screen
    assert isinstance(form, StartRunScreen)
    datasets = form.query_one("#form-datasets", DataTable)
    await until(pilot, lambda: form.dataset is not None or not datasets.row_count, "a pick")
    await pilot.pause()
    return form


def setting(form: StartRunScreen, name: str) -> Input:
    return form.query_one(f"#set-{name}", Input)


def form_error(form: StartRunScreen) -> str:
    error = form.query_one("#form-error", Static)
    return str(error.content) if error.display else ""


async def test_the_start_form_offers_the_trainable_datasets_and_their_settings(
    ws: Workspace,
) -> None:
    """The form lists the curated datasets a run can train on (a LoRA stage's; newest first,
    with stage, method, size and date) and the picked stage's settings as a run would take
    them: the built-in defaults at the stage's rank under cra.toml's table for the stage."""
    fill(ws)
    add_dataset(ws, "meta_plan-d1", "meta_plan")  # the base fine-tune's: no LoRA run takes it
    add_dataset(ws, "planning_dpo-d1", "planning_dpo", "preference", created="2026-05-02")
    configure(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        form = await open_form(pilot)
        table = form.query_one("#form-datasets", DataTable)
        rows = [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]
        assert rows == [
            ["planning_dpo-d1", "planning_dpo", "dpo", "120", "12", "2026-05-02 20:00"],
            ["execute_code-d1", "execute_code", "sft", "120", "12", "2026-05-01 20:00"],
            ["scope-d1", "scope", "sft", "120", "12", "2026-05-01 20:00"],
        ]
        assert form.dataset is not None and form.dataset.id == "planning_dpo-d1"
        defaults = {name: setting(form, name).value for name in ("rank", "alpha", "dpo_beta")}
        assert defaults == {"rank": "16", "alpha": "", "dpo_beta": "0.1"}
        assert setting(form, "alpha").placeholder == "2 × rank"
        await pilot.press("down")
        assert form.dataset is not None and form.dataset.id == "execute_code-d1"
        assert (setting(form, "rank").value, setting(form, "learning_rate").value) == (
            "32",
            "0.0002",
        )
        await pilot.press("down")
        assert form.dataset is not None and form.dataset.id == "scope-d1"
        values = {name: setting(form, name).value for name in ("rank", "learning_rate")}
        assert values == {"rank": "16", "learning_rate": "0.0001"}
        assert setting(form, "max_steps").value == "60"
        assert setting(form, "target_modules").value == (
            '["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]'
        )
        trains = text_of(form, "#form-trains")
        assert "Trains the scope adapter with sft on the reasoning base" in trains
        assert "cra.toml [training.hyper.scope] for learning_rate, max_steps" in trains
        assert form.settings() == ()


async def test_the_start_form_sends_what_the_operator_changed_as_set_does(
    ws: Workspace,
) -> None:
    """Starting sends the picked dataset, its stage and method, and only the settings the
    operator changed, as `--set KEY=VALUE` (an emptied one as null); an edit survives picking
    another dataset. The run started is announced and selected."""
    fill(ws)
    configure(ws)
    start = Recorder(returns=RUNNING)
    app = PaneApp(ws, calls=RunCalls(reconcile=lambda ws: None, start=start))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        form = await open_form(pilot)
        setting(form, "learning_rate").value = "0.0005"
        setting(form, "save_steps").value = "25"
        await pilot.press("down")  # scope-d1: its own defaults, the edits kept
        assert setting(form, "max_steps").value == "60"
        assert setting(form, "learning_rate").value == "0.0005"
        setting(form, "max_steps").value = ""
        await pilot.press("ctrl+s")
        await until(pilot, lambda: bool(start.calls), "start_run to be called")
        assert start.calls == [
            (
                ws.root,
                "scope-d1",
                "scope",
                "sft",
                ("learning_rate=0.0005", "max_steps=null", "save_steps=25"),
            )
        ]
        await until(pilot, lambda: isinstance(app.screen, TrainingScreen), "the form to close")
        assert "run 3 started: scope on scope-d1" in messages(app)


async def test_a_refused_start_keeps_the_form_and_its_input(ws: Workspace) -> None:
    """The engine refusing a start (here a setting out of range, then a dataset whose folder
    is gone, both from the real engine) leaves the form open with the dataset and the settings
    as the operator left them, the refusal under the fields; no run is made."""
    fill(ws)
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        form = await open_form(pilot)
        await pilot.press("down")
        setting(form, "learning_rate").value = "5"
        setting(form, "seed").value = "7"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "learning_rate" in form_error(form), "the refusal")
        assert "less than or equal to 1" in form_error(form)
        assert pilot.app.screen is form
        assert form.dataset is not None and form.dataset.id == "scope-d1"
        assert (setting(form, "learning_rate").value, setting(form, "seed").value) == ("5", "7")
        setting(form, "learning_rate").value = "0.0002"
        await pilot.press("enter")
        await until(pilot, lambda: "scope-d1" in form_error(form), "the dataset's refusal")
        assert pilot.app.screen is form
        assert setting(form, "seed").value == "7"
        assert ws.db["training_runs"].count == 3
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, TrainingScreen)


async def test_a_refused_start_from_the_recorder_is_shown_in_the_form(ws: Workspace) -> None:
    """A guardrail's refusal is shown in the form as the engine worded it."""
    fill(ws)
    refusal = "the inference server at 127.0.0.1:8000 holds the GPU; stop it or pass --force"
    start = Recorder(raises=refusal)
    app = PaneApp(ws, calls=RunCalls(reconcile=lambda ws: None, start=start))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        form = await open_form(pilot)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: form_error(form) == refusal, "the refusal in the form")
        assert app.screen is form and refusal not in messages(app)


async def test_a_settings_table_the_engine_refuses_is_named_in_the_form(ws: Workspace) -> None:
    """A `[training.hyper.<stage>]` the engine would refuse is named on the form while a
    dataset of that stage is picked, over the built-in defaults; other stages are unaffected."""
    fill(ws)
    configure(ws, "[training.hyper.scope]\nmax_stepz = 3\n")
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        await settled(pilot, RUNNING, 24)
        form = await open_form(pilot)
        assert form_error(form) == ""
        await pilot.press("down")
        assert form_error(form).startswith(
            "[training.hyper.scope] in cra.toml: unknown setting max_stepz"
        )
        assert setting(form, "max_steps").value == ""
        await pilot.press("up")
        assert form_error(form) == ""


async def test_with_no_dataset_the_form_says_how_to_make_one(ws: Workspace) -> None:
    async with PaneApp(ws).run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        assert "No curated dataset to train on: `cra curate-data`" in form_error(form)
        await pilot.press("ctrl+s")
        assert pilot.app.screen is form
        assert "No dataset picked" in form_error(form)
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, TrainingScreen)


# -- the log view -------------------------------------------------------------------------


class LogApp(App[None]):
    def compose(self) -> Any:
        yield LogView(20, id="log")


def tail_read(lines: list[str], partial: str = "", **changes: Any) -> TailRead:
    fields: dict[str, Any] = {"restarted": None, "skipped": 0, "more": False, **changes}
    return TailRead(lines, partial=partial, **fields)


async def test_the_log_view_follows_its_end_until_scrolled_up() -> None:
    async with LogApp().run_test(size=(60, 12)) as pilot:
        log = pilot.app.query_one(LogView)
        log.add(tail_read([f"line {n}" for n in range(15)], "partial"), "train.log")
        await pilot.pause()
        height = log.size.height
        assert log.following
        assert log.render_line(height - 1).text.rstrip() == "partial"
        log.focus()
        await pilot.press("up")
        assert not log.following
        top = log.render_line(0).text.rstrip()
        assert log.scroll_y == 3  # 3 lines above the view: as many as will be pushed out
        log.add(tail_read([f"more {n}" for n in range(8)]), "train.log")  # pushes 3 out
        await pilot.pause()
        assert len(log.ring) == 20
        assert log.render_line(0).text.rstrip() == top  # the same lines stay in view
        await pilot.press("end")
        await pilot.pause()
        log.add(tail_read(["last"]), "train.log")
        await pilot.pause()
        assert log.following
        assert log.render_line(height - 1).text.rstrip() == "last"


def test_log_lines_are_made_safe_to_draw() -> None:
    """Controls are shown as escapes, never dropped; a progress bar keeps its last frame after
    a visible `\\x0d`; a line's own CR ending goes; tabs are expanded; long lines are cut."""
    assert shown("plain") == "plain"
    assert shown("\x1b[31mred\x1b[0m text") == "\\x1b[31mred\\x1b[0m text"
    assert shown(" 10%|#   \r 20%|##  \r 30%|### ") == "\\x0d 30%|### "
    assert shown("a\tb\x07c") == "a       b\\x07c"
    assert shown("crlf ending\r") == "crlf ending"
    assert shown("\x9b2J \u202eevil") == "\\x9b2J \\u202eevil"
    assert len(shown("y" * 10_000)) == 2000


# -- the plot -----------------------------------------------------------------------------


def test_braille_joins_points_and_the_last_series_owns_a_cell() -> None:
    cells = braille_cells(
        [[(0.0, 1.0), (1.0, 0.0)], [(0.0, 0.0), (1.0, 0.0)]],
        columns=2,
        rows=1,
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
    )
    # Four dot columns, four dot rows: the first series falls from the top left to the bottom
    # right, joined column by column (rows 0 | 0-1 | 1-2 | 2-3); the second runs along the
    # bottom row (3) and is drawn last.
    (left, left_owner), (right, right_owner) = cells[0]
    assert (left_owner, right_owner) == (1, 1)
    assert chr(0x2800 + left) == "⣙"  # dots 1, 7 | 4, 5, 8
    assert chr(0x2800 + right) == "⣦"  # dots 2, 3, 7 | 6, 8


# -- snapshots ----------------------------------------------------------------------------


def test_training_running_run(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, RUNNING, 24)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("size", [(160, 50), (100, 30)], ids=["160x50", "100x30"])
def test_training_after_a_live_step(snap_compare, ws: Workspace, size: tuple[int, int]) -> None:
    """The pane as the operator sees it once a running run logged a step while it was open."""
    folders = fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, RUNNING, 24)
        await live_step(pilot, folders[RUNNING], ws)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=size, run_before=run_before)


def test_training_done_run(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, RUNNING, 24)
        await pilot.press("down")
        await settled(pilot, DONE, 40)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def test_training_start_form(snap_compare, ws: Workspace) -> None:
    fill(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, RUNNING, 24)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(pilot.app.screen, StartRunScreen), "the form")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)


def test_training_start_form_small(snap_compare, ws: Workspace) -> None:
    """The start form fits a 100 × 30 terminal: datasets, settings, keys."""
    fill(ws)
    configure(ws)

    async def run_before(pilot: Pilot) -> None:
        await settled(pilot, RUNNING, 24)
        await open_form(pilot)
        await pilot.press("down")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=(100, 30), run_before=run_before)


def test_training_empty_workspace(snap_compare, ws: Workspace) -> None:
    async def run_before(pilot: Pilot) -> None:
        screen = pane(pilot)
        await until(
            pilot, lambda: "No training run yet" in text_of(screen, "#run-head"), "the hint"
        )
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(PaneApp(ws), terminal_size=SIZE, run_before=run_before)
