"""Eval runs: a version (or the bare base) scored on a stage's eval set, in a background job.

`start_eval` follows LoRA Training Strategy §9.2: the candidate and its baseline (the stage's active
version, or the base model for the first) are scored on the same eval set, the stage's newest frozen
one (`eval_set.py`), the baseline first when it has no finished eval there yet; both run in one
job, one after the other (two at once would only share the same cores), and the job ends by
putting the candidate through the gate. An eval run's answers go to `evals/<id>/`
(answers.jsonl, the harness attempts, eval.log) and its metrics to `eval_runs.metrics_json`;
`eval_runs.eval_set_id` and `eval_sha256` name the set it scored. A run whose job died is
marked failed at the next `reconcile_evals`; a failed run is never resumed, only run again.
"""

import sys
from typing import Any

from engine.adapters.activation import AdapterVersion
from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.jobs import (
    LIVE,
    JobLock,
    JobRow,
    finish_job,
    job_lock,
    settle,
    terminate_job,
)
from engine.core.stages import BASE_MODEL, LORA_STAGES, as_stage, require_lora_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import EVALS_DIR, Workspace
from engine.evaluation.eval_run import EvalRun, eval_runs
from engine.evaluation.eval_set import newest_eval_set
from engine.evaluation.gate import BASE, active_row, done_evals

JOB_KIND = "eval"
BACKENDS = ("server", "local")


class EvalRunError(CraError):
    """An eval run cannot be started as asked."""


def _version(ws: Workspace, name: str) -> AdapterVersion:
    rows = list(ws.db["adapter_versions"].rows_where("name = ?", [name]))
    if not rows:
        raise EvalRunError(f"there is no adapter version {name!r}; `cra adapters list` shows them")
    return AdapterVersion(**rows[0])


def start_eval(
    ws: Workspace,
    adapter: str | None = None,
    stage: str | None = None,
    backend: str | None = None,
    operator: str | None = None,
) -> list[int]:
    """Queue the eval runs `adapter` needs and start their job; returns the eval run ids.

    Every run scores its stage's newest frozen eval set. With `adapter` (a version name): the
    stage's baseline is evaluated first when it has no finished eval on that set. With no
    adapter: the base model alone on `stage`.
    """
    backend = backend or ws.config.evaluation.backend
    if backend not in BACKENDS:
        raise EvalRunError(f"unknown eval backend {backend!r}; backends are {', '.join(BACKENDS)}")
    targets: list[AdapterVersion | None]
    if adapter is not None:
        row = _version(ws, adapter)
        require_lora_stage(row.stage, f"adapter to evaluate ({adapter})")
        stage, dataset_id = row.stage, row.dataset_id
        baseline = active_row(ws, row.stage)
        targets = [row] if baseline is not None and baseline.id == row.id else [baseline, row]
    elif stage is None:
        raise EvalRunError(
            f"evaluating the base needs a stage; the LoRA stages are {', '.join(LORA_STAGES)}"
        )
    else:
        require_lora_stage(stage, "evaluation")
        targets = [None]
    eval_set = newest_eval_set(ws, stage)
    if eval_set is None:
        raise EvalRunError(
            f"{stage} has no eval set yet; `cra eval set build --stage {stage}` builds it"
        )
    if adapter is None:
        dataset_id = _newest_dataset(ws, stage)
    with job_lock(ws, JOB_KIND) as lock:
        _reconcile(ws, lock)
        _refuse_running(ws)
        if len(targets) == 2 and any(
            run.eval_sha256 == eval_set.sha256 for run in done_evals(ws, stage, targets[0])
        ):
            targets.pop(0)
        who = operator or ws.config.operator
        ids = [
            _insert(ws, target, stage, dataset_id, eval_set.id, eval_set.sha256, backend, who)
            for target in targets
        ]
        argv = [sys.executable, "-m", "engine.runners.evaluation", *map(str, ids)]
        try:
            lock.spawn(ids[-1], argv)
        except CraError as exc:
            for eval_id in ids:
                _set(ws, eval_id, status="failed", reason=str(exc), finished_at=utc_now())
            raise
    return ids


