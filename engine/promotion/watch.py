"""The watch after a promotion: an end-to-end check that rolls its stage back on a regression.

LoRA Training Strategy §9.2 (the end-to-end eval runs after any adapter change), §10.5 (rollback
step 3), Phase 4 Guidelines §6 (a primary metric that regresses after a promotion is rolled back at
once). When `promote_version` makes a version of a stage the harness puts in its planner slot
(`WATCHED_STAGES`) active and `[watch] enabled` is on, a watch starts as a background job
(`python -m engine.runners.watch WATCH_ID`). It measures the harness resolved rate on the
stage's held-out tasks twice: the baseline (the model that served the stage before, the version
replaced or the bare base, in the planner slot) and the promoted version. A resolved rate lower
than the baseline's by more than `[watch] tolerance` rolls the stage back (operator `watch`, the
numbers in the reason), provided the promoted version still serves.

Each measurement is an append-only `e2e_results` row, one outcome per task. The baseline is
reused rather than run again when a result of the same model (same version or same base
folder) on the same task set and backend exists: the planner slot's model is all the harness
takes from the adapters, and answers are greedy, so the newest such result is the measurement
the job would make. A promotion's watch therefore usually measures only the promoted version
(the previous watch measured the version it replaces).

A watch whose job died is marked failed at the next `reconcile_watches` and never rolls back.
"""

import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.adapters.activation import AdapterVersion, version_by_id
from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.jobs import LIVE, JobLock, finish_job, job_lock, latest_job, settle
from engine.core.stages import Stage
from engine.core.timestamps import utc_now
from engine.core.workspace import WATCHES_DIR, Workspace
from engine.evaluation.eval_set import HarnessTask, load_eval_set, newest_eval_set
from engine.evaluation.gate import target_name

JOB_KIND = "watch"
WATCH_OPERATOR = "watch"
WATCHED_STAGES: tuple[Stage, ...] = ("planning_dpo", "execute_code")
"""The stages whose model the harness puts in its planner slot (one model answers the plan
and the edits); the retrieval stages' adapters are not called by the harness."""


class WatchError(CraError):
    """A watch cannot be started or cannot measure."""


@dataclass(frozen=True)
class TaskSet:
    """The held-out harness tasks a watch runs, the frozen eval set they come from, and the
    hash of their names."""

    eval_set_id: int
    sha256: str
    tasks: list[HarnessTask]


def watch_tasks(ws: Workspace, version: AdapterVersion) -> TaskSet:
    """The held-out harness tasks of `version`'s stage: those behind the rows of the stage's
    newest frozen eval set, which no dataset trains on."""
    record = newest_eval_set(ws, version.stage)
    if record is None:
        raise WatchError(
            f"{version.name}: {version.stage} has no eval set, so no held-out tasks; "
            f"`cra eval set build --stage {version.stage}` builds it"
        )
    return task_set(ws, record.id)


def task_set(ws: Workspace, eval_set_id: int) -> TaskSet:
    """The harness tasks behind eval set `eval_set_id`'s rows, in row order."""
    tasks = load_eval_set(ws, eval_set_id).tasks()
    if not tasks:
        raise WatchError(
            f"eval set {eval_set_id}'s rows come from no harness task; "
            "the end-to-end check has nothing to run"
        )
    names = "\n".join(task.name for task in tasks)
    return TaskSet(eval_set_id, hashlib.sha256(names.encode("utf-8")).hexdigest(), tasks)


