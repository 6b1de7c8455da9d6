"""Follow a flooded training log in the Training pane: lag, key latency and memory.

Usage: .venv/bin/python bench/training_log.py [--seconds N] [--rate N] [--existing N]

A scratch workspace gets one running training run whose train.log already holds `--existing`
lines (1,000,000 by default, about 100 MB). Then, in a headless Textual app (`run_test`, 120 ×
40), twice, each time while a writer process appends `--rate` log lines a second (10,000 by
default, in 10 ms batches) plus ten metrics.jsonl StepRecords a second to its own copy of the
run folder for `--seconds` seconds:

- anchor: a minimal app (one Static; nothing read) while the writer floods a log nobody tails;
- pane: the Training pane watching the run while the writer floods the run's own log.

Measured for each: seconds to the first frame (for the pane: until the last line of the
existing log is drawn, i.e. the big log opened near its end); the latency of a key press (an
app binding that records when it ran), every 0.2 s during the flood; the process's resident
memory (VmRSS) after opening and after the flood. For the pane also the lag: lines written but
not yet shown, sampled during the flood, at the writer's end, and the seconds until it is 0.
The pane's figures are printed beside the anchor's, with their ratios.

Every line the writer writes starts with its sequence number, so the lag is the last number in
the file minus the last number in the pane's view.
"""

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import textual
from textual.app import App, ComposeResult, RenderResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Static

from engine.core.workspace import Workspace
from engine.training.contract import LOG_FILE, METRICS_FILE, SPEC_FILE, Hyper, RunSpec, StepRecord
from screens.training import RunCalls, TrainingScreen
from screens.widgets.training_log import MARKER, LogView

SIZE = (120, 40)
SAMPLE_S = 0.2
LINE_PAD = "x" * 60


# -- the writer process -------------------------------------------------------------------


def log_text(seq: int) -> str:
    return f"{seq:010d} [worker] step {seq // 1000} batch {seq % 1000} {LINE_PAD}\n"


def write_flood(run_dir: Path, rate: int, seconds: float, first: int) -> int:
    """Append `rate` log lines a second (and ten StepRecords a second) for `seconds`; returns
    the number of the last line written."""
    log = (run_dir / LOG_FILE).open("a", encoding="utf-8")
    metrics = (run_dir / METRICS_FILE).open("a", encoding="utf-8")
    start = time.monotonic()
    seq = first
    step = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = first + int(elapsed * rate)
        if due > seq:
            log.write("".join(log_text(n) for n in range(seq + 1, due + 1)))
            log.flush()
            seq = due
        if elapsed * 10 >= step:
            step += 1
            record = StepRecord(
                step=step,
                max_steps=10_000,
                loss=2.0 / (1 + step / 50),
                tokens_per_s=1800.0,
                memory_mb=6000.0,
                elapsed_s=elapsed,
            )
            metrics.write(record.model_dump_json() + "\n")
            metrics.flush()
        time.sleep(0.01)
    log.close()
    metrics.close()
    return seq


def start_writer(run_dir: Path, rate: int, seconds: float, first: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--write", str(run_dir), "--rate", str(rate)]
        + ["--seconds", str(seconds), "--first", str(first)],
        stdout=subprocess.PIPE,
        text=True,
    )


# -- the workspace ------------------------------------------------------------------------


