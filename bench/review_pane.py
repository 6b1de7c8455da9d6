"""Time the console's first frame on the Review pane over 100,000 preference pairs.

Usage: .venv/bin/python bench/review_pane.py [--pairs N] [--repeat N]

A scratch workspace gets N pairs (three in five execute_code, the rest planning_dpo) over eight
repos and two sources, each with a prompt of about 1.5 KB and two answers of search/replace
edits, and a round of 15 execute_code pairs drawn for review. Then, alternating in the same
process, N times each:

- a minimal Textual app (one Static): seconds from building the app until the Static renders;
- the console opened on the Review pane: seconds from building the app until the pair's
  answers draw (the stages counted, the round read, the item read and laid out).

The medians and their ratio are printed (docs/BENCHMARKS.md's anchor: 0.29 s for a minimal app),
then what each engine call of the pane costs on this database.
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
from pathlib import Path
from typing import Any

import textual
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Static

from app.app import CraApp
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training_data.review import draw_sample
from engine.training_data.review_status import latest_round_items, stage_counts, stage_statuses
from engine.training_data.store import load_item
from screens.review_lines import RowsView
from screens.review_view import item_view

SIZE = (120, 40)
SOURCE = "\n".join(
    f"def load_{n}(path: Path) -> dict[str, str]:\n    return json.loads(path.read_text())\n"
    for n in range(20)
)


def _edits(body: str) -> str:
    return json.dumps(
        [{"path": "src/pkg/config.py", "search": "def load_3(", "replace": body, "delete": False}]
    )


CHOSEN = _edits(
    "def load_3(path: Path) -> dict[str, str]:\n    try:\n        return json.loads(path.read_text"
    "())\n    except json.JSONDecodeError as exc:\n        raise ConfigError(f'{path}: {exc}') "
    "from exc\n"
)
REJECTED = _edits(
    "def load_3(path: Path) -> dict[str, str]:\n    try:\n        return json.loads(path.read_text"
    "())\n    except Exception:\n        return {}\n"
)


def build_workspace(root: Path, count: int) -> Workspace:
    """A workspace holding `count` pairs and one drawn round of 15 execute_code pairs."""
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    ws = Workspace.open(root)
    ws.db.execute("PRAGMA synchronous = OFF")  # a scratch database: no fsync per checkpoint
    now = utc_now()
    with ws.db.conn:
        ws.db.conn.executemany(
            "INSERT INTO examples (stage, base_model, kind, source, origin, repo, domain, "
            "task_key, task_date, prompt_json, chosen_json, rejected_json, prompt_tokens, "
            "completion_tokens, content_hash, created_at) "
            "VALUES (?, ?, 'preference', ?, ?, ?, 'text', ?, ?, ?, ?, ?, 400, 160, ?, ?)",
            (_row(n, now) for n in range(count)),
        )
    draw_sample(ws, "execute_code", 15, seed=1)
    return ws


def _row(n: int, now: str) -> tuple[Any, ...]:
    code = n % 5 < 3
    prompt = [
        {"role": "system", "content": "You carry out a coding task on the files shown."},
        {
            "role": "user",
            "content": f"Files before the change:\n### src/pkg/config.py\n```\n{SOURCE}```\n\n"
            f"Task:\nRaise ConfigError when config {n} is not JSON",
        },
    ]
    return (
        "execute_code" if code else "planning_dpo",
        "coding" if code else "reasoning",
        ("harness", "synthetic")[n % 2],
        "harness_code" if code else "harness_plan",
        f"repo{n % 8}",
        f"task:{n:06d}",
        "2026-01-02T03:04:05Z",
        json.dumps(prompt),
        json.dumps([{"role": "assistant", "content": CHOSEN}]),
        json.dumps([{"role": "assistant", "content": REJECTED}]),
        f"{n:064x}",
        now,
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


class ReviewFirst(CraApp):
    """The console, opened on the Review pane."""

    DEFAULT_MODE = "review"


async def _run_until(app: App[None], painted: FirstPaint) -> None:
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(5000):
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
    """Seconds until the answer view draws a line of the current pair."""
    painted = FirstPaint()
    original = RowsView.render_line

    def render_line(self: RowsView, y: int) -> Strip:
        strip = original(self, y)
        if self.id == "answer" and self.shown is not None:
            painted.mark()
        return strip

    RowsView.render_line = render_line  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        asyncio.run(_run_until(ReviewFirst(ws, []), painted))
    finally:
        RowsView.render_line = original  # type: ignore[method-assign]
    assert painted.at is not None
    return painted.at - start


def time_calls(ws: Workspace, repeat: int) -> list[tuple[str, float]]:
    """Median seconds of each engine call the pane makes, on this database."""
    _, items = latest_round_items(ws.db, "execute_code") or (None, [])
    first = items[0].example_id
    calls: list[tuple[str, Callable[[], object]]] = [
        ("stage_counts", lambda: stage_counts(ws.db)),
        ("stage_statuses (8 stages, gates)", lambda: stage_statuses(ws)),
        ("latest_round_items", lambda: latest_round_items(ws.db, "execute_code")),
        ("load_item + item_view", lambda: item_view(load_item(ws.db, first))),
        ("draw_sample (15 of planning_dpo)", lambda: draw_sample(ws, "planning_dpo", 15, seed=2)),
    ]
    results = []
    for name, call in calls:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        results.append((name, statistics.median(times)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cra-bench-") as scratch:
        start = time.perf_counter()
        ws = build_workspace(Path(scratch) / "workspace", args.pairs)
        built = time.perf_counter() - start
        size_mb = (ws.root / "cra.sqlite").stat().st_size / 1e6
        minimal_times, console_times = [], []
        for _ in range(args.repeat):
            minimal_times.append(time_minimal())
            console_times.append(time_console(ws))
        calls = time_calls(ws, args.repeat)
    minimal, console = statistics.median(minimal_times), statistics.median(console_times)
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, Textual {textual.__version__}"
    )
    print(f"workspace: {args.pairs:,} pairs, {size_mb:.0f} MB database, built in {built:.1f} s")
    print(f"minimal Textual app, first frame:       {minimal:.3f} s (median of {args.repeat})")
    print(f"console on the Review pane, first pair: {console:.3f} s (median of {args.repeat})")
    print(f"ratio: {console / minimal:.2f}")
    print()
    print("engine calls of the pane (median):")
    for name, seconds in calls:
        print(f"  {name:<34} {seconds * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