def start_watch(ws: Workspace, activation_id: int) -> str:
    """Start the watch of promotion record `activation_id`; returns one line saying what
    happened (started, off, not applicable to the stage, or failed to start and why).

    The promotion has happened whatever this says: a watch that cannot start is recorded
    failed, so the morning report and `cra adapters watch` show it."""
    record = ws.db.table("adapter_activations").get(activation_id)
    stage = record["stage"]
    if not ws.config.watch.enabled:
        return "off ([watch] enabled = false); no end-to-end check runs"
    if stage not in WATCHED_STAGES:
        return (
            f"none: the harness's planner slot does not call {stage} adapters, so an "
            "end-to-end check cannot see them; the eval gate is their check"
        )
    version = version_by_id(ws, record["to_id"])
    baseline = None if record["from_id"] is None else version_by_id(ws, record["from_id"])
    watch_id = None
    try:
        with job_lock(ws, JOB_KIND) as lock:
            _reconcile(ws, lock)
            watch_id = _insert(ws, record, version, baseline)
            task_set = watch_tasks(ws, version)
            _set(ws, watch_id, eval_set_id=task_set.eval_set_id, tasks_sha256=task_set.sha256)
            argv = [sys.executable, "-m", "engine.runners.watch", str(watch_id)]
            lock.spawn(watch_id, argv)
    except CraError as exc:
        if watch_id is None:
            watch_id = _insert(ws, record, version, baseline)
        _set(ws, watch_id, status="failed", reason=str(exc), finished_at=utc_now())
        return f"watch {watch_id} could not start: {exc}"
    return (
        f"watch {watch_id} started: {version.name} against {target_name(baseline)} on "
        f"{len(task_set.tasks)} held-out tasks (`cra adapters watch`)"
    )


def _insert(
    ws: Workspace,
    record: dict[str, Any],
    version: AdapterVersion,
    baseline: AdapterVersion | None,
) -> int:
    with ws.db.conn:
        watch_id = inserted_id(
            ws.db.table("watch_runs").insert(
                {
                    "stage": record["stage"],
                    "adapter_id": version.id,
                    "activation_id": record["id"],
                    "baseline": target_name(baseline),
                    "baseline_adapter_id": None if baseline is None else baseline.id,
                    "backend": ws.config.evaluation.backend,
                    "tolerance": ws.config.watch.tolerance,
                    "status": "queued",
                    "reason": "",
                    "out_dir": "",
                    "created_at": utc_now(),
                    "created_by": record["operator"],
                }
            )
        )
        ws.db.table("watch_runs").update(watch_id, {"out_dir": f"{WATCHES_DIR}/{watch_id}"})
    return watch_id


def _set(ws: Workspace, watch_id: int, **values: Any) -> None:
    with ws.db.conn:
        ws.db.table("watch_runs").update(watch_id, values)


class Watch(BaseModel):
    """One row of `watch_runs` with the promoted version's `name`: what was measured against
    what (`baseline`), its status, verdict and the two `e2e_results` it compared. `backend`,
    `tolerance`, `reason` and `out_dir` are written when a watch is made, so typed never NULL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    stage: str
    adapter_id: int
    activation_id: int
    baseline: str
    baseline_adapter_id: int | None
    eval_set_id: int | None
    tasks_sha256: str | None
    backend: str
    tolerance: float
    status: str
    verdict: str | None
    baseline_result_id: int | None
    after_result_id: int | None
    rollback_id: int | None
    reason: str
    out_dir: str
    created_at: str
    created_by: str | None
    finished_at: str | None
    name: str


def list_watches(ws: Workspace, watch_id: int | None = None) -> list[Watch]:
    """Every watch (or watch `watch_id`), newest first, with the promoted version's name."""
    where, args = ("", []) if watch_id is None else ("WHERE w.id = ? ", [watch_id])
    return [
        Watch.model_validate(row)
        for row in ws.db.query(
            "SELECT w.*, v.name AS name FROM watch_runs w "
            f"JOIN adapter_versions v ON v.id = w.adapter_id {where}ORDER BY w.id DESC",
            args,
        )
    ]


