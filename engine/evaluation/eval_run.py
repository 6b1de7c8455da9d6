"""One eval run as the evaluation package passes it around: a row of `eval_runs`, typed.

Every function of the package that reads eval runs (`runs.eval_row`, `runs.list_evals`,
`gate.done_evals`, the comparison and the evidence built on them) returns this model, so a
renamed or added column fails here, loudly, rather than as a `KeyError` in the CLI or a pane.
"""

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.core.stages import BaseModelKind, Stage

UNDER_WAY = ("queued", "running")
"""The statuses of a run that has not ended; every other status is an end, written once."""

Phase = Literal["answering", "testing", "harness"]
_PHASE_WORDS: dict[Phase, str] = {"answering": "answered", "testing": "tested", "harness": "tasks"}


class EvalProgress(BaseModel):
    """How far a running eval run has got: the model `answering` the eval rows, then for
    execute_code the answers `testing` under their tasks' tests, for the planning DPO each
    eval task through the `harness`; `done` of `total` in that phase."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: Phase
    done: int
    total: int

    def text(self) -> str:
        """`12/40 answered`, `2/3 tested`, `1/3 tasks`."""
        return f"{self.done}/{self.total} {_PHASE_WORDS[self.phase]}"


class EvalRun(BaseModel):
    """One row of `eval_runs`: a version (`adapter_id`; None for the bare base) scored on a
    stage's eval set (`eval_set_id`, `eval_sha256`), its status and its metrics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    target: str
    adapter_id: int | None
    stage: Stage
    base_model: BaseModelKind
    dataset_id: str
    eval_sha256: str
    """Never NULL, though the column allows it: every run is inserted naming the set it scores."""
    backend: str
    status: str
    rows: int | None
    metrics_json: str | None
    reason: str | None
    out_dir: str
    created_at: str | None
    created_by: str | None
    finished_at: str | None
    eval_set_id: int | None
    progress_json: str | None = None
    """Written by the job as the run goes (`EvalProgress`); NULL until it has begun."""

    @property
    def progress(self) -> EvalProgress | None:
        """How far the run has got; None before its job began it."""
        if self.progress_json is None:
            return None
        return EvalProgress.model_validate_json(self.progress_json)

    def state(self) -> str:
        """The status, with the progress while it runs: `running, 12/40 answered`."""
        progress = self.progress
        if self.status == "running" and progress is not None:
            return f"running, {progress.text()}"
        return self.status

    @property
    def metrics(self) -> dict[str, float]:
        """The run's metrics by name; empty until it has finished."""
        if self.metrics_json is None:
            return {}
        values: dict[str, float] = json.loads(self.metrics_json)
        return values


def eval_runs(rows: Iterable[dict[str, Any]]) -> list[EvalRun]:
    """sqlite rows of `eval_runs` as models."""
    return [EvalRun.model_validate(row) for row in rows]
