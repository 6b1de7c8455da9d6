"""Adapter versions: a finished run's adapter copied to `adapters/<stage>/v<N>/` as a candidate.

N is one above every version of the stage recorded or present on disk, so a number is never
reused, even after a crash between the copy and the record (LoRA Training Strategy §10.5). The copy
is made in a staging folder, flushed and renamed into place; every file's sha256 is recorded. PEFT
writes the base model's absolute path into `adapter_config.json`; the copy names it relative to
the workspace (when the base lies inside it) so the adapter stays valid when the workspace moves.
Registering holds a lock on `adapters/.register.lock`, so two consoles reconciling the same
finished run register it once. Promotion and rollback are not here: a registered version is
always a `candidate`. A version trained on from another (execute_code DPO continuing its SFT
adapter) records that one as its parent.
"""

import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.adapters.activation import AdapterVersion
from engine.bases.registry import base_by_name
from engine.core.db import inserted_id
from engine.core.durable import fsync_dir, fsync_tree
from engine.core.errors import CraError, validation_lines
from engine.core.hashing import sha256_file
from engine.core.locks import exclusive_lock
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training.contract import (
    ADAPTER_CONFIG,
    ADAPTER_DIR,
    BACKEND_FILE,
    METRICS_FILE,
    RESULT_FILE,
    BackendChoice,
    RunResult,
    RunSpec,
    StepRecord,
)

LOCK_FILE = ".register.lock"


class RegistryError(CraError):
    """A run's adapter cannot be registered."""


def version_name(stage: str, version: int) -> str:
    return f"{stage}-v{version}"


def resolve_base(ws: Workspace, version: AdapterVersion) -> Path:
    """The base model folder an adapter version was trained on, as an absolute path."""
    if version.base_model_path is None:
        raise RegistryError(f"{version.name}: no base model folder is recorded")
    path = Path(version.base_model_path)
    return path if path.is_absolute() else ws.root / path


_Model = TypeVar("_Model", bound=BaseModel)


def read_result(run_dir: Path) -> RunResult | None:
    """The run's result.json, or None when the worker has not written one."""
    return _read_model(run_dir / RESULT_FILE, RunResult)


def read_backend(run_dir: Path) -> BackendChoice | None:
    """The backend the run's worker picked (backend.json); None before it has picked one."""
    return _read_model(run_dir / BACKEND_FILE, BackendChoice)


def _read_model(path: Path, model: type[_Model]) -> _Model | None:
    """The JSON file at `path` as `model`; None when the worker has not written it yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc}") from exc
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise RegistryError(validation_lines(str(path), exc)) from exc


def last_step(run_dir: Path) -> StepRecord | None:
    """The last complete line of the run's metrics.jsonl; None before the first step."""
    path = run_dir / METRICS_FILE
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - 65536))
            tail = handle.read()
    except FileNotFoundError:
        return None
    lines = tail.split(b"\n")[:-1]
    if not lines:
        return None
    try:
        return StepRecord.model_validate_json(lines[-1])
    except ValidationError as exc:
        raise RegistryError(validation_lines(f"{path} (last line)", exc)) from exc


def register_candidate(ws: Workspace, run_id: int) -> int:
    """Register the adapter run `run_id` made as the stage's next version; returns its id.

    Registering the same run again returns the version it already has.
    """
    ws.adapters_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(ws.adapters_dir / LOCK_FILE):
        existing = ws.db.execute(
            "SELECT id FROM adapter_versions WHERE run_id = ?", [run_id]
        ).fetchone()
        if existing is not None:
            return existing[0]
        return _register(ws, run_id)


