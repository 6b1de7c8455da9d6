"""Following a growing log (`LogTail`, `LineRing`) and reading a run folder back (`RunView`).

Every file here is written for real, the way a worker writes it: appended and flushed in pieces,
truncated in place, renamed away and created again.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.training.contract import (
    METRICS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    RunResult,
    RunSpec,
    StepRecord,
)
from engine.training.log_tail import LineRing, LogTail
from engine.training.run_view import LossSeries, RunView


def append(path: Path, data: str | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


# -- LogTail ------------------------------------------------------------------------------


def test_a_missing_file_reads_as_nothing_until_it_appears(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    tail = LogTail(log)
    assert tail.read().lines == []
    append(log, "one\ntwo\n")
    read = tail.read()
    assert read.lines == ["one", "two"]
    assert (read.restarted, read.skipped, read.partial, read.more) == (None, 0, "", False)


def test_appends_come_back_once_each_in_order(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "a\nb\n")
    tail = LogTail(log, chunk=3)
    assert tail.read().lines == ["a", "b"]
    assert tail.read().lines == []
    append(log, "c\r\nd\n")
    assert tail.read().lines == ["c", "d"]
    assert tail.position == log.stat().st_size


def test_a_partial_line_is_kept_until_its_newline_comes(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "first\nsec")
    tail = LogTail(log)
    read = tail.read()
    assert read.lines == ["first"]
    assert read.partial == "sec"
    append(log, "ond half")
    read = tail.read()
    assert read.lines == []
    assert read.partial == "second half"
    append(log, "\nthird\n")
    read = tail.read()
    assert read.lines == ["second half", "third"]
    assert read.partial == ""


def test_a_progress_bar_redrawn_with_carriage_returns_stays_small(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    tail = LogTail(log, max_line=64)
    append(log, "start\n")
    tail.read()
    for percent in range(101):
        append(log, f"\rtraining {percent:3d}% |{'#' * (percent // 10):<10}|")
    read = tail.read()
    assert read.lines == []
    assert read.partial == "training 100% |##########|"
    append(log, "\n")
    assert tail.read().lines[0].endswith("training 100% |##########|")


def test_a_line_without_end_longer_than_the_cap_is_cut(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "x" * 1000)
    read = LogTail(log, max_line=100, chunk=64).read()
    assert len(read.lines) >= 1
    assert all(len(line) <= 101 for line in read.lines)
    assert read.lines[0] == "x" * 100 + "…"


def test_truncation_starts_again_from_the_beginning_and_says_so(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "old 1\nold 2\nold 3\n")
    tail = LogTail(log)
    assert len(tail.read().lines) == 3
    with log.open("r+b") as handle:
        handle.truncate(0)
    append(log, "new 1\n")
    read = tail.read()
    assert read.restarted == "truncated"
    assert read.lines == ["new 1"]
    append(log, "new 2\n")
    read = tail.read()
    assert (read.restarted, read.lines) == (None, ["new 2"])


def test_rotation_finishes_the_old_file_then_follows_the_new(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "old 1\n")
    tail = LogTail(log)
    assert tail.read().lines == ["old 1"]
    append(log, "old 2\nold unfinished")
    log.rename(tmp_path / "train.log.1")
    assert tail.read().lines == ["old 2"]  # renamed away, nothing in its place yet
    append(log, "new 1\nnew 2\n")
    read = tail.read()
    assert read.restarted == "rotated"
    assert read.lines == ["old unfinished", "new 1", "new 2"]
    append(log, "new 3\n")
    assert tail.read().lines == ["new 3"]


def test_a_rotated_file_read_past_the_budget_is_finished_first(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    tail = LogTail(log)
    append(log, "")
    tail.read()
    append(log, "".join(f"old {n}\n" for n in range(100)))
    log.rename(tmp_path / "train.log.1")
    append(log, "new\n")
    seen: list[str] = []
    restarts = []
    for _ in range(100):
        read = tail.read(max_bytes=64)
        seen += read.lines
        restarts.append(read.restarted)
        if not read.more and seen and seen[-1] == "new":
            break
    assert seen == [f"old {n}" for n in range(100)] + ["new"]
    assert restarts.count("rotated") == 1


def test_max_bytes_bounds_a_read_and_says_more_is_left(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    append(log, "".join(f"{n:04d}\n" for n in range(1000)))
    tail = LogTail(log)
    first = tail.read(max_bytes=1000)
    assert first.more
    assert first.lines == [f"{n:04d}" for n in range(200)]
    rest: list[str] = []
    while True:
        read = tail.read(max_bytes=1000)
        rest += read.lines
        if not read.more:
            break
    assert rest == [f"{n:04d}" for n in range(200, 1000)]


def test_a_big_log_is_opened_near_its_end(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "".join(f"line {n}\n" for n in range(20_000)) + "unfinished")
    tail = LogTail(log, keep_last=100, skip_over=1000, chunk=512)
    read = tail.read()
    assert read.lines == [f"line {n}" for n in range(19_901, 20_000)]
    assert read.partial == "unfinished"
    assert read.skipped == len("".join(f"line {n}\n" for n in range(19_901)))


def test_a_console_that_fell_behind_jumps_to_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    append(log, "head\n")
    tail = LogTail(log, keep_last=10, skip_over=100)
    assert tail.read().lines == ["head"]
    append(log, "".join(f"burst {n}\n" for n in range(1000)))
    read = tail.read()
    assert read.lines == [f"burst {n}" for n in range(990, 1000)]
    assert read.skipped > 0
    append(log, "after\n")
    read = tail.read()
    assert (read.lines, read.skipped) == (["after"], 0)


def test_a_million_line_log_opens_fast_and_keeps_the_ring_bounded(tmp_path: Path) -> None:
    """A worker process writes a million lines; the tail reads only the last ones."""
    log = tmp_path / "train.log"
    script = (
        "import sys\n"
        "with open(sys.argv[1], 'w') as f:\n"
        "    for n in range(1_000_000):\n"
        '        f.write(f\'{{"step": {n}, "msg": "log line number {n}"}}\\n\')\n'
    )
    subprocess.run([sys.executable, "-c", script, str(log)], check=True)
    assert log.stat().st_size > 40_000_000
    tail = LogTail(log, keep_last=5000)
    read = tail.read()
    assert len(read.lines) == 5000
    assert read.lines[-1] == '{"step": 999999, "msg": "log line number 999999"}'
    assert read.skipped > log.stat().st_size - 1_000_000
    ring = LineRing(5000)
    ring.extend(read.lines)
    append(log, "".join(f"more {n}\n" for n in range(7000)))
    ring.extend(tail.read().lines)
    assert len(ring) == 5000
    assert ring[-1] == "more 6999"
    assert ring[0] == "more 2000"


# -- LineRing -----------------------------------------------------------------------------


def test_the_ring_keeps_the_last_lines_with_their_numbers() -> None:
    ring = LineRing(4)
    assert ring.extend(["a", "b", "c"]) == 0
    assert (len(ring), ring.first, ring.total) == (3, 0, 3)
    assert ring.extend(["d", "e"]) == 1
    assert [ring[i] for i in range(len(ring))] == ["b", "c", "d", "e"]
    assert (ring.first, ring.total) == (1, 5)
    assert ring.extend([str(n) for n in range(10)]) == 10
    assert [ring[i] for i in range(4)] == ["6", "7", "8", "9"]
    assert (ring.first, ring.total, ring[-1]) == (11, 15, "9")
    with pytest.raises(IndexError):
        ring[4]
    ring.clear()
    assert (len(ring), ring.total) == (0, 0)


# -- LossSeries ---------------------------------------------------------------------------


def test_the_smoothed_loss_is_a_debiased_moving_average() -> None:
    series = LossSeries(max_points=100, weight=0.5)
    for step, loss in enumerate([4.0, 2.0, 2.0], start=1):
        series.add(step, loss)
    points = series.points()
    assert [p.loss for p in points] == [4.0, 2.0, 2.0]
    # biased: 2.0, 2.0, 2.0 → debiased by 1 − 0.5^n: 4.0, 2.667, 2.286
    assert [round(p.smooth, 3) for p in points] == [4.0, 2.667, 2.286]


def test_a_long_series_is_downsampled_to_a_bounded_number_of_points() -> None:
    series = LossSeries(max_points=64, weight=0.9)
    for step in range(1, 10_001):
        series.add(step, 1.0 + (step % 2))
    points = series.points()
    assert len(points) <= 64
    assert series.steps_per_point >= 10_000 // 64
    assert points[0].first == 1
    assert points[-1].step == 10_000
    whole = [p for p in points if p.step - p.first + 1 == series.steps_per_point]
    assert all(math.isclose(p.loss, 1.5) for p in whole)  # means of alternating 1 and 2
    firsts = [p.first for p in points]
    assert firsts == sorted(firsts)


def test_a_resumed_run_replaces_the_steps_it_logs_again() -> None:
    series = LossSeries(max_points=100, weight=0.5)
    for step in range(1, 11):
        series.add(step, 1.0)
    series.add(7, 3.0)
    points = series.points()
    assert [p.step for p in points] == [1, 2, 3, 4, 5, 6, 7]
    assert points[-1].loss == 3.0
    assert 1.0 < points[-1].smooth < 3.0


# -- RunView ------------------------------------------------------------------------------


def spec() -> RunSpec:
    return RunSpec(
        stage="scope",
        method="sft",
        base_model="reasoning",
        base_model_path="models/qwen3-4b",
        dataset_id="scope-d1",
        dataset_path="datasets/scope-d1",
        dataset_sha256="0" * 64,
    )


def record(step: int, loss: float | None = 1.0, **extra: float | None) -> str:
    fields = {"max_steps": 40, "elapsed_s": 2.0 * step, **extra}
    return StepRecord(step=step, loss=loss, **fields).model_dump_json() + "\n"


def test_the_run_view_reads_metrics_as_they_are_appended(tmp_path: Path) -> None:
    (tmp_path / SPEC_FILE).write_text(spec().model_dump_json(), encoding="utf-8")
    view = RunView(tmp_path)
    state = view.read()
    assert state.spec == spec()
    assert (state.records, state.latest, state.progress, state.eta_s) == (0, None, None, None)
    metrics = tmp_path / METRICS_FILE
    append(metrics, record(1, 2.0, tokens_per_s=900.0, memory_mb=5000.0))
    append(metrics, record(2, 1.5, memory_mb=None))
    append(metrics, record(10, 1.0)[:20])
    state = view.read()
    assert state.records == 2
    assert state.latest is not None and state.latest.step == 2
    assert (state.tokens_per_s, state.memory_mb) == (900.0, 5000.0)
    assert state.progress == 2 / 40
    assert state.eta_s == 2.0 * 38  # 2 s a step, 38 to go
    append(metrics, record(10, 1.0)[20:])
    append(metrics, record(11, 0.5, eta_s=55.0, tokens_per_s=1200.0))
    state = view.read()
    assert state.records == 4
    assert [p.step for p in state.curve] == [1, 2, 10, 11]
    assert state.tokens_per_s == 1200.0
    assert state.eta_s == 55.0
    assert state.problems == ()


def test_a_malformed_metrics_line_is_reported_and_skipped(tmp_path: Path) -> None:
    metrics = tmp_path / METRICS_FILE
    append(metrics, record(1, 2.0))
    append(metrics, "not json at all\n")
    append(metrics, json.dumps({"step": 3, "max_steps": 40}) + "\n")  # elapsed_s missing
    append(metrics, "\n")
    append(metrics, record(4, 1.0))
    view = RunView(tmp_path)
    state = view.read()
    assert state.records == 2
    assert [p.step for p in state.curve] == [1, 4]
    assert len(state.problems) == 2
    assert f"{metrics} line 2: " in state.problems[0]
    assert "Invalid JSON" in state.problems[0]
    assert f"{metrics} line 3: key elapsed_s" in state.problems[1]
    assert view.read().problems == ()


def test_the_result_is_read_when_it_appears_and_when_it_changes(tmp_path: Path) -> None:
    view = RunView(tmp_path)
    assert view.read().result is None
    result = RunResult(
        status="done",
        backend="trl",
        steps=40,
        max_steps=40,
        final_loss=0.4,
        train_runtime_s=80.0,
        adapter_dir="adapter",
    )
    (tmp_path / RESULT_FILE).write_text(result.model_dump_json(), encoding="utf-8")
    state = view.read()
    assert state.result == result
    assert (state.progress, state.eta_s) == (1.0, None)  # an ended run has no ETA
    (tmp_path / RESULT_FILE).write_text('{"status": "exploded"}', encoding="utf-8")
    os.utime(tmp_path / RESULT_FILE, ns=(1, 1))
    state = view.read()
    assert state.result is None
    assert len(state.problems) == 1 and RESULT_FILE in state.problems[0]
    assert view.read().problems == ()  # reported once, not on every read
    (tmp_path / RESULT_FILE).unlink()
    assert view.read().result is None


def test_a_truncated_metrics_file_starts_the_curve_again(tmp_path: Path) -> None:
    metrics = tmp_path / METRICS_FILE
    append(metrics, record(1, 2.0) + record(2, 1.0))
    view = RunView(tmp_path)
    assert view.read().records == 2
    metrics.write_text(record(1, 5.0), encoding="utf-8")
    state = view.read()
    assert state.records == 1
    assert [p.loss for p in state.curve] == [5.0]
    assert "truncated" in state.problems[0]
