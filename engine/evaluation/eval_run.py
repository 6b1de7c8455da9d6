"""One eval run as the evaluation package passes it around: a row of `eval_runs`, typed.

Every function of the package that reads eval runs (`runs.eval_row`, `runs.list_evals`,
`gate.done_evals`, the comparison and the evidence built on them) returns this model, so a
renamed or added column fails here, loudly, rather than as a `KeyError` in the CLI or a pane.
"""

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.core.stages import BaseModelKind, Stage


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
