"""A training run as the console shows it: its row, and its folder read back incrementally.

`recent_runs` reads the `training_runs` table (newest first). `RunView` follows one run's
folder (the files of `engine.training.contract`): each `read` parses only the `metrics.jsonl`
lines added since the previous one (through a `LogTail`, at most `METRICS_READ_BYTES` a read),
keeps the loss curve in a bounded `LossSeries`, and reads `spec.json` once and `result.json`
whenever it changes. A line that is not a `StepRecord`, or a result that is not a `RunResult`,
is reported in `RunState.problems`, never fatal: the rest of the run still shows.

`RunView` is not thread-safe; `RunState` is immutable and can be handed to another thread.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils
from pydantic import BaseModel, ConfigDict, ValidationError

from engine.core.errors import validation_lines
from engine.training.contract import (
    METRICS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    RunResult,
    RunSpec,
    StepRecord,
)
from engine.training.log_tail import LogTail

METRICS_READ_BYTES = 4 * 1024 * 1024
MAX_POINTS = 512
EMA_WEIGHT = 0.9
MAX_PROBLEMS = 5
TERMINAL = ("done", "failed", "stopped")


class RunRow(BaseModel):
    """One row of `training_runs`, without its spec, with the adapter version it registered:
    what the Training pane lists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    stage: str
    base_model: str
    method: str
    dataset_id: str
    backend: str | None = None
    status: str
    reason: str | None = None
    run_dir: str
    created_at: str | None = None
    created_by: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    step: int | None = None
    max_steps: int | None = None
    loss: float | None = None
    adapter_id: int | None = None
    adapter_name: str | None = None
    """The version the run registered (`scope-v1`); None when it registered none."""
    adapter_status: str | None = None
    """That version's status now: candidate, active, inactive or rejected."""
    gate: str | None = None
    """The verdict of that version's newest gate decision; None before it was gated."""


class TrainingRun(RunRow):
    """One row of `training_runs` in full: what `engine.training.runs.run_row` and `list_runs`
    return."""

    spec_json: str

    @property
    def spec(self) -> RunSpec:
        """The run's spec, as recorded when it started."""
        return RunSpec.model_validate_json(self.spec_json)


_VERSION_FIELDS = {
    "adapter_name": "a.name",
    "adapter_status": "a.status",
    "gate": (
        "(SELECT g.decision FROM gate_decisions g WHERE g.adapter_id = r.adapter_id "
        "ORDER BY g.id DESC LIMIT 1)"
    ),
}


def runs_query(model: type[RunRow]) -> str:
    """A SELECT of `training_runs r` as `model`'s fields, joined to the version each run
    registered; the caller adds WHERE and ORDER BY."""
    fields = ", ".join(
        f"{_VERSION_FIELDS[name]} AS {name}" if name in _VERSION_FIELDS else f"r.{name}"
        for name in model.model_fields
    )
    return (
        f"SELECT {fields} FROM training_runs r LEFT JOIN adapter_versions a ON a.id = r.adapter_id"
    )


def recent_runs(db: sqlite_utils.Database, limit: int = 200) -> list[RunRow]:
    """The newest `limit` training runs, newest first."""
    rows = db.query(f"{runs_query(RunRow)} ORDER BY r.id DESC LIMIT ?", [limit])
    return [RunRow(**row) for row in rows]


# -- the loss curve -----------------------------------------------------------------------


@dataclass(frozen=True)
class LossPoint:
    """The mean raw loss over steps `first`..`step`, and the smoothed loss at `step`."""

    first: int
    step: int
    loss: float
    smooth: float


@dataclass
class _Bucket:
    first: int
    step: int
    total: float
    count: int
    ema: float
    ema_count: int


class LossSeries:
    """Raw and smoothed (debiased exponential moving average, as TensorBoard draws it) loss by
    step, in at most `max_points` points: once full, neighbours merge pairwise, so each point
    then stands for twice as many steps. A step at or before the last one (a run resumed from
    an earlier checkpoint logs those steps again) drops the points from that step on."""

    def __init__(self, max_points: int = MAX_POINTS, weight: float = EMA_WEIGHT) -> None:
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        if not 0 <= weight < 1:
            raise ValueError(f"weight must be in [0, 1), got {weight}")
        self._max = max_points
        self._weight = weight
        self._done: list[_Bucket] = []
        self._open: _Bucket | None = None
        self.steps_per_point = 1
        self._ema = 0.0
        self._ema_count = 0

    def add(self, step: int, loss: float) -> None:
        last = self._open or (self._done[-1] if self._done else None)
        if last is not None and step <= last.step:
            self._rewind(step)
        self._ema = self._weight * self._ema + (1 - self._weight) * loss
        self._ema_count += 1
        bucket = self._open
        if bucket is None:
            bucket = _Bucket(step, step, 0.0, 0, 0.0, 0)
            self._open = bucket
        bucket.step = step
        bucket.total += loss
        bucket.count += 1
        bucket.ema, bucket.ema_count = self._ema, self._ema_count
        if bucket.count == self.steps_per_point:
            self._done.append(bucket)
            self._open = None
            if len(self._done) >= self._max:
                self._halve()

    def _halve(self) -> None:
        merged = []
        for left, right in zip(self._done[::2], self._done[1::2], strict=False):
            merged.append(
                _Bucket(
                    left.first,
                    right.step,
                    left.total + right.total,
                    left.count + right.count,
                    right.ema,
                    right.ema_count,
                )
            )
        if len(self._done) % 2:
            self._open = self._done[-1]
        self._done = merged
        self.steps_per_point *= 2

    def _rewind(self, step: int) -> None:
        self._open = None
        while self._done and self._done[-1].step >= step:
            self._done.pop()
        if self._done:
            self._ema, self._ema_count = self._done[-1].ema, self._done[-1].ema_count
        else:
            self._ema, self._ema_count = 0.0, 0

    def points(self) -> tuple[LossPoint, ...]:
        buckets = [*self._done, *([self._open] if self._open is not None else [])]
        return tuple(
            LossPoint(
                b.first,
                b.step,
                b.total / b.count,
                b.ema / (1 - self._weight**b.ema_count),
            )
            for b in buckets
        )


