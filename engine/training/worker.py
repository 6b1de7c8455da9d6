"""`python -m engine.training.worker RUN_DIR`: train the run whose spec is in RUN_DIR.

The console starts it with the workspace as the current directory and reads back only the
files of `engine.training.contract`. The worker appends its output to `train.log`, checks the
spec, the base model and the dataset before loading anything heavy (a refusal is one line in the
log and exit status 2), resumes from the newest complete checkpoint when there is one, trains
on Unsloth when CUDA and Unsloth are there and on transformers + peft + trl otherwise, then
writes the adapter (done) or nothing more (stopped) and `result.json` last.
"""

import importlib.metadata
import importlib.util
import io
import os
import secrets
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from packaging.version import Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.core.durable import fsync_dir, fsync_tree
from engine.core.errors import CraError, validation_lines
from engine.core.timestamps import utc_now
from engine.training.contract import (
    ADAPTER_CONFIG,
    ADAPTER_DIR,
    BACKEND_FILE,
    CHECKPOINTS_DIR,
    LOG_FILE,
    RESULT_FILE,
    SPEC_FILE,
    Backend,
    BackendChoice,
    RunResult,
    RunSpec,
)
from engine.training.datasets_io import load_train_rows
from engine.training.job import Job, Trained

TRAINER_STATE = "trainer_state.json"
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


CPU_TRL = Version("1.16")
"""The oldest trl that trains on the CPU: 1.15.0's loss kernel needs triton, which needs CUDA."""


class RunRefused(CraError):
    """The run cannot start: its folder, spec or base model is unusable, or it is done."""


class CheckpointState(BaseModel):
    """The part of a checkpoint's trainer_state.json the worker reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    global_step: int = Field(ge=0)


def main(argv: Sequence[str] | None = None) -> int:
    """The worker's entry point: 0 when it wrote result.json, 2 when the run was refused."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m engine.training.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    if not run_dir.is_dir():
        print(f"error: {run_dir}: not a run folder", file=sys.stderr)
        return 2
    _append_output_to(run_dir / LOG_FILE)
    os.environ.update(OFFLINE_ENV)
    # transformers' deprecation notices, raised from inside trl, repeat at every checkpoint and
    # are not the operator's to act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    print(f"worker {os.getpid()} started at {utc_now()} in {Path.cwd()}")
    try:
        result = run(run_dir, Path.cwd())
    except CraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.status} at step {result.steps}/{result.max_steps} at {utc_now()}")
    return 0


def run(run_dir: Path, workspace: Path) -> RunResult:
    """Train the run in `run_dir` (paths in its spec are relative to `workspace`)."""
    spec = load_spec(run_dir)
    previous = _previous_result(run_dir)
    base_path = workspace / spec.base_model_path
    if not (base_path / "config.json").is_file():
        raise RunRefused(f"{base_path}: base model folder has no config.json")
    continues = None
    if spec.continues_path is not None:
        continues = workspace / spec.continues_path
        if not (continues / ADAPTER_CONFIG).is_file():
            raise RunRefused(
                f"{continues}: adapter {spec.continues} to continue has no {ADAPTER_CONFIG}"
            )
    rows = load_train_rows(workspace / spec.dataset_path, spec)
    resume_from, resume_step = newest_checkpoint(run_dir / CHECKPOINTS_DIR)
    if previous is not None:
        print(f"continuing a run that stopped at step {previous.steps}")
        (run_dir / RESULT_FILE).unlink()
    if resume_from is not None:
        print(f"resuming from {resume_from.relative_to(run_dir)} at step {resume_step}")
    job = Job(spec, run_dir, base_path, rows, resume_from, resume_step, continues)
    backend, why = pick_backend(spec)
    choice = BackendChoice(backend=backend, why=why)
    _write_beside(run_dir / BACKEND_FILE, choice.model_dump_json() + "\n")
    print(f"backend: {backend} ({why}); {spec.method} on {len(rows)} rows of {spec.dataset_id}")
    if spec.continues is not None:
        print(f"continuing adapter {spec.continues} ({spec.continues_path})")
    if backend == "unsloth":
        from engine.training.backend_unsloth import train
    else:
        from engine.training.backend_trl import train
    trained = train(job)
    adapter = None
    if not trained.stopped:
        save_adapter(trained, run_dir)
        adapter = ADAPTER_DIR
    result = RunResult(
        status="stopped" if trained.stopped else "done",
        backend=backend,
        steps=trained.steps,
        max_steps=trained.max_steps,
        final_loss=trained.final_loss,
        train_runtime_s=trained.runtime_s,
        effective=trained.effective,
        adapter_dir=adapter,
    )
    _write_beside(run_dir / RESULT_FILE, result.model_dump_json(indent=2) + "\n")
    return result