def watch_detail(ws: Workspace, watch_id: int) -> list[str]:
    """Watch `watch_id`'s line, then each task its two measurements disagree on, then where
    its harness artifacts are."""
    rows = list_watches(ws, watch_id)
    if not rows:
        raise WatchError(f"there is no watch {watch_id}; `cra adapters watch` lists them")
    watch = rows[0]
    lines = [watch_line(ws, watch)]
    if watch.status == "done":
        _, baseline, after = _outcome(ws, watch)
        lines += [f"  {c['task']}: {c['before']} → {c['after']}" for c in flipped(baseline, after)]
    return [*lines, f"  artifacts: {ws.root / watch.out_dir}"]


def result_rate(result: dict[str, Any]) -> float:
    return result["resolved"] / result["n"]


def flipped(baseline: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """The tasks resolved by one measurement and not the other: task, before, after."""
    before = {o["task"]: o["outcome"] for o in json.loads(baseline["outcomes_json"])}
    return [
        {"task": o["task"], "before": before[o["task"]], "after": o["outcome"]}
        for o in json.loads(after["outcomes_json"])
        if (before[o["task"]] == "resolved") != (o["outcome"] == "resolved")
    ]


def _outcome(ws: Workspace, watch: Watch) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A done watch's verdict and its two measurements: the baseline's, the promoted
    version's."""
    verdict, before, after = watch.verdict, watch.baseline_result_id, watch.after_result_id
    if verdict is None or before is None or after is None:
        raise WatchError(f"watch {watch.id} is done but its verdict or measurements are missing")
    results = ws.db.table("e2e_results")
    return verdict, results.get(before), results.get(after)


def watch_line(ws: Workspace, watch: Watch) -> str:
    """One line for `watch`: what was compared and what came of it."""
    head = f"watch {watch.id} {watch.stage}: {watch.name} against {watch.baseline}"
    if watch.status != "done":
        why = f": {watch.reason}" if watch.reason else ""
        return f"{head} {watch.status}{why}"
    verdict, baseline, after = _outcome(ws, watch)
    reused = (
        f" (baseline from watch {baseline['watch_id']})" if baseline["watch_id"] != watch.id else ""
    )
    changed = flipped(baseline, after)
    line = (
        f"{head} {verdict.replace('_', ' ')}: resolved {result_rate(baseline):.3f} → "
        f"{result_rate(after):.3f} on {after['n']} tasks{reused}, {len(changed)} flipped, "
        f"tolerance {watch.tolerance:.3f}"
    )
    return line + (f"; {watch.reason}" if verdict == "regressed" else "")


def reconcile_watches(ws: Workspace) -> list[int]:
    """Mark failed the queued or running watches whose job is gone; returns their ids. Such a
    watch never rolls back: it decided nothing."""
    return settle(ws, JOB_KIND, _reconcile)


def _reconcile(ws: Workspace, lock: JobLock) -> list[int]:
    ended = []
    for row in list(ws.db["watch_runs"].rows_where("status IN ('queued', 'running')")):
        job = lock.running(row["id"])
        if job is not None:
            continue
        latest = latest_job(ws, JOB_KIND, row["id"])
        if latest is not None and latest.status in LIVE:
            finish_job(ws, latest.id, "failed", "the watch job died")
        _set(ws, row["id"], status="failed", finished_at=utc_now(), **_died(ws, row["id"]))
        ended.append(row["id"])
    return ended


def _died(ws: Workspace, watch_id: int) -> dict[str, Any]:
    """Why a watch whose job died failed, and the rollback it made if it died just after."""
    rolled = ws.db.execute(
        "SELECT id FROM adapter_activations WHERE action = 'rollback' AND operator = ? "
        "AND reason LIKE ? ORDER BY id LIMIT 1",
        [WATCH_OPERATOR, f"watch {watch_id}:%"],
    ).fetchone()
    if rolled is None:
        return {"reason": "the watch job ended before it decided; nothing was rolled back"}
    return {
        "reason": f"the watch job ended after its rollback (activation {rolled[0]}), "
        "before recording it",
        "rollback_id": rolled[0],
    }
