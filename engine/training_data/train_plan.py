"""`cra train-plan`: judge each LoRA stage on the outcomes recorded; plan training for the weak.

Only the LoRA stages are judged and planned (`stages.LORA_STAGES`): meta, step and test planning
are the reasoning base's full fine-tune (LoRA Training Strategy §2.6), exported by
`cra data export-base`.

Outcomes (Phase 4 Guidelines §3 Stream C, LoRA Training Strategy §9.1):
- Harness attempts finished by a planning pipeline that produced a plan. Gold attempts are left
  out: their plan is the commit itself and says nothing about a model. A plan's alignment with
  the commit measures the retrieval stages; its outcome measures plans and code: resolved over
  every such attempt, since each reached execution (an `error` there, such as tests running
  past their limit, counts as not resolved, as the Harness pane's resolved rate counts it).
- Runs logged by the agent and imported: those finalised (success 0 or 1) that made a call of
  the stage. The agent logs retrieval calls under the stage's name, every planning call as
  `execute_plan` under a sub-task id ending `:meta_plan` or holding `:part_plan:` (a part's
  step plan) or `:test_plan:`, and code calls as `execute_implement`, `execute_test_implement`
  or `execute_function_implement`. A run's success is information, never a bar: many stages
  share a run.

Measured against what: the base model is `[harness.openai] model`. Attempts by every other model
(adapters, the agent) are what is measured, and the base model's own attempts are the bar where
the LoRA Training Strategy's bar is the base model's figure; while only the base model has attempts,
it is what is measured and those metrics have no bar. The base model's figure is a bar only when it
rests on at least `[training_data] plan_min_samples` attempts.

Bars (§9.1): task_analysis file recall ≥ 0.80 and precision ≥ 0.60; scope relevant-recall
(file recall) ≥ 0.85; precision primary-recall (symbol recall) ≥ 0.80; the LoRA Training Strategy's
accuracy bars are listed unmeasured, since attempts record no classification. execute_code pass@1
and the planning DPO's resolved rate against the base model's.

A metric is judged when it has a value, a bar and at least `plan_min_samples` samples; a stage
is weak when a judged metric is below its bar. Weak stages are planned largest gap first: the
data to curate (§7.2) and the LoRA run (§7.2, §7.3).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import sqlite_utils
from pydantic import ValidationError

from engine.bases.registry import stranded_adapters
from engine.core.errors import CraError, validation_lines
from engine.core.stages import BASE_MODEL, LORA_STAGES, TOKEN_BUDGET, Stage, as_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training_data.agent_calls import LOGGED_CALLS
from engine.training_data.dataset_manifest import DatasetManifest
from engine.training_data.items import Kind, Source
from engine.training_data.plan_model import (
    DataCriteria,
    Hyperparameters,
    PlannedStage,
    Retrain,
    StageAssessment,
    StageMetric,
    TrainingPlan,
)
from engine.training_data.plans import load_plan, save_plan

Verdict = Literal["weak", "ok", "few samples", "no bar", "not measured"]

# The attempts that say something about a model: a planning pipeline's, finished, with a plan.
_MEASURED_ATTEMPTS = "state = 'done' AND pipeline != 'gold' AND plan_json IS NOT NULL"
_ALIGNMENT = ("file_recall", "file_precision", "symbol_recall")
_RESOLVED = "resolved"


@dataclass(frozen=True)
class _Spec:
    """One metric of a stage: the attempt figure it reads (None: attempts cannot measure it)
    and its bar: a number, or the base model's figure."""

    name: str
    figure: str | None
    bar: float | Literal["base"]


SPECS: dict[Stage, tuple[_Spec, ...]] = {
    "task_analysis": (
        _Spec("file_recall", "file_recall", 0.80),
        _Spec("file_precision", "file_precision", 0.60),
    ),
    "scope": (
        _Spec("relevant_recall", "file_recall", 0.85),
        _Spec("accuracy", None, 0.75),
    ),
    "precision": (
        _Spec("primary_recall", "symbol_recall", 0.80),
        _Spec("accuracy", None, 0.70),
    ),
    "planning_dpo": (_Spec("resolved_rate", _RESOLVED, "base"),),
    "execute_code": (_Spec("pass@1", _RESOLVED, "base"),),
}

