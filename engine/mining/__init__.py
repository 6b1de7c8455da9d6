"""Mining a repository's history for harness tasks: the commit filter and planning types."""

from engine.mining.message import clean_task_text
from engine.mining.pipeline import DroppedCommit, MiningResult, mine_commits
from engine.mining.planning import describe_commit, planning_type
from engine.mining.settings import FilterSettings

__all__ = [
    "DroppedCommit",
    "FilterSettings",
    "MiningResult",
    "clean_task_text",
    "describe_commit",
    "mine_commits",
    "planning_type",
]
