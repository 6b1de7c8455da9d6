"""The eval gate: a candidate against the stage's active version, or the base for the first.

LoRA Training Strategy §9.2, "if metrics improve, promote", per stage. Both are scored on the same
frozen eval set and compared example by example (`example_scores.paired_metrics`: a paired bootstrap
for counted metrics, an exact McNemar interval for pass/fail ones). `decide` records one
verdict, the most serious that holds, with every reason that holds:

1. **regression**: a primary metric's difference is below minus its tolerance and its whole
   interval is below 0 (a drop the paired test confirms; LoRA Training Strategy §9.2 "regresses");
2. **below minimum**: a primary metric of the candidate is under its minimum (`[gate]
   minimums`, LoRA Training Strategy §9.1's pass thresholds by default);
3. **underpowered**: the eval set is under its target size (as built, or the paired examples
   under `[evaluation] eval_sizes`), or holds fewer than `MIN_EXAMPLES` (then even a regression
   or a value under a minimum is not grounds to reject for good), or a primary metric
   fell by more than its tolerance but its interval reaches 0 (the set cannot tell the drop
   from chance: neither rejected for good nor passed);
4. **no gain**: no primary metric improves with `[gate] confidence` (its interval's lower
   bound is not above 0; with k primary metrics each interval is taken at 1 - (1 - confidence)
   / k, so that "some primary metric gained" holds at `confidence`): a tie is not a gain;
5. **pass**: some primary metric gains, and none of the above holds.

Every decision is an append-only `gate_decisions` row holding the per-metric evidence
(`evidence_json`, read back by `decision_evidence`). A regression or a candidate below its
minimum is rejected for good (`engine.adapters.activation.reject`, recorded in the activation
history). No gain and underpowered leave it a candidate that is promoted only by an explicit
override with a reason (`check_gate_passed`); a pass may be promoted while the version it was
compared with is still the active one.
"""

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from engine.adapters.activation import (
    ActivationError,
    AdapterVersion,
    reject,
    serving_row,
    version_by_id,
    version_row,
)
from engine.core.config import GateConfig
from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.stages import PRIMARY, SECONDARY, as_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalRun, eval_runs
from engine.evaluation.eval_set import EvalSetRecord, eval_set_record
from engine.evaluation.example_scores import paired_metrics
from engine.evaluation.paired import PairedDifference

BASE = "base"
"""The `target` of an eval run of the bare base model (no adapter)."""

Verdict = Literal["pass", "regression", "below minimum", "underpowered", "no gain"]
REJECTING = frozenset({"regression", "below minimum", "reject"})
"""Verdicts that reject the version; `reject` is the one verdict of decisions made before
migration 14."""
OVERRIDABLE = frozenset({"underpowered", "no gain"})
"""Verdicts that leave a candidate promotable only by an override with a reason."""

MIN_EXAMPLES = 10
"""Below this many paired examples a decision is underpowered whatever the target: the
bootstrap's 2.5th and 97.5th percentiles are then drawn from a handful of distinct resamples
and say nothing about the population."""

_EPSILON = 1e-9
"""Float slack when a difference or a value meets its tolerance or minimum exactly."""


class GateError(CraError):
    """The gate cannot decide: an eval is missing or the version is not a candidate."""


@dataclass(frozen=True)
class MetricDelta:
    """One metric's mean of the candidate beside the baseline's."""

    metric: str
    primary: bool
    candidate: float | None
    baseline: float | None

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.baseline is None:
            return None
        return self.candidate - self.baseline


@dataclass(frozen=True)
class Comparison:
    """A candidate's eval beside a baseline's on one eval set; either eval may be missing."""

    stage: str
    candidate: str
    baseline: str
    candidate_eval: EvalRun | None
    baseline_eval: EvalRun | None
    deltas: list[MetricDelta]

    @property
    def complete(self) -> bool:
        return self.candidate_eval is not None and self.baseline_eval is not None


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