# The items a run wants (LoRA Training Strategy §7.2, the low end of each stage's range): SFT
# examples per stage; preference pairs, the planning DPO LoRA's 1K (the LoRA Training Strategy gives
# code pairs none).
MIN_EXAMPLES: dict[Stage, int] = {
    "task_analysis": 3000,
    "scope": 2000,
    "precision": 3000,
    "execute_code": 10000,
}
MIN_PAIRS = 1000

# LoRA settings (§7.2, §7.3): rank 16 on the reasoning base's stages, 32 for code; alpha twice
# the rank; 2e-4 with a cosine schedule; dropout 0. Epochs: two, the middle of the LoRA Training
# Strategy's 1-3 (more can hurt); one for DPO, a single round (§10).
RANK: dict[Stage, int] = {stage: 32 if stage == "execute_code" else 16 for stage in LORA_STAGES}
LEARNING_RATE = 2e-4
SCHEDULER = "cosine"
SFT_EPOCHS = 2
DPO_EPOCHS = 1


class DatasetRecordError(CraError):
    """A recorded dataset whose manifest cannot be read back."""


def verdict(metric: StageMetric, min_samples: int) -> Verdict:
    """What the plan makes of `metric`: weak or ok when judged, else why it is not."""
    if metric.value is None:
        return "not measured"
    if metric.samples < min_samples:
        return "few samples"
    if metric.threshold is None:
        return "no bar"
    return "weak" if metric.value < metric.threshold else "ok"


# -- harness figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Figures:
    """One group of attempts: how many, how many resolved, and each alignment mean."""

    attempts: int
    resolved: int
    means: dict[str, tuple[float | None, int]]

    def value(self, figure: str) -> tuple[float | None, int]:
        """The figure's value and the attempts it rests on."""
        if figure == _RESOLVED:
            return (self.resolved / self.attempts if self.attempts else None), self.attempts
        return self.means[figure]


def _figures(db: sqlite_utils.Database, model_clause: str, base_name: str) -> _Figures:
    columns = ", ".join(f"AVG({name}), COUNT({name})" for name in _ALIGNMENT)
    row = db.execute(
        f"SELECT COUNT(*), COALESCE(SUM(outcome = 'resolved'), 0), {columns} FROM attempts "
        f"WHERE {_MEASURED_ATTEMPTS} AND {model_clause}",
        [base_name],
    ).fetchone()
    means = {name: (row[2 + 2 * i], row[3 + 2 * i]) for i, name in enumerate(_ALIGNMENT)}
    return _Figures(attempts=row[0], resolved=row[1], means=means)


@dataclass(frozen=True)
class _Harness:
    """What is measured, and the base model's figures when they can be a bar."""

    base_name: str
    measured: _Figures
    base: _Figures | None


def _harness(ws: Workspace) -> _Harness:
    base_name = ws.config.harness.openai.model
    others = _figures(ws.db, "model != ?", base_name)
    base = _figures(ws.db, "model = ?", base_name)
    if others.attempts:
        return _Harness(base_name, others, base)
    return _Harness(base_name, base, None)


def _harness_metric(spec: _Spec, harness: _Harness, min_samples: int) -> tuple[StageMetric, str]:
    """The metric `spec` names and a note saying what it shows."""
    if spec.figure is None:
        threshold = spec.bar if isinstance(spec.bar, float) else None
        metric = StageMetric(
            name=spec.name, value=None, threshold=threshold, samples=0, source="harness"
        )
        return metric, f"{spec.name}: harness attempts record no classification to score"
    value, samples = harness.measured.value(spec.figure)
    no_bar = None
    if spec.bar == "base":
        threshold, no_bar = _base_bar(spec.figure, harness, min_samples)
        bar_text = "the base model's {:.2f}"
    else:
        threshold, bar_text = spec.bar, "{:.2f}"
    metric = StageMetric(
        name=spec.name, value=value, threshold=threshold, samples=samples, source="harness"
    )
    if value is None:
        return metric, f"{spec.name}: no attempt measured it"
    said = f"{spec.name} {value:.2f} over {samples} attempts"
    match verdict(metric, min_samples):
        case "few samples":
            return metric, f"{said}, fewer than {min_samples}: not judged"
        case "no bar":
            return metric, f"{said}, no bar: {no_bar}"
        case "weak":
            return metric, f"{said}, below {bar_text.format(threshold)}"
        case _:
            return metric, f"{said}, at or above {bar_text.format(threshold)}"


