"""A stage's eval set: the held-out eval.jsonl of a curated dataset (seed 004 §9.1).

Every row is read back verified (the manifest's sha256, and lineage naming each line's
example), so an eval run scores exactly the rows the dataset recorded. A row's prompt is what
the model is asked; its reference is the answer the dataset would train on (the chosen one of
a pair, after any reviewer flip). Rows made from a harness task carry the task, so execute_code
and the planning stages can run it through the harness.
"""

from dataclasses import dataclass

from engine.errors import CraError
from engine.harness.task_validation import task_name
from engine.training_data.dataset_files import open_dataset, read_rows
from engine.workspace import Workspace

EVAL_FILE = "eval.jsonl"


class EvalSetError(CraError):
    """A dataset that cannot serve as an eval set."""


@dataclass(frozen=True)
class HarnessTask:
    """A validated harness task an eval row was made from."""

    package_digest: str
    sha: str

    @property
    def name(self) -> str:
        return task_name(self.package_digest, self.sha)


@dataclass(frozen=True)
class EvalRow:
    """One held-out row: its line in eval.jsonl, the prompt, the reference answer, its task."""

    line: int
    example_id: int
    messages: list[dict[str, str]]
    reference: str
    task: HarnessTask | None


@dataclass(frozen=True)
class EvalSet:
    """The eval rows of one dataset, with the sha256 of the eval.jsonl they came from."""

    dataset_id: str
    stage: str
    base_model: str
    sha256: str
    rows: list[EvalRow]

    def tasks(self) -> list[HarnessTask]:
        """The distinct harness tasks of the rows, in row order."""
        seen: dict[str, HarnessTask] = {}
        for row in self.rows:
            if row.task is not None:
                seen.setdefault(row.task.name, row.task)
        return list(seen.values())


def load_eval_set(ws: Workspace, dataset_id: str) -> EvalSet:
    """Dataset `dataset_id`'s eval rows; refused when it holds none."""
    stored = open_dataset(ws, dataset_id)
    rows = read_rows(ws.db, stored)[EVAL_FILE]
    if not rows:
        raise EvalSetError(
            f"dataset {dataset_id} has no eval rows: curate a dataset with "
            "[curation] eval_share above 0 (or eval_repos set) to evaluate on"
        )
    eval_rows = []
    for number, row in enumerate(rows, 1):
        trl = row.item.row(row.flipped)
        if "messages" in trl:
            messages, answer = trl["messages"][:-1], trl["messages"][-1]
        else:
            messages, answer = trl["prompt"], trl["chosen"][0]
        item = row.item
        task = (
            HarnessTask(item.package_digest, item.sha)
            if item.package_digest is not None and item.sha is not None
            else None
        )
        eval_rows.append(
            EvalRow(
                line=number,
                example_id=item.id,
                messages=messages,
                reference=answer["content"],
                task=task,
            )
        )
    return EvalSet(
        dataset_id=dataset_id,
        stage=stored.manifest.stage,
        base_model=stored.manifest.base_model,
        sha256=stored.manifest.files[EVAL_FILE].sha256,
        rows=eval_rows,
    )
