"""Time the console's pane switches, idle CPU and key latency against a minimal Textual app.

Usage: .venv/bin/python bench/console_speed.py [--workspace DIR] [--repeat N] [--idle-s S]
       [--live | --live-only] [--live-limit-s S]

On the demo workspace (`cra demo`'s, built in DIR unless it is there already), in one process,
headless at 160x50, in turns so that a busy machine slows both sides alike:

- **pane switch**: seconds from pressing a pane's key until the new screen is drawn (`pilot.press`
  then `pilot.pause(0)`, which paints). The minimal app is seven one-`Static` screens switched the
  same way (Textual modes, a key each). The first visit of each pane (its screen built out of
  view after start-up, laid out and drawn on the visit) and a return to it are timed apart; each
  app is built afresh `--repeat` times. Targets: within 3x of the minimal app's switch, and
  under 100 ms.
- **idle CPU**: the process's CPU time over `--idle-s` seconds while one pane is in view and
  nothing happens, as a share of one core, each pane and the minimal app. Target: under 1 %.
- with `--live`, **key latency** while `cra demo --run` walks the loop in another process on a
  copy of the workspace: seconds from pressing down or up until the screen is drawn, on the
  Harness pane while its campaign runs and on the Training pane while its training run runs.
  Target: under 50 ms (median and 95th percentile printed).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from app.app import PANES, CraApp, Pane
from engine.core.workspace import Workspace
from engine.demo.workspace import prepare_demo

SIZE = (160, 50)
KEYS = [pane.key for pane in PANES]


class Painted:
    """The first frame the app put on the (headless) screen while `until()` held, in
    `time.perf_counter()` s: checked as each frame is drawn, so a frame drawn in the same turn of
    the event loop as the change counts."""

    def __init__(self) -> None:
        self.until: Callable[[], bool] | None = None
        self.at: float | None = None

    def expect(self, until: Callable[[], bool]) -> None:
        self.until, self.at = until, None

    def mark(self) -> None:
        if self.at is None and self.until is not None and self.until():
            self.at = time.perf_counter()


class MinimalScreen(Screen[None]):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        yield Static(self._text)


class MinimalApp(App[None]):
    """Seven one-`Static` screens, a key each: the floor of a screen switch."""

    MODES = {pane.mode: lambda title=pane.title: MinimalScreen(title) for pane in PANES}
    DEFAULT_MODE = PANES[0].mode
    BINDINGS = [Binding(pane.key, f"switch_mode('{pane.mode}')") for pane in PANES]

    def __init__(self) -> None:
        super().__init__()
        self.painted = Painted()

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        if renderable is not None:
            self.painted.mark()
        super()._display(screen, renderable)


class Console(CraApp):
    def __init__(self, ws: Workspace, drive: Path) -> None:
        super().__init__(ws, [drive])
        self.painted = Painted()

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        if renderable is not None:
            self.painted.mark()
        super()._display(screen, renderable)


Timed = MinimalApp | Console


async def _timed_key(app: Timed, key: str, done: Callable[[], bool]) -> float:
    """Seconds from a key reaching the app until the first frame drawn once `done()` holds.
    The key goes in as the terminal driver sends it (not `pilot.press`, which also waits for
    the whole process to go idle)."""
    app.painted.expect(done)
    start = time.perf_counter()
    app.post_message(events.Key(key, key if len(key) == 1 else None))
    deadline = start + 30.0
    while app.painted.at is None:
        await asyncio.sleep(0.0005)
        if time.perf_counter() > deadline:
            raise RuntimeError(f"key {key!r}: no frame showed the change within 30 s")
    return app.painted.at - start


async def _switches(app: Timed) -> tuple[dict[str, float], dict[str, float]]:
    """Each pane's first visit and a return to it, in seconds."""
    first: dict[str, float] = {}
    again: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        # An operator reads the first pane before pressing a key; the console imports the other
        # panes' modules and builds their screens out of view meanwhile (`CraApp.on_mount`),
        # and the first visits start after.
        for worker in [w for w in app.workers if w.group == "preload"]:
            await worker.wait()
        while isinstance(app, Console) and len(app.built_panes) < len(PANES):
            await pilot.pause(0.05)
        for timings in (first, again):
            for pane in [*PANES[1:], PANES[0]]:
                timings[pane.key] = await _timed_key(
                    app, pane.key, lambda mode=pane.mode: app.current_mode == mode
                )
                await pilot.pause(0.3)  # the pane's first read lands before the next key
    return first, again


async def _idle(app: Timed, seconds: float, panes: list[Pane]) -> dict[str, float]:
    """Each pane's CPU share (of one core) over `seconds` in view with nothing happening."""
    shares = {}
    async with app.run_test(size=SIZE) as pilot:
        for pane in panes:
            await pilot.press(pane.key)
            await pilot.pause(2.0)  # its first read and what that draws
            cpu = time.process_time()
            wall = time.perf_counter()
            await asyncio.sleep(seconds)
            shares[pane.key] = (time.process_time() - cpu) / (time.perf_counter() - wall)
    return shares


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(0.95 * len(samples)) - 1)]


