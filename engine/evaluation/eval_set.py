"""A stage's frozen eval set: the rows every candidate of the stage is scored on (LoRA Training
Strategy §9.1).

Per LoRA stage (and so per base model) the operator builds versions (`cra eval set build`); the
newest is what `cra eval run` scores, so a candidate and its baseline always meet on the same
rows. A version holds the chronologically newest held-out tasks of the stage's examples:

- the candidates are the stage's items of its format (SFT, or pairs for planning_dpo) that
  review kept (flips applied), that break no rule of the stage's contract and are not exact or
  near duplicates, less every task some dataset or base export already trained on (an eval set
  is never scored on a task a model saw);
- every task of `[curation] eval_repos` goes in, then whole tasks newest first (a task's date is
  its newest row's, ties broken by task key) while the set holds fewer rows than its target,
  `[evaluation] eval_sizes[stage]`, and while it holds fewer than `[evaluation] max_eval_share`
  of the stage's tasks (its tasks never train: a small corpus gets a small set, not an empty
  train split). Fewer rows than the target is allowed: the set records its target and is
  `underpowered`, and the gate marks its decisions so.

A version is frozen: its rows are written once to `eval_sets/<stage>/<sha12>/eval.jsonl` (one
TRL row a line, as a dataset's eval.jsonl), recorded in the append-only `eval_sets` (with the
task keys it holds) and `eval_set_rows` (which example and flip each line is), and identified
by the file's sha256. A build whose rows and target equal the stage's newest version makes no
new version. Curation holds every task of every version out of train and replay
(`holdout.held_out_tasks`), whatever the stage.

Reading a version back checks the file against its sha256 and each line against the example
its row names. A row's prompt is what the model is asked; its reference is the answer a dataset
would train on (the chosen one of a pair, after any reviewer flip). Rows made from a harness
task carry the task, so execute_code and the planning stages can run it through the harness.
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.errors import CraError
from engine.core.stages import BASE_MODEL, Stage, require_lora_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.task_validation import task_name
from engine.training_data.contracts import check_item
from engine.training_data.curate import default_format, rejected_texts, reviewed_rows
from engine.training_data.dataset_files import jsonl, sha256, write_dataset_folder
from engine.training_data.dataset_rows import DatasetRow
from engine.training_data.holdout import trained_tasks
from engine.training_data.review import verdicts
from engine.training_data.store import item_from_row

EVAL_FILE = "eval.jsonl"


class EvalSetError(CraError):
    """An eval set that cannot be built or read back as recorded."""


class EvalSetRecord(BaseModel):
    """One version of a stage's frozen eval set, as `eval_sets` records it."""

    model_config = ConfigDict(frozen=True)

    id: int
    stage: str
    base_model: str
    path: str
    sha256: str
    size: int
    target_size: int
    tasks: list[str]
    created_at: str
    created_by: str | None

    @property
    def underpowered(self) -> bool:
        """Fewer rows than the stage's target size when it was built."""
        return self.size < self.target_size

    def summary(self) -> str:
        """One line: the id, stage, size against target, and whether it is underpowered."""
        power = "underpowered" if self.underpowered else "full size"
        return (
            f"eval set {self.id} ({self.stage}, {self.base_model} base): {self.size} rows of "
            f"{len(self.tasks)} tasks, target {self.target_size}, {power}; "
            f"sha256 {self.sha256[:12]}, {self.path}"
        )


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
    """The rows of one frozen eval set version, with the sha256 of the eval.jsonl they are."""

    id: int
    stage: str
    base_model: str
    sha256: str
    target_size: int
    rows: list[EvalRow]

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def underpowered(self) -> bool:
        """Fewer rows than the stage's target size when the set was built."""
        return self.size < self.target_size

    def tasks(self) -> list[HarnessTask]:
        """The distinct harness tasks of the rows, in row order."""
        seen: dict[str, HarnessTask] = {}
        for row in self.rows:
            if row.task is not None:
                seen.setdefault(row.task.name, row.task)
        return list(seen.values())


def _record(row: dict[str, Any]) -> EvalSetRecord:
    values = {key: value for key, value in row.items() if key != "tasks_json"}
    return EvalSetRecord(**values, tasks=json.loads(row["tasks_json"]))