def target_name(row: AdapterVersion | None) -> str:
    """An adapter version's name, or `base` for the bare base model."""
    return BASE if row is None else row.name


def done_evals(ws: Workspace, stage: str, row: AdapterVersion | None) -> list[EvalRun]:
    """The finished eval runs of version `row` (None: the base) for `stage`, newest first."""
    if row is None:
        where = "stage = ? AND adapter_id IS NULL AND status = 'done'"
        args: list[Any] = [stage]
    else:
        where, args = "adapter_id = ? AND status = 'done'", [row.id]
    return eval_runs(ws.db.table("eval_runs").rows_where(where, args, order_by="id desc"))


def compare(
    ws: Workspace, stage: str, candidate: AdapterVersion | None, baseline: AdapterVersion | None
) -> Comparison:
    """`candidate` against `baseline` (None for either: the base model) on their newest shared
    eval set; with none shared, the candidate's newest eval and no baseline eval."""
    mine = done_evals(ws, stage, candidate)
    theirs = {run.eval_sha256: run for run in reversed(done_evals(ws, stage, baseline))}
    shared = next((run for run in mine if run.eval_sha256 in theirs), None)
    cand_eval: EvalRun | None
    base_eval: EvalRun | None
    if shared is not None:
        cand_eval, base_eval = shared, theirs[shared.eval_sha256]
    else:
        cand_eval, base_eval = (mine[0] if mine else None), None
    cand_metrics = {} if cand_eval is None else cand_eval.metrics
    base_metrics = {} if base_eval is None else base_eval.metrics
    return Comparison(
        stage=stage,
        candidate=target_name(candidate),
        baseline=target_name(baseline),
        candidate_eval=cand_eval,
        baseline_eval=base_eval,
        deltas=[
            MetricDelta(metric, primary, cand_metrics.get(metric), base_metrics.get(metric))
            for primary, names in (
                (True, PRIMARY[as_stage(stage)]),
                (False, SECONDARY[as_stage(stage)]),
            )
            for metric in names
        ],
    )


@dataclass(frozen=True)
class Power:
    """How big the compared set is against what a decision needs."""

    n: int
    """Paired examples (the fewest of any primary metric)."""
    target: int
    """`[evaluation] eval_sizes` of the stage."""
    eval_set: EvalSetRecord | None = None
    """The frozen set both runs scored; None for a run that names none."""


@dataclass(frozen=True)
class Judgement:
    """A verdict, every reason for it (most serious first), and whether the set was too small."""

    verdict: Verdict
    reasons: list[str]
    underpowered: bool


def metric_confidence(stage: str, confidence: float) -> float:
    """The level of each metric's interval: Bonferroni over the stage's primary metrics, since a
    candidate passes when any one of them gains (two at 95 % each would pass a no-gain candidate
    in up to 5 % of trials, and the bootstrap's percentiles run a little over)."""
    return 1 - (1 - confidence) / len(PRIMARY[as_stage(stage)])


def _confidence(confidence: float) -> str:
    return f"{confidence * 100:g} %"


def _evidence_text(stage: str, d: PairedDifference) -> str:
    return f"{stage}.{d.metric} {d.baseline:.3f} -> {d.candidate:.3f} ({d.interval()}, n={d.n})"


