"""Each stage's metrics, and which of them are primary: the ones the gate decides on.

LoRA Training Strategy §9.1. Only the LoRA stages are evaluated (meta, step and test planning are
the base's full fine-tune, `stages.BASE_TUNE_STAGES`). Retrieval stages are scored by comparing the
model's answer with the held-out answer; execute_code by applying its edits and running the task's
tests (pass@1); the planning DPO by running its eval tasks through the harness with the version in
the planner slot (resolved rate). Every metric is a share in [0, 1], higher is better.
"""

from engine.training_data.stages import Stage

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