def _base_bar(figure: str, harness: _Harness, min_samples: int) -> tuple[float | None, str | None]:
    """The base model's figure as a bar, or None and why it is not one."""
    name = harness.base_name
    if harness.base is None:
        return None, f"only the base model ({name}) has attempts"
    value, samples = harness.base.value(figure)
    if value is None:
        return None, f"no attempt by the base model ({name}) measured it"
    if samples < min_samples:
        return None, f"the base model ({name}) has {samples} attempts, fewer than {min_samples}"
    return value, None


# -- logged figures -----------------------------------------------------------------------


def _logged_metric(
    db: sqlite_utils.Database, stage: Stage, min_samples: int
) -> tuple[StageMetric, str] | None:
    calls = LOGGED_CALLS[stage]
    if not calls:
        return None
    match = " OR ".join("(c.call_type = ? AND c.task_id GLOB ?)" for _ in calls)
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(r.success), 0) FROM logged_runs r "
        "WHERE r.success IS NOT NULL AND EXISTS (SELECT 1 FROM logged_calls c "
        f"WHERE c.task_id = r.task_id AND ({match}))",
        [value for call in calls for value in call],
    ).fetchone()
    runs, succeeded = row
    value = succeeded / runs if runs else None
    metric = StageMetric(
        name="run_success", value=value, threshold=None, samples=runs, source="logged"
    )
    if value is None:
        return metric, "run_success: no finalised logged run made a call of the stage"
    few = f", fewer than {min_samples}" if runs < min_samples else ""
    return metric, f"run_success {value:.2f} over {runs} logged runs{few} (information)"


# -- assessment ---------------------------------------------------------------------------


def assess(ws: Workspace) -> list[StageAssessment]:
    """Every stage's metrics, in stage order, and whether the stage is weak (module doc)."""
    min_samples = ws.config.training_data.plan_min_samples
    harness = _harness(ws)
    assessed = []
    for stage in LORA_STAGES:
        measured = [_harness_metric(spec, harness, min_samples) for spec in SPECS[stage]]
        logged = _logged_metric(ws.db, stage, min_samples)
        if logged is not None:
            measured.append(logged)
        weak = [note for metric, note in measured if verdict(metric, min_samples) == "weak"]
        rest = [note for metric, note in measured if verdict(metric, min_samples) != "weak"]
        assessed.append(
            StageAssessment(
                stage=stage,
                metrics=[metric for metric, _ in measured],
                weak=bool(weak),
                reason="; ".join(weak + rest),
            )
        )
    return assessed


def _weak_metrics(assessment: StageAssessment, min_samples: int) -> list[StageMetric]:
    return [m for m in assessment.metrics if verdict(m, min_samples) == "weak"]


def _largest_gap(assessment: StageAssessment, min_samples: int) -> float:
    return max(m.gap or 0.0 for m in _weak_metrics(assessment, min_samples))


# -- planning -----------------------------------------------------------------------------


def _available(db: sqlite_utils.Database, stage: Stage, kind: Kind) -> dict[Source, int]:
    """How many items of `stage` and `kind` each source holds, in the sources' order."""
    counts = dict(
        db.execute(
            "SELECT source, COUNT(*) FROM examples WHERE stage = ? AND kind = ? GROUP BY source",
            [stage, kind],
        ).fetchall()
    )
    return {source: counts[source] for source in get_args(Source) if counts.get(source)}


def _hyperparameters(stage: Stage, kind: Kind) -> Hyperparameters:
    rank = RANK[stage]
    dpo = kind == "preference"
    return Hyperparameters(
        method="dpo" if dpo else "sft",
        rank=rank,
        alpha=2 * rank,
        learning_rate=LEARNING_RATE,
        scheduler=SCHEDULER,
        epochs=DPO_EPOCHS if dpo else SFT_EPOCHS,
        max_length=TOKEN_BUDGET[stage],
        dropout=0.0,
    )