def judge(
    stage: str, evidence: list[PairedDifference], gate: GateConfig, power: Power
) -> Judgement:
    """The gate's verdict on `stage`'s paired evidence (the rule of the module doc); pure, so the
    benchmark measures exactly what `decide` records."""
    primary = [d for d in evidence if d.metric in PRIMARY[as_stage(stage)]]
    missing = sorted(set(PRIMARY[as_stage(stage)]) - {d.metric for d in primary})
    if missing:
        raise GateError(f"{stage}: no paired scores of primary metric {', '.join(missing)}")
    regressions, below, small = [], [], []
    for d in primary:
        key = f"{stage}.{d.metric}"
        tolerance = gate.tolerances.get(key, gate.tolerance)
        if d.delta < -tolerance - _EPSILON:
            fell = (
                f"{key} fell {d.baseline:.3f} -> {d.candidate:.3f} ({d.interval()}, n={d.n}), "
                f"more than its tolerance {tolerance:.3f}"
            )
            if d.high < 0:
                regressions.append(fell)
            else:
                small.append(
                    f"underpowered: {fell}, but its interval reaches 0: the eval set cannot "
                    "tell a drop from chance"
                )
        minimum = gate.minimums.get(key, 0.0)
        if d.candidate < minimum - _EPSILON:
            below.append(f"{key} {d.candidate:.3f} is below its minimum {minimum:.3f}")
    if power.eval_set is not None and power.eval_set.underpowered:
        small.append(
            f"underpowered: eval set {power.eval_set.id} holds {power.eval_set.size} rows, under "
            f"its target {power.eval_set.target_size}"
        )
    if power.n < power.target:
        small.append(
            f"underpowered: {power.n} paired examples, under [evaluation] "
            f"eval_sizes.{stage} = {power.target}"
        )
    if power.n < MIN_EXAMPLES:
        small.append(
            f"underpowered: {power.n} paired examples, under the floor of {MIN_EXAMPLES} below "
            "which an interval means nothing"
        )
    gains = [d for d in primary if d.gain]
    no_gain = (
        []
        if gains
        else [
            f"no gain: no primary metric improves with {_confidence(gate.confidence)} confidence "
            f"({'; '.join(_evidence_text(stage, d) for d in primary)})"
        ]
    )
    order: list[tuple[Verdict, list[str]]] = [
        ("regression", regressions),
        ("below minimum", below),
        ("underpowered", small),
        ("no gain", no_gain),
    ]
    if power.n < MIN_EXAMPLES:
        # Under the floor nothing is decided for good: a drop or a value under a minimum
        # measured on a handful of examples is no ground to reject a version forever.
        order = order[2:]
    for verdict, reasons in order:
        if reasons:
            return Judgement(
                verdict, regressions + below + small + no_gain, underpowered=bool(small)
            )
    passed = [
        f"{_evidence_text(stage, d)} improves with {_confidence(gate.confidence)} confidence"
        for d in gains
    ]
    return Judgement("pass", passed, underpowered=False)


def decide(ws: Workspace, name: str, operator: str | None = None) -> dict[str, Any]:
    """Gate candidate `name` against its stage's active version (or the base); returns the
    recorded decision. A regression or a candidate below its minimum is rejected."""
    row = version_row(ws, name)
    if row.status != "candidate":
        raise GateError(f"{name} is {row.status}: only a candidate goes through the gate")
    stage = row.stage
    baseline = serving_row(ws, stage)
    comparison = compare(ws, stage, row, baseline)
    cand_eval, base_eval = comparison.candidate_eval, comparison.baseline_eval
    if cand_eval is None:
        raise GateError(f"{name} has no finished eval run; run `cra eval run --adapter {name}`")
    if base_eval is None:
        sha = cand_eval.eval_sha256[:12]
        raise GateError(
            f"{comparison.baseline} has no finished eval run on {name}'s eval set "
            f"(eval.jsonl {sha}); run `cra eval run --adapter {name}`, which evaluates both"
        )
    gate = ws.config.gate
    evidence = paired_metrics(
        ws, stage, cand_eval, base_eval, confidence=metric_confidence(stage, gate.confidence)
    )
    set_id = cand_eval.eval_set_id
    eval_set = None if set_id is None else eval_set_record(ws, set_id)
    primary = [d.n for d in evidence if d.metric in PRIMARY[as_stage(stage)]]
    power = Power(
        n=min(primary, default=0),
        target=ws.config.evaluation.eval_sizes[stage],
        eval_set=eval_set,
    )
    judgement = judge(stage, evidence, gate, power)
    who = operator or ws.config.operator
    record = {
        "adapter_id": row.id,
        "stage": stage,
        "baseline": comparison.baseline,
        "candidate_eval_id": cand_eval.id,
        "baseline_eval_id": base_eval.id,
        "decision": judgement.verdict,
        "reasons_json": json.dumps(judgement.reasons),
        "deltas_json": json.dumps(
            {d.metric: [d.candidate, d.baseline] for d in comparison.deltas}, sort_keys=True
        ),
        "evidence_json": json.dumps([asdict(d) for d in evidence]),
        "underpowered": int(judgement.underpowered),
        "eval_set_id": set_id,
        "at": utc_now(),
        "operator": who,
    }
    with ws.db.conn:
        decision_id = inserted_id(ws.db.table("gate_decisions").insert(record))
    if judgement.verdict in REJECTING:
        reject(ws, name, f"eval gate: {judgement.verdict}: " + "; ".join(judgement.reasons), who)
    return dict(ws.db.table("gate_decisions").get(decision_id))