def build_workspace(root: Path, existing: int) -> tuple[Workspace, Path]:
    """A workspace with one running run whose log holds `existing` lines; a second copy of the
    run folder (not in the database) for the anchor's writer."""
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    ws = Workspace.open(root)
    spec = RunSpec(
        stage="scope",
        method="sft",
        base_model="reasoning",
        base_model_path="models/qwen3-4b",
        dataset_id="scope-d1",
        dataset_path="datasets/scope-d1",
        dataset_sha256="0" * 64,
        hyper=Hyper(max_steps=10_000),
    )
    for name in ("1", "anchor"):
        run_dir = root / "training" / name
        run_dir.mkdir(parents=True)
        (run_dir / SPEC_FILE).write_text(spec.model_dump_json(), encoding="utf-8")
        (run_dir / METRICS_FILE).write_text("", encoding="utf-8")
        with (run_dir / LOG_FILE).open("w", encoding="utf-8") as log:
            for start in range(1, existing + 1, 10_000):
                stop = min(existing, start + 9999) + 1
                log.write("".join(log_text(n) for n in range(start, stop)))
    with ws.db.conn:
        ws.db["datasets"].insert(
            {
                "id": "scope-d1",
                "stage": "scope",
                "base_model": "reasoning",
                "format": "sft",
                "path": "datasets/scope-d1",
                "created_at": "2026-05-01T20:00:00Z",
                "manifest_sha256": "0" * 64,
            }
        )
        ws.db["training_runs"].insert(
            {
                "id": 1,
                "stage": "scope",
                "base_model": "reasoning",
                "method": "sft",
                "dataset_id": "scope-d1",
                "spec_json": spec.model_dump_json(),
                "backend": "trl",
                "status": "running",
                "run_dir": "training/1",
                "created_at": "2026-05-02T21:00:00Z",
                "started_at": "2026-05-02T21:00:05Z",
            }
        )
    return ws, root / "training" / "anchor"


# -- measuring ----------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident memory now (Linux: /proc/self/status VmRSS)."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def last_written(log: Path) -> int:
    """The number of the last complete line of `log`, read from its end."""
    with log.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - 4096))
        tail = handle.read().decode()
    return int(tail.rstrip("\n").rsplit("\n", 1)[-1][:10])


@dataclass
class Figures:
    first_frame_s: float = 0.0
    key_latency_s: list[float] = field(default_factory=list)
    rss_open_mb: float = 0.0
    rss_end_mb: float = 0.0
    lag_lines: list[int] = field(default_factory=list)
    lag_at_end: int = 0
    catch_up_s: float = 0.0
    written: int = 0
    log_kept: int = 0


class Timed:
    """An app binding `k` that records when it ran."""

    BINDING = Binding("k", "mark", "Mark")

    def __init__(self) -> None:
        self.at: float | None = None

    def mark(self) -> None:
        self.at = time.perf_counter()


class Marked(Static):
    """A Static that records when it first renders."""

    painted: float | None = None

    def render(self) -> RenderResult:
        if self.painted is None:
            self.painted = time.perf_counter()
        return super().render()


class MinimalApp(App[None]):
    BINDINGS = [Timed.BINDING]

    def __init__(self, timed: Timed) -> None:
        super().__init__()
        self.timed = timed

    def compose(self) -> ComposeResult:
        yield Marked("Hello")

    def action_mark(self) -> None:
        self.timed.mark()


class PaneApp(App[None]):
    """The Training pane alone; nothing reconciles the run with a worker (there is none)."""

    BINDINGS = [Timed.BINDING]

    def __init__(self, ws: Workspace, timed: Timed) -> None:
        super().__init__()
        self.ws = ws
        self.timed = timed

    def on_mount(self) -> None:
        self.push_screen(TrainingScreen(self.ws, RunCalls(reconcile=lambda ws: None)))

    def action_mark(self) -> None:
        self.timed.mark()


async def until(pilot: Pilot, condition: Callable[[], bool], limit_s: float = 60.0) -> None:
    deadline = time.perf_counter() + limit_s
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError("the bench gave up waiting")
        await pilot.pause(0.005)


def shown_seq(app: App[None]) -> int:
    """The number of the last line the pane's log view holds (0 when none)."""
    log = app.screen.query_one(LogView)
    for index in range(len(log.ring) - 1, -1, -1):
        line = log.ring[index]
        if not line.startswith(MARKER):
            return int(line[:10])
    return 0


async def flood(
    pilot: Pilot,
    timed: Timed,
    run_dir: Path,
    args: argparse.Namespace,
    figures: Figures,
    lag: Callable[[], int] | None,
) -> None:
    """Press `k` every SAMPLE_S while the writer floods `run_dir`; sample the lag if given."""
    writer = start_writer(run_dir, args.rate, args.seconds, args.existing)
    while writer.poll() is None:
        timed.at = None
        pressed = time.perf_counter()
        await pilot.press("k")
        await until(pilot, lambda: timed.at is not None)
        assert timed.at is not None
        figures.key_latency_s.append(timed.at - pressed)
        if lag is not None:
            figures.lag_lines.append(lag())
        await pilot.pause(SAMPLE_S)
    out, _ = writer.communicate()
    figures.written = int(out) - args.existing
    if lag is not None:
        ended = time.perf_counter()
        figures.lag_at_end = lag()
        await until(pilot, lambda: lag() == 0)
        figures.catch_up_s = time.perf_counter() - ended
    figures.rss_end_mb = rss_mb()


