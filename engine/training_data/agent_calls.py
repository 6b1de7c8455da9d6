"""Which stage each of the agent's logged LLM calls belongs to.

The agent logs every call in `retrieval_llm_calls` with a `call_type` and the task id of its run
(the agent's raw DB, docs/background.md). Retrieval calls are typed by their stage's name. The
orchestrator types every planning call `execute_plan` and tells them apart by the task id it gives
the call's run (`<task>:meta_plan`, `<task>:part_plan:<part>`, `<task>:test_plan:<part>`); code
calls are `execute_implement`, `execute_test_implement` and `execute_function_implement`. Planning
DPO has no call of its own: its data is pairs, which one logged answer cannot make.
"""

from fnmatch import fnmatchcase

from engine.core.stages import Stage

# Each stage's calls: (call_type, SQLite GLOB pattern on the call's task id).
LOGGED_CALLS: dict[Stage, tuple[tuple[str, str], ...]] = {
    "task_analysis": (("task_analysis", "*"),),
    "scope": (("scope", "*"),),
    "precision": (("precision", "*"),),
    "meta_plan": (("execute_plan", "*:meta_plan"),),
    "step_plan": (("execute_plan", "*:part_plan:*"),),
    "test_plan": (("execute_plan", "*:test_plan:*"),),
    "planning_dpo": (),
    "execute_code": (
        ("execute_implement", "*"),
        ("execute_test_implement", "*"),
        ("execute_function_implement", "*"),
    ),
}


def stage_of_call(call_type: str, task_id: str) -> Stage | None:
    """The stage a logged call trains, or None when it trains none (e.g. assembly_refilter)."""
    for stage, calls in LOGGED_CALLS.items():
        for wanted, pattern in calls:
            if call_type == wanted and fnmatchcase(task_id, pattern):
                return stage
    return None
