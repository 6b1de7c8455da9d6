"""The vocabulary every layer shares: the pipeline stages, the base model each trains on, its
token budget, and the metrics each is evaluated on.

LoRA Training Strategy §2.2: task analysis runs on an 8K-token context-reduced base; every other
stage shares the 32K one. Code execution trains the coding base; the planning and retrieval stages
train the reasoning base (§2, §7.2).

LoRA Training Strategy §1, §2.6, §7.2: only some stages are LoRA adapters. Task analysis, scope,
precision (SFT with a curriculum), execute_code (SFT, then DPO on the same adapter) and the optional
planning DPO are trained, evaluated and promoted as adapters. Meta, step and test planning are
the reasoning base's own full fine-tune: their items are derived, reviewed and kept with their
lineage, then exported for that fine-tune (`cra data export-base`), never curated into a LoRA
dataset.

LoRA Training Strategy §9.1: every LoRA stage is evaluated on its metrics, each a share in
[0, 1], higher is better; the primary ones are those the gate decides on. Retrieval stages are
scored by comparing the model's answer with the held-out answer; execute_code by applying its
edits and running the task's tests (pass@1); the planning DPO by running its eval tasks through
the harness with the version in the planner slot (resolved rate).
"""

from typing import Literal, get_args

from engine.core.errors import CraError

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
CHAT_END_TOKEN = "<|im_end|>"
"""The token an adapter's every turn ends on (LoRA Training Strategy §7.3): training makes it the
adapter's end of sequence, and serving stops on it."""

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
    "fine-tune, not as a LoRA adapter (LoRA Training Strategy §1, §2.6); export it with "
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


PRIMARY: dict[Stage, tuple[str, ...]] = {
    "task_analysis": ("file_recall", "file_precision"),
    "scope": ("accuracy", "relevant_recall"),
    "precision": ("accuracy", "primary_recall"),
    "execute_code": ("pass_at_1",),
    "planning_dpo": ("resolved_rate",),
}

SECONDARY: dict[Stage, tuple[str, ...]] = {
    "task_analysis": ("valid_rate",),
    "scope": ("valid_rate",),
    "precision": ("valid_rate",),
    "execute_code": ("valid_rate",),
    "planning_dpo": (),
}


def metric_keys() -> set[str]:
    """Every `stage.metric` name a gate setting may name."""
    return {f"{stage}.{metric}" for stage, names in PRIMARY.items() for metric in names}
