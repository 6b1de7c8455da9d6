"""The pipeline stages that get training data, the base model each trains on, and its budget.

Seed 004 §2.2: task analysis runs on an 8K-token context-reduced base; every other stage shares
the 32K one. Code execution trains the coding base; the planning and retrieval stages train the
reasoning base (§2, §7.2).
"""

from typing import Literal, get_args

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

BASE_MODEL: dict[Stage, BaseModelKind] = {
    stage: "coding" if stage == "execute_code" else "reasoning" for stage in STAGES
}

TOKEN_BUDGET: dict[Stage, int] = {
    stage: 8192 if stage == "task_analysis" else 32768 for stage in STAGES
}
