"""Training runs: start one on a curated dataset, stop, resume, and follow it to its adapter.

A run is a row in `training_runs`, a folder `training/<id>/` (the files of
`engine.training.contract`) and a job: the worker process, which outlives the console. The
console reads the folder back (`reconcile_runs`): progress from metrics.jsonl and the backend
from backend.json while the worker runs, and once the job is gone, the outcome from
result.json; a worker that left none failed, and the run's reason holds the end of its log. A
finished run's adapter is registered as a candidate version.

Training always starts from the frozen base named in `[training] base_models`, the role's current
registered base version (`engine.bases.registry`), never from a
model merged with an adapter (Phase 4 Guidelines §6, LoRA Training Strategy §10). The one adapter a
run loads is the execute_code SFT version its DPO run continues (LoRA Training Strategy §1: SFT then
DPO on one adapter).

Run status: running → done | stopped | failed; `stop` makes it stopping until the worker has
saved and left; a stopped or failed run can be resumed from its newest checkpoint.
"""

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.adapters.activation import AdapterVersion, trained_on, verify_files, version_row
from engine.bases.registry import (
    TRAINING_KEY,
    BaseRegistryError,
    BaseVersion,
    ensure_base,
)
from engine.core.durable import fsync_dir, write_durably
from engine.core.errors import CraError, validation_lines
from engine.core.file_tail import file_tail
from engine.core.jobs import (
    LIVE,
    TRAINING_KIND,
    JobLock,
    JobRow,
    finish_job,
    job_lock,
    latest_job,
    settle,
)
from engine.core.stages import BaseModelKind, require_lora_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import TRAINING_DIR, Workspace
from engine.training.contract import (
    BACKEND_FILE,
    LOG_FILE,
    RESULT_FILE,
    SPEC_FILE,
    STOP_FILE,
    RunResult,
    RunSpec,
)
from engine.training.guardrails import check_guardrails
from engine.training.registry import (
    RegistryError,
    last_step,
    read_backend,
    read_result,
    register_candidate,
)
from engine.training.run_view import TrainingRun, runs_query
from engine.training.start_options import (
    METHOD_FOR_FORMAT,
    TrainingRunError,
    build_hyper,
    configured_hyper,
)

JOB_KIND = TRAINING_KIND
ACTIVE = ("running", "stopping")
RESUMABLE = ("stopped", "failed")
LOG_TAIL_LINES = 20


def frozen_base(ws: Workspace, kind: BaseModelKind, verify: bool = False) -> BaseVersion:
    """The role's current base version, which `[training] base_models` must name (the role's
    first is registered on first use). With `verify`, its files are hashed against the record.
    Refused when unset, not a model folder, an adapter or a merge, or not the current version
    (`engine.bases.registry`)."""
    try:
        return ensure_base(ws, kind, TRAINING_KEY, verify=verify)
    except BaseRegistryError as exc:
        raise TrainingRunError(str(exc)) from exc