# -- the run folder -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """What a run's folder says now; `problems` are those found by this read only."""

    spec: RunSpec | None
    records: int
    latest: StepRecord | None
    curve: tuple[LossPoint, ...]
    steps_per_point: int
    tokens_per_s: float | None
    memory_mb: float | None
    result: RunResult | None
    problems: tuple[str, ...]
    more: bool

    @property
    def progress(self) -> float | None:
        """The fraction of steps done, 1.0 once the run is done."""
        if self.result is not None and self.result.status == "done":
            return 1.0
        if self.latest is None:
            return None
        return min(1.0, self.latest.step / self.latest.max_steps)

    @property
    def eta_s(self) -> float | None:
        """Seconds left: the worker's own estimate, else elapsed time per step so far; None
        once the worker has left its result (done or stopped, nothing is left to wait for)."""
        if self.result is not None:
            return None
        latest = self.latest
        if latest is None:
            return None
        if latest.eta_s is not None:
            return latest.eta_s
        if latest.step == 0:
            return None
        return latest.elapsed_s / latest.step * max(0, latest.max_steps - latest.step)


class RunView:
    """Reads one run folder a bit more at each `read`; see the module docstring."""

    def __init__(
        self, run_dir: Path, *, max_points: int = MAX_POINTS, weight: float = EMA_WEIGHT
    ) -> None:
        self.run_dir = run_dir
        self._metrics = LogTail(run_dir / METRICS_FILE)
        self._max_points = max_points
        self._weight = weight
        self._reset()
        self._spec: RunSpec | None = None
        self._spec_read = False
        self._result: RunResult | None = None
        self._result_seen: tuple[int, int] | None = None

    def _reset(self) -> None:
        self._series = LossSeries(self._max_points, self._weight)
        self._line = 0
        self._records = 0
        self._latest: StepRecord | None = None
        self._tokens: float | None = None
        self._memory: float | None = None

    def close(self) -> None:
        self._metrics.close()

    def read(self) -> RunState:
        problems: list[str] = []
        if not self._spec_read:
            self._read_spec(problems)
        chunk = self._metrics.read(METRICS_READ_BYTES)
        if chunk.restarted is not None:
            problems.append(f"{METRICS_FILE} was {chunk.restarted}: reading it again")
            self._reset()
        for line in chunk.lines:
            self._line += 1
            if line.strip():
                self._take(line, problems)
        self._read_result(problems)
        if len(problems) > MAX_PROBLEMS:
            left = len(problems) - MAX_PROBLEMS
            problems = [*problems[:MAX_PROBLEMS], f"and {left} more problems"]
        return RunState(
            spec=self._spec,
            records=self._records,
            latest=self._latest,
            curve=self._series.points(),
            steps_per_point=self._series.steps_per_point,
            tokens_per_s=self._tokens,
            memory_mb=self._memory,
            result=self._result,
            problems=tuple(problems),
            more=chunk.more,
        )

    def _take(self, line: str, problems: list[str]) -> None:
        try:
            record = StepRecord.model_validate_json(line)
        except ValidationError as exc:
            source = f"{self.run_dir / METRICS_FILE} line {self._line}"
            problems.append(validation_lines(source, exc).splitlines()[0])
            return
        self._records += 1
        self._latest = record
        if record.loss is not None and math.isfinite(record.loss):
            self._series.add(record.step, record.loss)
        if record.tokens_per_s is not None:
            self._tokens = record.tokens_per_s
        if record.memory_mb is not None:
            self._memory = record.memory_mb

    def _read_spec(self, problems: list[str]) -> None:
        """Read spec.json once it is there (it never changes); a bad one is reported once."""
        path = self.run_dir / SPEC_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc}")
            return
        self._spec_read = True
        try:
            self._spec = RunSpec.model_validate_json(data)
        except ValidationError as exc:
            problems.append(validation_lines(str(path), exc).splitlines()[0])

    def _read_result(self, problems: list[str]) -> None:
        """Read result.json when it appeared or changed (size, modification time)."""
        path = self.run_dir / RESULT_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._result, self._result_seen = None, None
            return
        seen = (stat.st_size, stat.st_mtime_ns)
        if seen == self._result_seen:
            return
        self._result_seen = seen
        self._result = None
        try:
            self._result = RunResult.model_validate_json(path.read_bytes())
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc}")
        except ValidationError as exc:
            problems.append(validation_lines(str(path), exc).splitlines()[0])