def decision_evidence(decision: dict[str, Any]) -> list[PairedDifference]:
    """A recorded decision's per-metric paired evidence, primary metrics first; empty for a
    decision made before the gate recorded it (migration 14)."""
    if not decision.get("evidence_json"):
        return []
    names = {field.name for field in fields(PairedDifference)}
    return [
        PairedDifference(**{key: value for key, value in item.items() if key in names})
        for item in json.loads(decision["evidence_json"])
    ]


def evidence_lines(stage: str, evidence: list[PairedDifference]) -> list[str]:
    """`metric baseline -> candidate  delta [low, high]  n=N (method)`, one line a metric,
    primary ones starred."""
    return [
        f"  {'*' if d.metric in PRIMARY[as_stage(stage)] else ' '} {d.metric:<16} "
        f"{d.baseline:.3f} -> {d.candidate:.3f}  {d.interval()}  n={d.n} ({d.method})"
        for d in evidence
    ]


def decision_lines(ws: Workspace, decision: dict[str, Any]) -> list[str]:
    """A recorded decision as the CLI and the eval worker print it: the verdict, the evidence
    per metric, then every reason."""
    name = version_by_id(ws, decision["adapter_id"]).name
    return [
        f"gate: {name} {decision['decision']} against {decision['baseline']}",
        *evidence_lines(decision["stage"], decision_evidence(decision)),
        *(f"  {reason}" for reason in json.loads(decision["reasons_json"])),
    ]


def latest_decision(ws: Workspace, adapter_id: int) -> dict[str, Any] | None:
    rows = list(
        ws.db["gate_decisions"].rows_where(
            "adapter_id = ?", [adapter_id], order_by="id desc", limit=1
        )
    )
    return rows[0] if rows else None


def check_gate_passed(
    ws: Workspace, row: AdapterVersion, override: bool = False
) -> dict[str, Any] | None:
    """Refuse promoting candidate `row` unless its newest gate decision, made against the
    version active now, passed; with `override`, a no-gain or underpowered decision is let
    through and returned (the caller records the override). None when nothing is overridden.
    Inactive versions were active before and need no gate; rejected ones are never promoted."""
    if row.status != "candidate":
        return None
    decision = latest_decision(ws, row.id)
    name = row.name
    if decision is None:
        raise ActivationError(
            f"{name} has not been through the eval gate; run `cra eval run --adapter {name}` "
            f"then `cra eval gate {name}`"
        )
    current = target_name(serving_row(ws, row.stage))
    if decision["baseline"] != current:
        raise ActivationError(
            f"{name} was gated against {decision['baseline']}, but {current} is active now; "
            f"run `cra eval gate {name}` again"
        )
    verdict = decision["decision"]
    if verdict == "pass":
        return None
    reasons = "; ".join(json.loads(decision["reasons_json"]))
    if verdict not in OVERRIDABLE:
        raise ActivationError(
            f"{name} failed the eval gate ({verdict}: {reasons}); a rejected version is never "
            "promoted"
        )
    if not override:
        raise ActivationError(
            f"{name}'s gate decision against {current} is {verdict} ({reasons}); only a pass is "
            f'promoted, anything else needs `--override --reason "..."`'
        )
    return decision