def _improvement(
    weak: Sequence[StageMetric], kind: Kind, available: dict[Source, int], floor: int
) -> str:
    targets = "; ".join(
        f"{m.name} {m.value:.2f} → {m.threshold:.2f} (gap {m.gap:.2f})" for m in weak
    )
    total = sum(available.values())
    held = ", ".join(f"{source} {n:,}" for source, n in available.items())
    items = "pairs" if kind == "preference" else "examples"
    if not total:
        return f"{targets}; no {items} yet, {floor:,} needed"
    short = f", {floor - total:,} short of {floor:,}" if total < floor else ""
    return f"{targets}; {total:,} {items} available ({held}){short}"


def _planned(
    assessment: StageAssessment, kind: Kind, available: dict[Source, int], min_samples: int
) -> PlannedStage:
    stage = assessment.stage
    floor = MIN_PAIRS if kind == "preference" else MIN_EXAMPLES[stage]
    return PlannedStage(
        stage=stage,
        base_model=BASE_MODEL[stage],
        reason=assessment.reason,
        data=DataCriteria(
            format=kind,
            sources=list(available) or list(get_args(Source)),
            target_examples=floor,
        ),
        hyperparameters=_hyperparameters(stage, kind),
        expected_improvement=_improvement(
            _weak_metrics(assessment, min_samples), kind, available, floor
        ),
    )


def plan_stages(ws: Workspace, assessed: Sequence[StageAssessment]) -> list[PlannedStage]:
    """The training the weak stages get, largest gap first (ties in stage order).

    planning_dpo trains on preference pairs, every other stage on SFT examples; execute_code
    also gets a DPO run when the harness has made pairs of it. Sources are those holding items
    of the stage and format; with none yet, every source, and the improvement says so.
    """
    min_samples = ws.config.training_data.plan_min_samples
    weak = sorted(
        (a for a in assessed if a.weak),
        key=lambda a: (-_largest_gap(a, min_samples), LORA_STAGES.index(a.stage)),
    )
    planned = []
    for assessment in weak:
        stage = assessment.stage
        kind: Kind = "preference" if stage == "planning_dpo" else "sft"
        planned.append(_planned(assessment, kind, _available(ws.db, stage, kind), min_samples))
        if stage == "execute_code":
            pairs = _available(ws.db, stage, "preference")
            if pairs.get("harness"):
                planned.append(_planned(assessment, "preference", pairs, min_samples))
    return planned


def build_plan(ws: Workspace, created_at: str, created_by: str) -> TrainingPlan:
    """The plan the workspace's outcomes call for now, not yet saved."""
    assessed = assess(ws)
    return TrainingPlan(
        created_at=created_at,
        created_by=created_by,
        assessed=assessed,
        stages=plan_stages(ws, assessed),
        retrain=[
            Retrain(name=name, stage=as_stage(stage), status=status, reason=reason)
            for name, stage, status, reason in stranded_adapters(ws)
        ],
    )


def make_plan(ws: Workspace, operator: str | None = None) -> tuple[int, Path, TrainingPlan]:
    """Assess, plan and save; returns the plan's id, its file and the plan. A plan with no
    weak stage is saved too: it records that the outcomes called for no training."""
    plan = build_plan(ws, utc_now(), operator or ws.config.operator)
    plan_id, path = save_plan(ws, plan)
    return plan_id, path, plan


# -- reading back, for the console ---------------------------------------------------------


def latest_plan(ws: Workspace) -> tuple[int, TrainingPlan] | None:
    """The newest recorded plan, or None when `cra train-plan` never ran."""
    newest = ws.db.execute("SELECT MAX(id) FROM training_plans").fetchone()[0]
    return None if newest is None else load_plan(ws, str(newest))


def recorded_datasets(ws: Workspace) -> list[DatasetManifest]:
    """Every curated dataset's manifest, newest first."""
    manifests = []
    for dataset_id, text in ws.db.execute(
        "SELECT id, manifest_json FROM datasets ORDER BY created_at DESC, id DESC"
    ):
        if text is None:
            raise DatasetRecordError(f"dataset {dataset_id}: no manifest is recorded")
        try:
            manifests.append(DatasetManifest.model_validate_json(text))
        except ValidationError as exc:
            raise DatasetRecordError(validation_lines(f"dataset {dataset_id}", exc)) from exc
    return manifests
