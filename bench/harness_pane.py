"""Time the console's first frame on the Harness pane over 100,000 attempts.

Usage: .venv/bin/python bench/harness_pane.py [--attempts N] [--repeat N]

A scratch workspace gets one campaign with N attempts (four in five done, each with a recorded
plan, as a real campaign leaves them), its job and two worker lines. Then, alternating in the
same process, N times each:

- a minimal Textual app (one Static): seconds from building the app until the Static renders;
- the console opened on the Harness pane: seconds from building the app until the attempt list
  draws its first attempt (read from SQLite through the pane's poll).

The medians and their ratio are printed (docs/BENCHMARKS.md's anchor: 0.29 s for a minimal app; the
target: the pane's first frame within 0.3 s), then what each query of the pane's poll costs on
this database.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import textual
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Static

from app.app import CraApp
from engine.core.workspace import Workspace
from engine.harness.progress import (
    attempt_count,
    attempt_page,
    campaign_summaries,
    format_time,
    package_progress,
    worker_lines,
)
from screens.widgets.attempt_list import PAGE_SIZE, AttemptList

SIZE = (120, 40)
START = datetime(2025, 5, 28, tzinfo=UTC)
PLAN = {
    "summary": "Teach slugify to keep unicode letters",
    "parts": [
        {
            "id": f"part{i}",
            "title": "Normalise text before filtering it",
            "depends_on": [],
            "steps": [
                {
                    "description": "Normalise to NFKC before the characters are filtered",
                    "file": "src/textkit/slug.py",
                    "symbols": ["slugify", "Normaliser.apply"],
                }
            ]
            * 2,
        }
        for i in range(3)
    ],
}


def build_workspace(root: Path, count: int) -> Workspace:
    """A workspace holding one paused campaign of `count` attempts, its job and two workers."""
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    ws = Workspace.open(root)
    ws.db.execute("PRAGMA synchronous = OFF")  # a scratch database: no fsync per checkpoint
    spec = {
        "packages": ["a" * 64, "b" * 64],
        "pipeline": "gold",
        "model": "gold",
        "temperatures": [0.3, 0.6, 0.9],
        "seeds": [1],
        "workers": 2,
    }
    outcomes = ["resolved", "partial", "failed", "error", None]
    plan = json.dumps(PLAN)
    with ws.db.conn:
        campaign_id = (
            ws.db["campaigns"]
            .insert(
                {
                    "created_at": format_time(START),
                    "created_by": "bench",
                    "spec_json": json.dumps(spec),
                    "status": "paused",
                    "reason": "paused by the operator",
                    "updated_at": format_time(START),
                }
            )
            .last_pk
        )
        ws.db.conn.executemany(
            "INSERT INTO attempts (campaign_id, package_digest, package_name, sha, task, "
            "pipeline, model, temperature, seed, state, outcome, reason, finished_at, "
            "duration_s, f2p_passed, f2p_total, file_recall, plan_json) "
            "VALUES (?, ?, ?, ?, ?, 'gold', 'gold', ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_row(campaign_id, n, count, outcomes[n % 5], plan) for n in range(count)),
        )
        ws.db["jobs"].insert(
            {
                "kind": "campaign",
                "ref_id": campaign_id,
                "status": "exited",
                "started_at": format_time(START),
                "ended_at": format_time(START + timedelta(seconds=3 * count)),
            }
        )
        for slot in (1, 2):
            ws.db["harness_workers"].insert(
                {
                    "campaign_id": campaign_id,
                    "slot": slot,
                    "stage": "exited",
                    "detail": f"{count // 2} attempts",
                    "updated_at": format_time(START + timedelta(seconds=3 * count)),
                }
            )
    return ws


def _row(campaign_id: int, n: int, count: int, outcome: str | None, plan: str) -> tuple[Any, ...]:
    digest, name = ("a" * 64, "alpha") if n < count // 2 else ("b" * 64, "beta")
    done = outcome is not None
    return (
        campaign_id,
        digest,
        name,
        f"{n * 2654435761 % 2**160:040x}",
        f"{digest[:12]}-{n:012x}",
        (0.3, 0.6, 0.9)[n % 3],
        "done" if done else "pending",
        outcome,
        f"{outcome} after the tests ran" if done else None,
        format_time(START + timedelta(seconds=3 * n)) if done else None,
        61.5 if done else None,
        2 if outcome == "resolved" else 0 if done else None,
        2 if done else None,
        0.5 if done else None,
        plan if done else None,
    )


class FirstPaint:
    """When something first drew, in `time.perf_counter()` seconds."""

    def __init__(self) -> None:
        self.at: float | None = None

    def mark(self) -> None:
        if self.at is None:
            self.at = time.perf_counter()


class MinimalApp(App[None]):
    def __init__(self, painted: FirstPaint) -> None:
        super().__init__()
        self._painted = painted

    def compose(self) -> ComposeResult:
        yield Marked(self._painted, "Hello")


class Marked(Static):
    def __init__(self, painted: FirstPaint, text: str) -> None:
        super().__init__(text)
        self._painted = painted

    def render(self) -> Any:
        self._painted.mark()
        return super().render()


class HarnessFirst(CraApp):
    """The console, opened on the Harness pane."""

    DEFAULT_MODE = "harness"


async def _run_until(app: App[None], painted: FirstPaint) -> None:
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(2000):
            if painted.at is not None:
                return
            await pilot.pause(0.001)
    raise RuntimeError(f"{type(app).__name__} never drew what the bench waits for")


def time_minimal() -> float:
    painted = FirstPaint()
    start = time.perf_counter()
    asyncio.run(_run_until(MinimalApp(painted), painted))
    assert painted.at is not None
    return painted.at - start


def time_console(ws: Workspace) -> float:
    """Seconds until the attempt list draws a line holding an attempt (not a placeholder)."""
    painted = FirstPaint()
    original = AttemptList.render_line

    def render_line(self: AttemptList, y: int) -> Strip:
        strip = original(self, y)
        if self.row_at(self.scroll_offset.y + y) is not None:
            painted.mark()
        return strip

    AttemptList.render_line = render_line  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        asyncio.run(_run_until(HarnessFirst(ws, []), painted))
    finally:
        AttemptList.render_line = original  # type: ignore[method-assign]
    assert painted.at is not None
    return painted.at - start


def time_queries(ws: Workspace, count: int, repeat: int) -> list[tuple[str, float]]:
    """Median seconds of each query the pane's poll and list make, on this database."""
    now = START + timedelta(seconds=3 * count)
    deep = (count - PAGE_SIZE, None)
    queries: list[tuple[str, Callable[[], object]]] = [
        ("campaign_summaries", lambda: campaign_summaries(ws)),
        ("attempt_count (all)", lambda: attempt_count(ws, 1)),
        ("attempt_page at 0 (all)", lambda: attempt_page(ws, 1, 0, PAGE_SIZE)),
        (f"attempt_page at {deep[0]:,} (all)", lambda: attempt_page(ws, 1, deep[0], PAGE_SIZE)),
        ("attempt_count (resolved)", lambda: attempt_count(ws, 1, "resolved")),
        ("attempt_page at 0 (resolved)", lambda: attempt_page(ws, 1, 0, PAGE_SIZE, "resolved")),
        ("package_progress", lambda: package_progress(ws, 1, now)),
        ("worker_lines", lambda: worker_lines(ws, 1, now)),
    ]
    results = []
    for name, query in queries:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            query()
            times.append(time.perf_counter() - start)
        results.append((name, statistics.median(times)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cra-bench-") as scratch:
        start = time.perf_counter()
        ws = build_workspace(Path(scratch) / "workspace", args.attempts)
        built = time.perf_counter() - start
        size_mb = (ws.root / "cra.sqlite").stat().st_size / 1e6
        minimal_times, console_times = [], []
        for _ in range(args.repeat):
            minimal_times.append(time_minimal())
            console_times.append(time_console(ws))
        queries = time_queries(ws, args.attempts, args.repeat)
    minimal, console = statistics.median(minimal_times), statistics.median(console_times)
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, Textual {textual.__version__}"
    )
    print(
        f"workspace: {args.attempts:,} attempts, {size_mb:.0f} MB database, built in {built:.1f} s"
    )
    print(f"minimal Textual app, first frame:        {minimal:.3f} s (median of {args.repeat})")
    print(f"console on the Harness pane, first rows: {console:.3f} s (median of {args.repeat})")
    print(f"ratio: {console / minimal:.2f} (target: first frame at most 0.3 s)")
    print()
    print("queries of the pane (median):")
    for name, seconds in queries:
        print(f"  {name:<32} {seconds * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