def _register(ws: Workspace, run_id: int) -> int:
    rows = list(ws.db["training_runs"].rows_where("id = ?", [run_id]))
    if not rows:
        raise RegistryError(f"there is no training run {run_id}")
    run = rows[0]
    run_dir = ws.root / run["run_dir"]
    spec = RunSpec.model_validate_json(run["spec_json"])
    result = read_result(run_dir)
    if result is None or result.status != "done" or result.adapter_dir is None:
        state = "no result.json" if result is None else f"result.json says {result.status}"
        raise RegistryError(f"run {run_id} has no finished adapter to register ({state})")
    if result.adapter_dir != ADAPTER_DIR:
        raise RegistryError(
            f"{run_dir / RESULT_FILE}: adapter_dir is {result.adapter_dir!r}, not {ADAPTER_DIR!r}"
        )
    source = run_dir / ADAPTER_DIR
    if not (source / ADAPTER_CONFIG).is_file():
        raise RegistryError(f"{source}: no {ADAPTER_CONFIG}; the run left no PEFT adapter")

    parent_id = None
    if spec.continues is not None:
        parent = ws.db.execute(
            "SELECT id FROM adapter_versions WHERE name = ?", [spec.continues]
        ).fetchone()
        if parent is None:
            raise RegistryError(f"run {run_id} continued {spec.continues}, which is not recorded")
        parent_id = parent[0]
    base_version_id = None
    if spec.base_version is not None:
        base_version_id = base_by_name(ws, spec.base_version).id
    stage_dir = ws.adapters_dir / spec.stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    version = _next_version(ws, spec.stage, stage_dir)
    target = stage_dir / f"v{version}"
    files = _copy_durably(source, stage_dir, target, spec.base_model_path)
    record = {
        "stage": spec.stage,
        "version": version,
        "name": version_name(spec.stage, version),
        "status": "candidate",
        "base_model": spec.base_model,
        "base_model_path": spec.base_model_path,
        "base_version_id": base_version_id,
        "rank": spec.hyper.rank,
        "path": target.relative_to(ws.root).as_posix(),
        "run_id": run_id,
        "parent_id": parent_id,
        "dataset_id": spec.dataset_id,
        "dataset_sha256": spec.dataset_sha256,
        "spec_json": spec.model_dump_json(),
        "metrics_json": json.dumps(_metrics(result, last_step(run_dir)), sort_keys=True),
        "files_json": json.dumps(files, sort_keys=True),
        "created_at": utc_now(),
    }
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        adapter_id = inserted_id(ws.db.table("adapter_versions").insert(record))
        ws.db.table("training_runs").update(run_id, {"adapter_id": adapter_id})
    except BaseException:
        ws.db.execute("ROLLBACK")
        shutil.rmtree(target)
        raise
    ws.db.execute("COMMIT")
    return adapter_id


def _next_version(ws: Workspace, stage: str, stage_dir: Path) -> int:
    row = ws.db.execute(
        "SELECT MAX(version) FROM adapter_versions WHERE stage = ?", [stage]
    ).fetchone()
    numbers = [row[0] or 0]
    numbers += [
        int(match[1])
        for path in stage_dir.iterdir()
        if (match := re.fullmatch(r"v([1-9][0-9]*)", path.name))
    ]
    return max(numbers) + 1


def _copy_durably(source: Path, stage_dir: Path, target: Path, base_path: str) -> dict[str, str]:
    """Copy `source` to `target` via a staging folder; returns each file's sha256."""
    if target.exists() or target.is_symlink():
        raise RegistryError(f"{target} already exists: an adapter version is never overwritten")
    for path in source.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise RegistryError(f"{path}: not a plain file or folder; the adapter is not copied")
    staging = stage_dir / f".{target.name}.partial-{secrets.token_hex(6)}"
    try:
        shutil.copytree(source, staging)
        _rewrite_base(staging / ADAPTER_CONFIG, base_path)
        files = {
            path.relative_to(staging).as_posix(): sha256_file(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        fsync_tree(staging)
        staging.rename(target)
    except BaseException:
        if staging.exists():
            shutil.rmtree(staging)
        raise
    fsync_dir(stage_dir)
    return files


def _rewrite_base(config_path: Path, base_path: str) -> None:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{config_path}: not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise RegistryError(f"{config_path}: not a JSON object")
    config["base_model_name_or_path"] = base_path
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _metrics(result: RunResult, step: StepRecord | None) -> dict[str, Any]:
    return {
        "result": result.model_dump(mode="json"),
        "last_step": step.model_dump(mode="json") if step is not None else None,
    }