def build_spec(
    ws: Workspace,
    dataset_id: str,
    stage: str,
    method: str | None = None,
    overrides: dict[str, Any] | None = None,
    from_version: str | None = None,
) -> RunSpec:
    """The spec of a run of `dataset_id` for `stage`, every input checked.

    An execute_code DPO run continues the stage's SFT adapter (`from_version`, else the newest
    SFT version not rejected): its LoRA shape is that adapter's and it starts from its weights.
    """
    # Imported here: dataset files cost about 0.1 s that `cra train status` does not need.
    from engine.training_data.dataset_files import ROW_FILES, open_dataset, read_verified

    stage = require_lora_stage(stage, "LoRA adapter to train")
    # The settings first: a bad one is named whatever the dataset.
    configured_hyper(ws.config.training, stage)
    overrides = {**ws.config.training.hyper.get(stage, {}), **(overrides or {})}
    build_hyper(stage, overrides)
    stored = open_dataset(ws, dataset_id)
    for name in ROW_FILES:
        read_verified(stored, name)
    manifest = stored.manifest
    if manifest.stage != stage:
        raise TrainingRunError(
            f"dataset {dataset_id} is {manifest.stage} data; it cannot train the {stage} adapter"
        )
    fits = METHOD_FOR_FORMAT[manifest.format]
    if method is not None and method != fits:
        raise TrainingRunError(
            f"dataset {dataset_id} holds {manifest.format} rows, which train with {fits}, "
            f"not {method}"
        )
    (sha,) = ws.db.execute(
        "SELECT manifest_sha256 FROM datasets WHERE id = ?", [dataset_id]
    ).fetchone()
    base = frozen_base(ws, manifest.base_model, verify=True)
    parent = None
    if (manifest.stage, fits) == ("execute_code", "dpo"):
        parent = sft_parent(ws, from_version, base)
        overrides = _parent_shape(parent, overrides)
    elif from_version is not None:
        raise TrainingRunError(
            f"--from-version {from_version}: only an execute_code DPO run continues an adapter "
            f"(this run is {manifest.stage} {fits})"
        )
    try:
        return RunSpec(
            stage=manifest.stage,
            method=fits,
            base_model=manifest.base_model,
            base_model_path=base.path,
            base_version=base.name,
            dataset_id=dataset_id,
            dataset_path=stored.path.relative_to(ws.root).as_posix(),
            dataset_sha256=sha,
            backend=ws.config.training.backend,
            hyper=build_hyper(manifest.stage, overrides),
            continues=None if parent is None else parent.name,
            continues_path=None if parent is None else parent.path,
        )
    except ValidationError as exc:
        raise TrainingRunError(validation_lines(f"run of {dataset_id}", exc)) from exc


_SHAPE = ("rank", "alpha", "dropout", "target_modules")


def sft_parent(ws: Workspace, name: str | None, base: BaseVersion) -> AdapterVersion:
    """The execute_code SFT version a DPO run continues: `name`, else the newest SFT version
    not rejected. Refused when there is none, or it is not an SFT execute_code adapter on the
    same frozen base, or its files differ from their record."""
    rule = "execute_code trains SFT then DPO on one adapter (LoRA Training Strategy §1)"
    if name is None:
        rows = list(
            ws.db.query(
                "SELECT * FROM adapter_versions WHERE stage = 'execute_code' AND "
                "status != 'rejected' AND json_extract(spec_json, '$.method') = 'sft' "
                "ORDER BY version DESC LIMIT 1"
            )
        )
        if not rows:
            raise TrainingRunError(
                f"no execute_code SFT adapter to continue: {rule}; train one on an sft "
                "dataset first (`cra train start --stage execute_code --dataset …`)"
            )
        row = AdapterVersion(**rows[0])
    else:
        row = version_row(ws, name)
    parent = _version_spec(row)
    if (row.stage, parent.method) != ("execute_code", "sft"):
        raise TrainingRunError(
            f"{row.name} is a {row.stage} {parent.method} adapter; {rule}, so its DPO "
            "run continues an execute_code SFT version"
        )
    if row.status == "rejected":
        raise TrainingRunError(f"{row.name} was rejected; a DPO run never continues it")
    if row.base_version_id != base.id:
        raise TrainingRunError(
            f"{row.name} was trained on {trained_on(ws, row)}, not the {base.role} base "
            f"{base.name}; a DPO run continues an adapter of the same base"
        )
    verify_files(ws, row)
    return row


def _version_spec(version: AdapterVersion) -> RunSpec:
    """The spec of the run that trained `version`; refused when none is recorded."""
    if version.spec_json is None:
        raise TrainingRunError(f"{version.name} records no training spec; it cannot be continued")
    return RunSpec.model_validate_json(version.spec_json)