async def run_anchor(run_dir: Path, args: argparse.Namespace) -> Figures:
    figures = Figures()
    timed = Timed()
    app = MinimalApp(timed)
    start = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        marked = app.screen.query_one(Marked)
        await until(pilot, lambda: marked.painted is not None)
        assert marked.painted is not None
        figures.first_frame_s = marked.painted - start
        figures.rss_open_mb = rss_mb()
        await flood(pilot, timed, run_dir, args, figures, None)
    return figures


async def run_pane(ws: Workspace, args: argparse.Namespace) -> Figures:
    figures = Figures()
    timed = Timed()
    app = PaneApp(ws, timed)
    log_path = ws.root / "training" / "1" / LOG_FILE
    start = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, TrainingScreen) and shown_seq(app) == args.existing,
        )
        await pilot.pause()
        figures.first_frame_s = time.perf_counter() - start
        figures.rss_open_mb = rss_mb()
        await flood(
            pilot,
            timed,
            ws.root / "training" / "1",
            args,
            figures,
            lambda: last_written(log_path) - shown_seq(app),
        )
        figures.log_kept = len(app.screen.query_one(LogView).ring)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--existing", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write is not None:
        print(write_flood(args.write, args.rate, args.seconds, args.first))
        return 0
    with tempfile.TemporaryDirectory(prefix="cra-bench-") as scratch:
        started = time.perf_counter()
        ws, anchor_dir = build_workspace(Path(scratch) / "workspace", args.existing)
        built = time.perf_counter() - started
        log_mb = (ws.root / "training" / "1" / LOG_FILE).stat().st_size / 1e6
        anchor = asyncio.run(run_anchor(anchor_dir, args))
        pane = asyncio.run(run_pane(ws, args))
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, Textual {textual.__version__}"
    )
    print(
        f"existing log: {args.existing:,} lines, {log_mb:.0f} MB (built in {built:.1f} s); "
        f"flood: {args.rate:,} lines/s + 10 StepRecords/s for {args.seconds:g} s"
    )
    print(f"lines written during the flood: anchor {anchor.written:,}, pane {pane.written:,}")
    print()
    rows = [
        ("first frame (pane: last log line drawn)", anchor.first_frame_s, pane.first_frame_s, "s"),
        (
            "key latency, median",
            statistics.median(anchor.key_latency_s),
            statistics.median(pane.key_latency_s),
            "s",
        ),
        ("key latency, max", max(anchor.key_latency_s), max(pane.key_latency_s), "s"),
        ("RSS after opening", anchor.rss_open_mb, pane.rss_open_mb, "MB"),
        ("RSS after the flood", anchor.rss_end_mb, pane.rss_end_mb, "MB"),
    ]
    print(f"{'':42} {'anchor':>10} {'pane':>10} {'ratio':>7}")
    for name, base, value, unit in rows:
        print(f"{name:42} {base:>8.3f} {unit:<2}{value:>8.3f} {unit:<2}{value / base:>6.2f}")
    print()
    print(
        f"key presses during the flood: anchor {len(anchor.key_latency_s)}, pane "
        f"{len(pane.key_latency_s)}"
    )
    print(
        f"pane lag during the flood (lines written, not yet shown): median "
        f"{statistics.median(pane.lag_lines):,.0f}, max {max(pane.lag_lines):,}"
    )
    print(
        f"pane lag when the writer stopped: {pane.lag_at_end:,} lines; caught up "
        f"{pane.catch_up_s:.3f} s later"
    )
    print(
        f"pane memory: {pane.rss_end_mb - pane.rss_open_mb:+.1f} MB over the flood "
        f"(anchor {anchor.rss_end_mb - anchor.rss_open_mb:+.1f} MB); log view keeps "
        f"{pane.log_kept:,} lines"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
