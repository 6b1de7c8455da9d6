"""The pipeline stages that get training data, the base model each trains on, and its budget.

Seed 004 §2.2: task analysis runs on an 8K-token context-reduced base; every other stage shares
the 32K one. Code execution trains the coding base; the planning and retrieval stages train the
reasoning base (§2, §7.2).

Seed 004 §1, §2.6, §7.2: only some stages are LoRA adapters. Task analysis, scope, precision
(SFT with a curriculum), execute_code (SFT, then DPO on the same adapter) and the optional
planning DPO are trained, evaluated and promoted as adapters. Meta, step and test planning are
the reasoning base's own full fine-tune: their items are derived, reviewed and kept with their
lineage, then exported for that fine-tune (`cra data export-base`), never curated into a LoRA
dataset.
"""

from typing import Literal, get_args

from engine.errors import CraError

Stage = Literal[
    "task_analysis",
    "scope",
    "precision",
    "meta_plan",
    "step_plan",
    "test_plan",
    "planning_dpo",
    "execute_code",
]
BaseModelKind = Literal["reasoning", "coding"]

STAGES: tuple[Stage, ...] = get_args(Stage)

LoraStage = Literal["task_analysis", "scope", "precision", "planning_dpo", "execute_code"]

LORA_STAGES: tuple[LoraStage, ...] = get_args(LoraStage)
BASE_TUNE_STAGES: tuple[Stage, ...] = ("meta_plan", "step_plan", "test_plan")

BASE_MODEL: dict[Stage, BaseModelKind] = {
    stage: "coding" if stage == "execute_code" else "reasoning" for stage in STAGES
}

TOKEN_BUDGET: dict[Stage, int] = {
    stage: 8192 if stage == "task_analysis" else 32768 for stage in STAGES
}


def as_stage(value: str) -> Stage:
    """`value`, a stage name read back from the database, a file or an argument, as a Stage; a
    name that is no stage is a KeyError, as the per-stage lookup it precedes would raise."""
    if value not in STAGES:
        raise KeyError(value)
    return value


BASE_TUNE_RULE = (
    "planning (meta_plan, step_plan, test_plan) is trained in the reasoning base's full "
    "fine-tune, not as a LoRA adapter (seed 004 §1, §2.6); export it with "
    "`cra data export-base --role reasoning`"
)


class NotALoraStage(CraError):
    """A planning stage asked for as a LoRA adapter, its dataset, training or evaluation."""


def require_lora_stage(stage: str, what: str) -> LoraStage:
    """Refuse `what` (e.g. "a LoRA dataset") for a stage of the base fine-tune, naming the rule;
    an unknown stage is refused too. Returns `stage`, typed as the LoRA stage it is."""
    if stage in BASE_TUNE_STAGES:
        raise NotALoraStage(f"{stage} has no {what}: {BASE_TUNE_RULE}")
    if stage not in LORA_STAGES:
        known = ", ".join(LORA_STAGES)
        raise NotALoraStage(f"unknown stage {stage!r}; the LoRA stages are {known}")
    return stage
