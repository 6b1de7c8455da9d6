"""The held-out split: whole tasks go to eval, never a task on both sides (LoRA Training Strategy
§9.1).

Eval gets every task of the configured eval repos (repos kept for evaluation only), every task
held out anywhere (`held_out_tasks`: a task in any frozen eval set, of any stage and version, or
on the eval side of an earlier dataset or base export of any stage: an eval task stays eval, for
every stage), and the newest `eval_share` of the remaining tasks by date: the date of the k-th
newest is the cutoff and every task dated at or after it is eval, ties included, so each of
those tasks is strictly newer than every task left for train. A task's date is the newest of its
rows' dates.
"""

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from engine.training_data.dataset_rows import DatasetRow


@dataclass(frozen=True)
class Holdout:
    """The rows on each side and the rule's outcome."""

    train: list[DatasetRow]
    eval: list[DatasetRow]
    cutoff: str | None
    cutoff_time: datetime | None
    eval_tasks: frozenset[str]

    def keeps_out_of_train(self, row: DatasetRow, eval_repos: Collection[str]) -> bool:
        """Whether `row` (from an earlier dataset) would break the split if it trained: its
        task or repo is eval, or it is dated at or after the cutoff."""
        return (
            row.item.task_key in self.eval_tasks
            or row.item.repo in eval_repos
            or (self.cutoff_time is not None and row.task_time >= self.cutoff_time)
        )


def split(
    rows: Sequence[DatasetRow],
    eval_share: float,
    eval_repos: Collection[str],
    earlier_eval_tasks: Collection[str],
) -> Holdout:
    """Split `rows` by task as the module doc says; `eval_tasks` also holds every earlier eval
    task, so rows replayed later can be checked against it."""
    newest: dict[str, tuple[datetime, str]] = {}
    repos: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        key = row.item.task_key
        moment = (row.task_time, row.item.task_date)
        if key not in newest or moment[0] > newest[key][0]:
            newest[key] = moment
        repos[key].add(row.item.repo)
    held = {task for task, names in repos.items() if names & set(eval_repos)}
    held |= set(earlier_eval_tasks)
    remaining = sorted(
        (task for task in newest if task not in held),
        key=lambda task: (newest[task][0], task),
        reverse=True,
    )
    cutoff: tuple[datetime, str] | None = None
    if eval_share > 0 and remaining:
        take = max(1, round(eval_share * len(remaining)))
        cutoff = newest[remaining[take - 1]]
        held |= {task for task in remaining if newest[task][0] >= cutoff[0]}
    return Holdout(
        train=[row for row in rows if row.item.task_key not in held],
        eval=[row for row in rows if row.item.task_key in held],
        cutoff=None if cutoff is None else cutoff[1],
        cutoff_time=None if cutoff is None else cutoff[0],
        eval_tasks=frozenset(held),
    )


def held_out_tasks(db: sqlite_utils.Database) -> set[str]:
    """Every task key a dataset may never train on: those of every frozen eval set (any stage,
    any version) and those on the eval side of any dataset or base export."""
    return {
        row[0]
        for row in db.execute(
            "SELECT value FROM eval_sets, json_each(eval_sets.tasks_json) "
            "UNION SELECT e.task_key FROM dataset_examples de "
            "JOIN examples e ON e.id = de.example_id WHERE de.split = 'eval' "
            "UNION SELECT e.task_key FROM base_export_examples b "
            "JOIN examples e ON e.id = b.example_id WHERE b.split = 'eval'"
        )
    }


def trained_tasks(db: sqlite_utils.Database) -> set[str]:
    """Every task key some dataset or base export trained on (replayed rows included): never
    held out later, so an eval set is never scored on a task a model saw."""
    return {
        row[0]
        for row in db.execute(
            "SELECT e.task_key FROM dataset_examples de "
            "JOIN examples e ON e.id = de.example_id WHERE de.split = 'train' "
            "UNION SELECT e.task_key FROM base_export_examples b "
            "JOIN examples e ON e.id = b.example_id WHERE b.split = 'train'"
        )
    }