def _parent_shape(parent: AdapterVersion, overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` with the parent's LoRA shape; refused when they change it."""
    hyper = _version_spec(parent).hyper
    shape = {key: getattr(hyper, key) for key in _SHAPE}
    changed = sorted(key for key in _SHAPE if key in overrides and overrides[key] != shape[key])
    if changed:
        raise TrainingRunError(
            f"--set {', '.join(changed)}: a DPO run continuing {parent.name} keeps its LoRA "
            f"shape ({', '.join(f'{key}={shape[key]}' for key in _SHAPE)})"
        )
    return {**overrides, **shape, "target_modules": list(hyper.target_modules)}


def start_run(
    ws: Workspace,
    dataset_id: str,
    stage: str,
    method: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    operator: str | None = None,
    from_version: str | None = None,
) -> int:
    """Start training `stage`'s adapter on `dataset_id` in a worker job; returns the run id.

    The guardrails, the new row and the worker's start happen under the training start lock,
    so two starts (or a start and a reconcile) never both see the GPU free."""
    spec = build_spec(ws, dataset_id, stage, method, overrides, from_version)
    with job_lock(ws, JOB_KIND) as lock:
        _reconcile(ws, lock)
        if not force:
            check_guardrails(ws, datetime.now())
        run_id = _insert_run(ws, spec, operator or ws.config.operator)
        run_dir = ws.training_dir / str(run_id)
        try:
            (ws.training_dir).mkdir(exist_ok=True)
            run_dir.mkdir()
            write_durably(run_dir / SPEC_FILE, (spec.model_dump_json(indent=2) + "\n").encode())
        except OSError as exc:
            reason = f"cannot write {run_dir}: {exc}"
            _set(ws, run_id, status="failed", reason=reason, finished_at=utc_now())
            raise TrainingRunError(f"run {run_id}: cannot write {run_dir}: {exc}") from exc
        _spawn(ws, lock, run_id, run_dir)
    return run_id


def stop_run(ws: Workspace, run_id: int) -> None:
    """Ask the worker to save a checkpoint and stop at its next step."""
    with job_lock(ws, JOB_KIND) as lock:
        _reconcile(ws, lock)
        run = run_row(ws, run_id)
        if run.status != "running":
            raise TrainingRunError(f"run {run_id} is {run.status}; only a running run stops")
        write_durably(ws.root / run.run_dir / STOP_FILE, b"")
        _set(ws, run_id, status="stopping", reason="stop asked by the operator")


def resume_run(ws: Workspace, run_id: int, force: bool = False) -> int | None:
    """Start the worker of a stopped or failed run again on its folder; returns the job id.

    A run whose worker finished but whose adapter could not be registered is registered now
    instead, and no worker starts (returns None). Refused while a worker runs on the folder.
    """
    with job_lock(ws, JOB_KIND) as lock:
        _reconcile(ws, lock)
        run = run_row(ws, run_id)
        if run.status not in RESUMABLE:
            raise TrainingRunError(
                f"run {run_id} is {run.status}; only a stopped or failed run resumes"
            )
        job = lock.running(run_id)
        if job is not None:
            raise TrainingRunError(
                f"run {run_id} is {run.status}, yet its job {job.id} (pid {job.pid}) "
                f"still runs on {run.run_dir}; one worker per run folder"
            )
        run_dir = ws.root / run.run_dir
        result = read_result(run_dir)
        if result is not None and result.status == "done":
            _finish_done(ws, run_id, result)
            return None
        if not force:
            check_guardrails(ws, datetime.now(), except_run=run_id)
        for name in (STOP_FILE, RESULT_FILE, BACKEND_FILE):
            (run_dir / name).unlink(missing_ok=True)
        fsync_dir(run_dir)
        _set(ws, run_id, status="running", reason="", backend=None, finished_at=None)
        return _spawn(ws, lock, run_id, run_dir)


def reconcile_runs(ws: Workspace) -> list[int]:
    """Read running runs' folders back; returns the ids of runs whose worker has ended."""
    return settle(ws, JOB_KIND, _reconcile)


def _reconcile(ws: Workspace, lock: JobLock) -> list[int]:
    ended = []
    for run in list(ws.db["training_runs"].rows_where("status IN (?, ?)", list(ACTIVE))):
        run_dir = ws.root / run["run_dir"]
        step = last_step(run_dir)
        if step is not None:
            _set(ws, run["id"], step=step.step, max_steps=step.max_steps, loss=step.loss)
        choice = read_backend(run_dir)
        if choice is not None and choice.backend != run["backend"]:
            _set(ws, run["id"], backend=choice.backend)
        if lock.running(run["id"]) is not None:
            continue
        _settle(ws, run["id"], run_dir, latest_job(ws, JOB_KIND, run["id"]))
        ended.append(run["id"])
    return ended


_RUNS_QUERY = runs_query(TrainingRun)


def run_row(ws: Workspace, run_id: int) -> TrainingRun:
    """Run `run_id`, with the adapter version it registered (None when none)."""
    rows = ws.db.query(f"{_RUNS_QUERY} WHERE r.id = ?", [run_id])
    run = next((TrainingRun.model_validate(row) for row in rows), None)
    if run is None:
        raise TrainingRunError(f"there is no training run {run_id}; `cra train status` lists them")
    return run


def list_runs(ws: Workspace) -> list[TrainingRun]:
    """Every run, newest first, with the adapter version each registered (None when none)."""
    return [
        TrainingRun.model_validate(row) for row in ws.db.query(f"{_RUNS_QUERY} ORDER BY r.id DESC")
    ]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of the log at `path`; empty when there is none."""
    return file_tail(path, lines)


def _insert_run(ws: Workspace, spec: RunSpec, operator: str) -> int:
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        run_id = ws.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM training_runs").fetchone()[0]
        ws.db.table("training_runs").insert(
            {
                "id": run_id,
                "stage": spec.stage,
                "base_model": spec.base_model,
                "method": spec.method,
                "dataset_id": spec.dataset_id,
                "spec_json": spec.model_dump_json(),
                "status": "running",
                "reason": "",
                "run_dir": f"{TRAINING_DIR}/{run_id}",
                "created_at": utc_now(),
                "created_by": operator,
            }
        )
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    ws.db.execute("COMMIT")
    return run_id


def _spawn(ws: Workspace, lock: JobLock, run_id: int, run_dir: Path) -> int:
    argv = [sys.executable, "-m", "engine.training.worker", str(run_dir)]
    try:
        job_id = lock.spawn(run_id, argv)
    except CraError as exc:
        _set(ws, run_id, status="failed", reason=str(exc), finished_at=utc_now())
        raise
    _set(ws, run_id, started_at=utc_now())
    return job_id


def _settle(ws: Workspace, run_id: int, run_dir: Path, job: JobRow | None) -> None:
    """Record how a run whose job is gone ended, from what its worker left behind."""
    try:
        result = read_result(run_dir)
        why = None if result else f"the worker exited without {RESULT_FILE}"
    except RegistryError as exc:
        result, why = None, str(exc)
    if job is not None and job.status in LIVE:
        finish_job(ws, job.id, "failed" if why else "exited", why or "")
    if result is None:
        reason = "\n".join([f"{why}; what it said last:", *_last_words(ws, run_dir, job)])
        _set(ws, run_id, status="failed", reason=reason, finished_at=utc_now())
    elif result.status == "stopped":
        _set(
            ws,
            run_id,
            status="stopped",
            reason=f"stopped at step {result.steps} of {result.max_steps}",
            backend=result.backend,
            step=result.steps,
            max_steps=result.max_steps,
            finished_at=utc_now(),
        )
    else:
        _finish_done(ws, run_id, result)


def _last_words(ws: Workspace, run_dir: Path, job: JobRow | None) -> list[str]:
    """The end of train.log (the worker's output once it runs) and of the job's own log
    (what the process said before that, such as an import error)."""
    job_log = None if job is None or job.log_path is None else ws.root / job.log_path
    logs = [run_dir / LOG_FILE] + ([job_log] if job_log is not None else [])
    said = [f"-- {path.relative_to(ws.root)}:\n{tail}" for path in logs if (tail := log_tail(path))]
    return said or ["(nothing: no log has any output)"]


def _finish_done(ws: Workspace, run_id: int, result: RunResult) -> None:
    """Register the adapter of a run whose worker finished, and mark the run done."""
    try:
        adapter_id = register_candidate(ws, run_id)
    except RegistryError as exc:
        _set(
            ws,
            run_id,
            status="failed",
            reason=f"trained, but the adapter could not be registered: {exc}; "
            "`cra train resume` registers it again",
            backend=result.backend,
            finished_at=utc_now(),
        )
        return
    _set(
        ws,
        run_id,
        status="done",
        reason="",
        backend=result.backend,
        step=result.steps,
        max_steps=result.max_steps,
        loss=result.final_loss,
        adapter_id=adapter_id,
        finished_at=utc_now(),
    )


def _set(ws: Workspace, run_id: int, **fields: Any) -> None:
    ws.db.table("training_runs").update(run_id, fields)