def _newest_dataset(ws: Workspace, stage: str) -> str:
    """The stage's newest dataset, which a bare-base run records (`eval_runs.dataset_id`)."""
    found = ws.db.execute(
        "SELECT id FROM datasets WHERE stage = ? ORDER BY rowid DESC LIMIT 1", [stage]
    ).fetchone()
    if found is None:
        raise EvalRunError(
            f"{stage} has no dataset yet; an eval run records the stage's newest dataset: "
            f"curate one first (`cra curate-data --stage {stage}`)"
        )
    return found[0]


def _refuse_running(ws: Workspace) -> None:
    running = [run.id for run in _under_way(ws)]
    if running:
        raise EvalRunError(
            f"eval run {running[0]} is still under way; one eval job at a time "
            "(`cra eval status` shows it)"
        )


def _insert(
    ws: Workspace,
    target: AdapterVersion | None,
    stage: str,
    dataset_id: str | None,
    eval_set_id: int,
    sha: str,
    backend: str,
    operator: str,
) -> int:
    with ws.db.conn:
        eval_id = inserted_id(
            ws.db.table("eval_runs").insert(
                {
                    "target": BASE if target is None else target.name,
                    "adapter_id": None if target is None else target.id,
                    "stage": stage,
                    "base_model": BASE_MODEL[as_stage(stage)],
                    "dataset_id": dataset_id,
                    "eval_set_id": eval_set_id,
                    "eval_sha256": sha,
                    "backend": backend,
                    "status": "queued",
                    "reason": "",
                    "out_dir": "",
                    "created_at": utc_now(),
                    "created_by": operator,
                }
            )
        )
        ws.db.table("eval_runs").update(eval_id, {"out_dir": f"{EVALS_DIR}/{eval_id}"})
    return eval_id


def _set(ws: Workspace, eval_id: int, **values: Any) -> None:
    with ws.db.conn:
        ws.db.table("eval_runs").update(eval_id, values)


def eval_row(ws: Workspace, eval_id: int) -> EvalRun:
    """Eval run `eval_id`; refused when there is none."""
    rows = eval_runs(ws.db.table("eval_runs").rows_where("id = ?", [eval_id]))
    if not rows:
        raise EvalRunError(f"there is no eval run {eval_id}; `cra eval status` lists them")
    return rows[0]


def list_evals(ws: Workspace) -> list[EvalRun]:
    """Every eval run, newest first."""
    return eval_runs(ws.db.table("eval_runs").rows_where(order_by="id desc"))


def stop_eval(ws: Workspace) -> int:
    """Ask the eval job under way to stop; returns the id of the run it was on."""
    with job_lock(ws, JOB_KIND):
        running = _under_way(ws)
        if not running:
            raise EvalRunError("no eval run is under way")
        job = job_of(ws, running[0].id)
        if job is None or not terminate_job(job):
            raise EvalRunError(
                f"eval run {running[0].id}: its job is not running; `cra eval status` settles it"
            )
    return running[0].id


def reconcile_evals(ws: Workspace) -> list[int]:
    """Mark failed the queued or running eval runs whose job is gone; returns their ids."""
    return settle(ws, JOB_KIND, _reconcile)


def _reconcile(ws: Workspace, lock: JobLock) -> list[int]:
    ended = []
    for run in _under_way(ws):
        job = job_of(ws, run.id)
        if job is not None and job.status in LIVE and lock.alive(job):
            continue
        if job is not None and job.status in LIVE:
            finish_job(ws, job.id, "failed", "the eval job died")
        _set(
            ws,
            run.id,
            status="failed",
            reason="the eval job ended before this run finished; run it again",
            finished_at=utc_now(),
        )
        ended.append(run.id)
    return ended


def _under_way(ws: Workspace) -> list[EvalRun]:
    """The eval runs queued or running, oldest first."""
    return eval_runs(
        ws.db.table("eval_runs").rows_where("status IN ('queued', 'running')", order_by="id")
    )


def job_of(ws: Workspace, eval_id: int) -> JobRow | None:
    """The job that runs `eval_id`: its own, or the job of a later run queued with it."""
    rows = ws.db.table("jobs").rows_where(
        "kind = ? AND ref_id >= ? AND EXISTS (SELECT 1 FROM json_each(argv_json) WHERE value = ?)",
        [JOB_KIND, eval_id, str(eval_id)],
        order_by="id desc",
        limit=1,
    )
    return next((JobRow.model_validate(row) for row in rows), None)
