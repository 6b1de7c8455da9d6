"""Training plans on disk (`plans/plan-<id>.json`) and in the `training_plans` table.

A plan is written once and never changed: `save_plan` writes the file beside its final name,
flushes it, renames it into place and records it; `load_plan` reads one back by id or path and
checks the file still matches what was recorded.
"""

import os
from pathlib import Path

from pydantic import ValidationError

from engine.core.durable import fsync_dir
from engine.core.errors import CraError, validation_lines
from engine.core.workspace import Workspace
from engine.training_data.plan_model import TrainingPlan


class TrainingPlanError(CraError):
    """A training plan that cannot be saved or read; the message says which and why."""


def save_plan(ws: Workspace, plan: TrainingPlan) -> tuple[int, Path]:
    """Record `plan`; returns its id and the file it was written to."""
    ws.plans_dir.mkdir(parents=True, exist_ok=True)
    text = plan.model_dump_json(indent=2) + "\n"
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        row = ws.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM training_plans").fetchone()
        plan_id = int(row[0])
        path = ws.plans_dir / f"plan-{plan_id}.json"
        if path.exists():
            raise TrainingPlanError(
                f"{path} exists but the database has no plan {plan_id}; move it aside"
            )
        staging = path.with_suffix(".json.partial")
        with open(staging, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        staging.rename(path)
        fsync_dir(ws.plans_dir)
        ws.db.execute(
            "INSERT INTO training_plans (id, created_at, created_by, path, plan_json) "
            "VALUES (?, ?, ?, ?, ?)",
            [plan_id, plan.created_at, plan.created_by, path.relative_to(ws.root).as_posix(), text],
        )
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    ws.db.execute("COMMIT")
    return plan_id, path


def load_plan(ws: Workspace, ref: str) -> tuple[int, TrainingPlan]:
    """The plan `ref` names: its id (`3`), or the path of its file."""
    if ref.isdigit():
        rows = list(ws.db["training_plans"].rows_where("id = ?", [int(ref)]))
    else:
        path = Path(ref).expanduser().absolute()
        try:
            relative = path.relative_to(ws.root).as_posix()
        except ValueError:
            relative = None
        rows = list(ws.db["training_plans"].rows_where("path = ?", [relative]))
    if not rows:
        raise TrainingPlanError(
            f"no training plan is recorded as {ref!r}: give a plan id or the path of a plan "
            "that `cra train-plan` wrote"
        )
    row = rows[0]
    path = ws.root / row["path"]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainingPlanError(f"{path}: cannot read training plan {row['id']}: {exc}") from exc
    if text != row["plan_json"]:
        raise TrainingPlanError(
            f"{path}: the file differs from training plan {row['id']} as recorded; "
            "plans are never edited, make a new one with `cra train-plan`"
        )
    try:
        return int(row["id"]), TrainingPlan.model_validate_json(text)
    except ValidationError as exc:
        raise TrainingPlanError(validation_lines(str(path), exc)) from exc
