"""The eval gate: a candidate against the stage's active version, or the base for the first.

Seed 004 §9.2: both are evaluated on the same eval set (same eval.jsonl sha256); any primary
metric that drops by more than its tolerance, or falls below its minimum, rejects the candidate,
with the reason recorded. Every decision is an append-only `gate_decisions` row; a rejection also
marks the version `rejected` through `engine.adapters.activation.reject`, which records it in the
activation history. A pass leaves the version a candidate that may be promoted while the version
it was compared with is still the active one.
"""

import json
from dataclasses import dataclass
from typing import Any

from engine.adapters.activation import ActivationError, active_row, reject, version_row
from engine.config import GateConfig
from engine.errors import CraError
from engine.evaluation.primary import PRIMARY, SECONDARY
from engine.timestamps import utc_now
from engine.workspace import Workspace

BASE = "base"
"""The `target` of an eval run of the bare base model (no adapter)."""


class GateError(CraError):
    """The gate cannot decide: an eval is missing or the version is not a candidate."""


@dataclass(frozen=True)
class MetricDelta:
    """One metric of the candidate beside the baseline's, and whether it fails the gate."""

    metric: str
    primary: bool
    candidate: float | None
    baseline: float | None
    tolerance: float
    minimum: float | None

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.baseline is None:
            return None
        return self.candidate - self.baseline

    @property
    def failure(self) -> str | None:
        """Why this metric rejects the candidate; None when it does not."""
        if not self.primary:
            return None
        if self.candidate is None:
            return f"{self.metric}: the candidate has no value"
        if self.minimum is not None and self.candidate < self.minimum:
            return f"{self.metric} {self.candidate:.3f} is below its minimum {self.minimum:.3f}"
        delta = self.delta
        if delta is not None and delta < -self.tolerance:
            return (
                f"{self.metric} fell from {self.baseline:.3f} to {self.candidate:.3f} "
                f"({delta:+.3f}, tolerance {self.tolerance:.3f})"
            )
        return None


@dataclass(frozen=True)
class Comparison:
    """A candidate's eval beside a baseline's on one eval set; either eval may be missing."""

    stage: str
    candidate: str
    baseline: str
    candidate_eval: dict[str, Any] | None
    baseline_eval: dict[str, Any] | None
    deltas: list[MetricDelta]

    @property
    def complete(self) -> bool:
        return self.candidate_eval is not None and self.baseline_eval is not None

    @property
    def failures(self) -> list[str]:
        return [f for delta in self.deltas if (f := delta.failure) is not None]


def comparison_lines(comparison: Comparison) -> list[str]:
    """A table of the candidate's metrics beside the baseline's, primary ones starred."""
    lines = [f"{comparison.candidate} against {comparison.baseline}:"]
    for delta in comparison.deltas:
        mark = "*" if delta.primary else " "
        cand = "-" if delta.candidate is None else f"{delta.candidate:.3f}"
        base = "-" if delta.baseline is None else f"{delta.baseline:.3f}"
        change = "" if delta.delta is None else f"  ({delta.delta:+.3f})"
        lines.append(f"  {mark} {delta.metric:<16} {cand:>6}  vs {base:>6}{change}")
    return lines


def target_name(row: dict[str, Any] | None) -> str:
    """An adapter version's name, or `base` for the bare base model."""
    return BASE if row is None else row["name"]