def load_spec(run_dir: Path) -> RunSpec:
    path = run_dir / SPEC_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunRefused(f"{path}: cannot read: {exc}") from exc
    try:
        return RunSpec.model_validate_json(data)
    except ValidationError as exc:
        raise RunRefused(validation_lines(str(path), exc).replace("\n", "; ")) from exc


def pick_backend(spec: RunSpec) -> tuple[Backend, str]:
    """Unsloth when CUDA is available and Unsloth is installed; trl otherwise (and for a run
    continuing an adapter, which peft loads trainable), and why."""
    import torch

    if spec.continues is not None:
        return "trl", f"continues adapter {spec.continues}, which peft loads trainable"
    if not torch.cuda.is_available():
        trl_version = Version(importlib.metadata.version("trl"))
        if trl_version < CPU_TRL:
            raise RunRefused(
                f"no CUDA, and trl {trl_version} cannot train on the CPU (its loss kernel needs "
                f"triton); the CPU set needs trl >= {CPU_TRL} (the GPU set pins 1.15.0 for Unsloth)"
            )
        return "trl", "no CUDA"
    if importlib.util.find_spec("unsloth") is None:
        return "trl", "CUDA, but unsloth is not installed"
    return "unsloth", "CUDA and unsloth"


def newest_checkpoint(checkpoints: Path) -> tuple[Path | None, int]:
    """The newest complete `checkpoint-<step>` folder and its step; (None, 0) when none is.

    The trainer writes `trainer_state.json` last, so a folder without a readable one was cut
    short by a kill and is passed over.
    """
    if not checkpoints.is_dir():
        return None, 0
    found = []
    for folder in checkpoints.glob("checkpoint-*"):
        try:
            state = CheckpointState.model_validate_json((folder / TRAINER_STATE).read_bytes())
        except (OSError, ValidationError):
            print(f"skipping {folder.name}: no complete {TRAINER_STATE}")
            continue
        found.append((state.global_step, folder))
    if not found:
        return None, 0
    step, folder = max(found)
    return folder, step


def save_adapter(trained: Trained, run_dir: Path) -> None:
    """The final adapter and its tokenizer, written beside `adapter/` and renamed into place."""
    staging = run_dir / f".{ADAPTER_DIR}.partial-{secrets.token_hex(6)}"
    trained.model.save_pretrained(staging)
    trained.tokenizer.save_pretrained(staging)
    fsync_tree(staging)
    target = run_dir / ADAPTER_DIR
    if target.exists():
        print(f"replacing {ADAPTER_DIR}/ left by a run that wrote no {RESULT_FILE}")
        shutil.rmtree(target)
    staging.rename(target)
    fsync_dir(run_dir)


def _previous_result(run_dir: Path) -> RunResult | None:
    """The result of a stopped run being continued; a done run is refused."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        previous = RunResult.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise RunRefused(validation_lines(str(path), exc).replace("\n", "; ")) from exc
    if previous.status == "done":
        raise RunRefused(f"{path}: the run is already done; start a new run to train again")
    return previous


def _write_beside(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with staging.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    staging.replace(path)
    fsync_dir(path.parent)


def _append_output_to(log: Path) -> None:
    """Point this process's stdout and stderr (and its children's) at `log`, appending."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        assert isinstance(stream, io.TextIOWrapper), "the worker's own text streams"
        stream.reconfigure(line_buffering=True)


if __name__ == "__main__":
    sys.exit(main())