def list_eval_sets(ws: Workspace, stage: str | None = None) -> list[EvalSetRecord]:
    """Every eval set version (of `stage` when given), oldest first."""
    where, args = ("stage = ?", [stage]) if stage else (None, [])
    return [_record(row) for row in ws.db["eval_sets"].rows_where(where, args, order_by="id")]


def eval_set_record(ws: Workspace, eval_set_id: int) -> EvalSetRecord:
    rows = list(ws.db["eval_sets"].rows_where("id = ?", [eval_set_id]))
    if not rows:
        raise EvalSetError(f"there is no eval set {eval_set_id}; `cra eval set list` lists them")
    return _record(rows[0])


def newest_eval_set(ws: Workspace, stage: str) -> EvalSetRecord | None:
    """The stage's newest eval set version, the one eval runs score; None before the first."""
    rows = list(ws.db["eval_sets"].rows_where("stage = ?", [stage], order_by="id desc", limit=1))
    return _record(rows[0]) if rows else None


def load_eval_set(ws: Workspace, eval_set_id: int) -> EvalSet:
    """Eval set `eval_set_id`'s rows, each line checked against the example it names."""
    record = eval_set_record(ws, eval_set_id)
    path = ws.root / record.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvalSetError(f"{path}: cannot read eval set {eval_set_id}: {exc}") from exc
    if sha256(data) != record.sha256:
        raise EvalSetError(
            f"{path}: sha256 {sha256(data)[:12]} differs from eval set {eval_set_id}'s "
            f"{record.sha256[:12]}; eval sets are never edited"
        )
    lines = data.decode("utf-8").splitlines()
    entries = list(ws.db["eval_set_rows"].rows_where("eval_set_id = ?", [eval_set_id], "line"))
    if [entry["line"] for entry in entries] != list(range(1, len(lines) + 1)):
        raise EvalSetError(f"{path}: eval_set_rows does not name each line exactly once")
    items = {
        row["id"]: item_from_row(row)
        for row in ws.db.query(
            "SELECT e.* FROM examples e JOIN eval_set_rows r ON r.example_id = e.id "
            "WHERE r.eval_set_id = ?",
            [eval_set_id],
        )
    }
    rows = []
    for entry in entries:
        row = DatasetRow.new(items[entry["example_id"]], bool(entry["flipped"]))
        if row.line != lines[entry["line"] - 1]:
            raise EvalSetError(
                f"{path}:{entry['line']}: the line is not example {entry['example_id']}'s row"
            )
        rows.append(_eval_row(entry["line"], row))
    return EvalSet(
        id=record.id,
        stage=record.stage,
        base_model=record.base_model,
        sha256=record.sha256,
        target_size=record.target_size,
        rows=rows,
    )


def _eval_row(number: int, row: DatasetRow) -> EvalRow:
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
    return EvalRow(
        line=number, example_id=item.id, messages=messages, reference=answer["content"], task=task
    )


@dataclass(frozen=True)
class Built:
    """What a build left: the stage's newest version, and whether the build made it."""

    eval_set: EvalSetRecord
    new: bool

    def line(self) -> str:
        """One line, as `cra eval set build` and the Datasets pane both say it."""
        prefix = "built" if self.new else "unchanged, no new version:"
        return f"{prefix} {self.eval_set.summary()}"


def build_eval_set(ws: Workspace, stage: str, operator: str | None = None) -> Built:
    """Freeze the stage's newest held-out tasks as a new version, as the module doc says; an
    unchanged build returns the newest version and makes nothing."""
    stage = require_lora_stage(stage, "eval set")
    target = ws.config.evaluation.eval_sizes[stage]
    rows = _held_rows(ws, stage)
    if not rows:
        raise EvalSetError(
            f"no held-out {stage} examples to build an eval set from (every task is trained "
            "on, rejected or none is derived): derive or import data from new tasks first"
        )
    chosen = _newest_tasks(rows, target, _max_tasks(ws, stage), ws.config.curation.eval_repos)
    data = jsonl([row.line for row in chosen])
    digest = sha256(data)
    tasks = sorted({row.item.task_key for row in chosen})
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        newest = newest_eval_set(ws, stage)
        if newest is not None and (newest.sha256, newest.target_size) == (digest, target):
            ws.db.execute("ROLLBACK")
            return Built(eval_set=newest, new=False)
        relative = _write(ws, stage, digest, data)
        eval_set_id = _insert(ws, stage, relative, digest, chosen, target, tasks, operator)
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    ws.db.execute("COMMIT")
    return Built(eval_set=eval_set_record(ws, eval_set_id), new=True)