def done_evals(ws: Workspace, stage: str, row: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The finished eval runs of version `row` (None: the base) for `stage`, newest first."""
    if row is None:
        where = "stage = ? AND adapter_id IS NULL AND status = 'done'"
        args: list[Any] = [stage]
    else:
        where, args = "adapter_id = ? AND status = 'done'", [row["id"]]
    return list(ws.db["eval_runs"].rows_where(where, args, order_by="id desc"))


def compare(
    ws: Workspace, stage: str, candidate: dict[str, Any] | None, baseline: dict[str, Any] | None
) -> Comparison:
    """`candidate` against `baseline` (None for either: the base model) on their newest shared
    eval set; with none shared, the candidate's newest eval and no baseline eval."""
    mine = done_evals(ws, stage, candidate)
    theirs = {run["eval_sha256"]: run for run in reversed(done_evals(ws, stage, baseline))}
    shared = next((run for run in mine if run["eval_sha256"] in theirs), None)
    if shared is not None:
        cand_eval, base_eval = shared, theirs[shared["eval_sha256"]]
    else:
        cand_eval, base_eval = (mine[0] if mine else None), None
    return Comparison(
        stage=stage,
        candidate=target_name(candidate),
        baseline=target_name(baseline),
        candidate_eval=cand_eval,
        baseline_eval=base_eval,
        deltas=_deltas(ws.config.gate, stage, cand_eval, base_eval),
    )


def _deltas(
    gate: GateConfig, stage: str, cand: dict[str, Any] | None, base: dict[str, Any] | None
) -> list[MetricDelta]:
    cand_metrics = _metrics(cand)
    base_metrics = _metrics(base)
    deltas = []
    for primary, names in ((True, PRIMARY[stage]), (False, SECONDARY[stage])):
        for metric in names:
            key = f"{stage}.{metric}"
            deltas.append(
                MetricDelta(
                    metric=metric,
                    primary=primary,
                    candidate=cand_metrics.get(metric),
                    baseline=base_metrics.get(metric),
                    tolerance=gate.tolerances.get(key, gate.tolerance),
                    minimum=gate.minimums.get(key) if primary else None,
                )
            )
    return deltas


def _metrics(run: dict[str, Any] | None) -> dict[str, float]:
    if run is None or run["metrics_json"] is None:
        return {}
    return json.loads(run["metrics_json"])


def decide(ws: Workspace, name: str, operator: str | None = None) -> dict[str, Any]:
    """Gate candidate `name` against its stage's active version (or the base); returns the
    recorded decision. A rejection marks the version rejected."""
    row = version_row(ws, name)
    if row["status"] != "candidate":
        raise GateError(f"{name} is {row['status']}: only a candidate goes through the gate")
    stage = row["stage"]
    baseline = active_row(ws, stage)
    comparison = compare(ws, stage, row, baseline)
    if comparison.candidate_eval is None:
        raise GateError(f"{name} has no finished eval run; run `cra eval run --adapter {name}`")
    if comparison.baseline_eval is None:
        sha = comparison.candidate_eval["eval_sha256"][:12]
        raise GateError(
            f"{comparison.baseline} has no finished eval run on {name}'s eval set "
            f"(eval.jsonl {sha}); run `cra eval run --adapter {name}`, which evaluates both"
        )
    failures = comparison.failures
    decision = "reject" if failures else "pass"
    who = operator or ws.config.operator
    record = {
        "adapter_id": row["id"],
        "stage": stage,
        "baseline": comparison.baseline,
        "candidate_eval_id": comparison.candidate_eval["id"],
        "baseline_eval_id": comparison.baseline_eval["id"],
        "decision": decision,
        "reasons_json": json.dumps(failures),
        "deltas_json": json.dumps(
            {d.metric: [d.candidate, d.baseline] for d in comparison.deltas}, sort_keys=True
        ),
        "at": utc_now(),
        "operator": who,
    }
    with ws.db.conn:
        decision_id = ws.db["gate_decisions"].insert(record).last_pk
    if failures:
        reject(ws, name, "eval gate: " + "; ".join(failures), operator=who)
    return dict(ws.db["gate_decisions"].get(decision_id))


def latest_decision(ws: Workspace, adapter_id: int) -> dict[str, Any] | None:
    rows = list(
        ws.db["gate_decisions"].rows_where(
            "adapter_id = ?", [adapter_id], order_by="id desc", limit=1
        )
    )
    return rows[0] if rows else None


def check_gate_passed(ws: Workspace, row: dict[str, Any]) -> None:
    """Refuse promoting candidate `row` unless its newest gate decision passed against the
    version that is active now. Inactive versions were active before and need no gate."""
    if row["status"] != "candidate":
        return
    decision = latest_decision(ws, row["id"])
    name = row["name"]
    if decision is None:
        raise ActivationError(
            f"{name} has not been through the eval gate; run `cra eval run --adapter {name}` "
            f"then `cra eval gate {name}`"
        )
    if decision["decision"] != "pass":
        raise ActivationError(f"{name} failed the eval gate: {decision['reasons_json']}")
    current = target_name(active_row(ws, row["stage"]))
    if decision["baseline"] != current:
        raise ActivationError(
            f"{name} passed the gate against {decision['baseline']}, but {current} is active "
            f"now; run `cra eval gate {name}` again"
        )