def bench_switches(ws: Workspace, drive: Path, repeat: int) -> None:
    minimal_first: list[float] = []
    minimal_again: list[float] = []
    first: dict[str, list[float]] = {key: [] for key in KEYS}
    again: dict[str, list[float]] = {key: [] for key in KEYS}
    for _ in range(repeat):
        f, a = asyncio.run(_switches(MinimalApp()))
        minimal_first.extend(f.values())
        minimal_again.extend(a.values())
        f, a = asyncio.run(_switches(Console(ws, drive)))
        for key in KEYS:
            first[key].append(f[key])
            again[key].append(a[key])
    floor_first, floor_again = _median(minimal_first), _median(minimal_again)
    print(f"pane switch, median of {repeat} (ms; ratio to the minimal app's switch)")
    print(f"  {'':<12} {'first visit':>18} {'return':>18}")
    print(f"  {'minimal app':<12} {floor_first * 1e3:>11.1f}        {floor_again * 1e3:>11.1f}")
    for pane in PANES:
        f, a = _median(first[pane.key]), _median(again[pane.key])
        print(
            f"  {pane.title:<12} {f * 1e3:>8.1f} ({f / floor_first:>5.1f}x) "
            f"{a * 1e3:>10.1f} ({a / floor_again:>5.1f}x)"
        )


def bench_idle(ws: Workspace, drive: Path, seconds: float) -> None:
    minimal = asyncio.run(_idle(MinimalApp(), seconds, PANES[:1]))[KEYS[0]]
    shares = asyncio.run(_idle(Console(ws, drive), seconds, [*PANES[1:], PANES[0]]))
    print(f"idle CPU over {seconds:g} s, share of one core")
    print(f"  {'minimal app':<12} {minimal * 100:>6.2f} %")
    for pane in PANES:
        print(f"  {pane.title:<12} {shares[pane.key] * 100:>6.2f} %")


async def _latency_while(
    app: Console, key: str, live: Callable[[], bool], limit_s: float
) -> list[float]:
    """Latencies of tab (focus moves on, a frame shows it) on the pane of `key` while `live()`
    holds, until `limit_s`."""
    samples: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key)
        await pilot.pause(1.0)
        deadline = time.monotonic() + limit_s
        while not live():
            if time.monotonic() > deadline:
                return samples
            await pilot.pause(0.2)
        while live() and time.monotonic() < deadline:
            samples.append(await _timed_key(app, "tab", partial(_moved, app, app.focused)))
            await pilot.pause(0.2)
    return samples


def _moved(app: Console, before: object) -> bool:
    return app.focused is not before


def _status(ws: Workspace, sql: str) -> bool:
    return ws.db.execute(sql).fetchone()[0] > 0


def bench_live(limit_s: float) -> None:
    """Key latency on the Harness pane during the demo loop's campaign, then on the Training
    pane during its training run."""
    with tempfile.TemporaryDirectory(prefix="cra-bench-") as scratch:
        root = Path(scratch) / "demo"
        log = (Path(scratch) / "loop.log").open("w")
        loop = subprocess.Popen(
            [sys.executable, "-m", "app", "--workspace", str(root), "demo", "--run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            # `--run` builds the workspace afresh, then walks the loop: the console opens it
            # once the loop has (two first opens would both migrate it).
            while "1. approved" not in Path(log.name).read_text(encoding="utf-8"):
                if loop.poll() is not None:
                    raise RuntimeError(f"cra demo --run exited {loop.returncode}; see {log.name}")
                time.sleep(0.5)
            ws, drive = prepare_demo(root)
            campaign = "SELECT COUNT(*) FROM campaigns WHERE status = 'running'"
            training = "SELECT COUNT(*) FROM training_runs WHERE status = 'running'"
            for title, key, sql in [("Harness", "2", campaign), ("Training", "5", training)]:
                samples = asyncio.run(
                    _latency_while(
                        Console(ws, drive), key, lambda sql=sql: _status(ws, sql), limit_s
                    )
                )
                if not samples:
                    print(f"  {title}: nothing ran within {limit_s:g} s; see {log.name}")
                    continue
                print(
                    f"key latency on {title} while it runs, {len(samples)} presses: median "
                    f"{_median(samples) * 1e3:.1f} ms, 95th percentile {_p95(samples) * 1e3:.1f} ms"
                )
        finally:
            loop.terminate()
            loop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/cra-bench-demo"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--live-limit-s", type=float, default=600.0)
    parser.add_argument("--live-only", action="store_true", help="skip the switches and idle")
    args = parser.parse_args()
    ws, drive = prepare_demo(args.workspace)
    print(f"demo workspace {ws.root}; {SIZE[0]}x{SIZE[1]}")
    if not args.live_only:
        bench_switches(ws, drive, args.repeat)
        bench_idle(ws, drive, args.idle_s)
    if args.live or args.live_only:
        bench_live(args.live_limit_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