def _held_rows(ws: Workspace, stage: Stage) -> list[DatasetRow]:
    """The stage's reviewed, contract-clean, deduplicated rows of tasks no one trained on."""
    items = [
        item_from_row(row)
        for row in ws.db.query(
            "SELECT * FROM examples WHERE stage = ? AND kind = ? ORDER BY id",
            [stage, default_format(stage)],
        )
    ]
    trained = trained_tasks(ws.db)
    decisions = verdicts(ws.db, stage)
    clean = [item for item in items if item.task_key not in trained and not check_item(item)]
    rows, *_ = reviewed_rows(
        clean,
        decisions,
        rejected_texts(ws.db, decisions),
        [],
        ws.config.curation.near_duplicate_threshold,
    )
    return rows


def _max_tasks(ws: Workspace, stage: Stage) -> int:
    """`[evaluation] max_eval_share` of the stage's tasks (trained or not), at least one."""
    (tasks,) = ws.db.execute(
        "SELECT COUNT(DISTINCT task_key) FROM examples WHERE stage = ? AND kind = ?",
        [stage, default_format(stage)],
    ).fetchone()
    return max(1, int(tasks * ws.config.evaluation.max_eval_share))


def _newest_tasks(
    rows: Sequence[DatasetRow], target: int, max_tasks: int, eval_repos: Sequence[str]
) -> list[DatasetRow]:
    """The rows of every eval-repo task, then of whole tasks newest first while fewer than
    `target` rows and fewer than `max_tasks` tasks are held; in example order."""
    by_task: dict[str, list[DatasetRow]] = defaultdict(list)
    for row in rows:
        by_task[row.item.task_key].append(row)
    newest: dict[str, datetime] = {
        task: max(row.task_time for row in task_rows) for task, task_rows in by_task.items()
    }
    pinned = [
        task
        for task, task_rows in by_task.items()
        if any(r.item.repo in eval_repos for r in task_rows)
    ]
    rest = sorted(
        (task for task in by_task if task not in pinned),
        key=lambda task: (newest[task], task),
        reverse=True,
    )
    held = list(pinned)
    size = sum(len(by_task[task]) for task in held)
    for task in rest:
        if size >= target or len(held) >= max_tasks:
            break
        held.append(task)
        size += len(by_task[task])
    return sorted((row for task in held for row in by_task[task]), key=lambda r: r.example_id)


def _write(ws: Workspace, stage: str, digest: str, data: bytes) -> str:
    """eval.jsonl in `eval_sets/<stage>/<sha12>/`, written once: a version with the same rows
    shares the folder, which must still hold them."""
    folder = ws.eval_sets_dir / stage
    path = folder / digest[:12] / EVAL_FILE
    if path.parent.exists():
        try:
            held = path.read_bytes()
        except OSError as exc:
            raise EvalSetError(f"{path}: cannot read: {exc}") from exc
        if sha256(held) != digest:
            raise EvalSetError(
                f"{path}: holds other rows than sha256 {digest[:12]}; eval sets are never "
                "edited: move the folder aside"
            )
    else:
        write_dataset_folder(folder, digest[:12], {EVAL_FILE: data})
    return path.relative_to(ws.root).as_posix()


def _insert(
    ws: Workspace,
    stage: Stage,
    path: str,
    digest: str,
    rows: Sequence[DatasetRow],
    target: int,
    tasks: list[str],
    operator: str | None,
) -> int:
    db: sqlite_utils.Database = ws.db
    cursor = db.execute(
        "INSERT INTO eval_sets (stage, base_model, path, sha256, size, target_size, tasks_json, "
        "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            stage,
            BASE_MODEL[stage],
            path,
            digest,
            len(rows),
            target,
            json.dumps(tasks),
            utc_now(),
            operator or ws.config.operator,
        ],
    )
    eval_set_id = cursor.lastrowid
    assert eval_set_id is not None
    db.conn.executemany(
        "INSERT INTO eval_set_rows (eval_set_id, line, example_id, flipped) VALUES (?, ?, ?, ?)",
        [(eval_set_id, line, row.example_id, int(row.flipped)) for line, row in enumerate(rows, 1)],
    )
    return eval_set_id
