"""`python -m engine.training.worker RUN_DIR`: train the run whose spec is in RUN_DIR.

The console starts it with the workspace as the current directory and reads back only the
files of `engine.training.contract`. The worker appends its output to `train.log`, whose first
lines name the training set the machine has, sets its environment (offline; Unsloth's
generated code in the run folder), checks the spec, the base model, the dataset, the backend
the spec's `[training] backend` takes on this set and the tokenizer's chat template before
loading a model (a refusal is one line in the log and exit status 2), resumes from the newest
complete checkpoint when there is one, trains on Unsloth or on transformers + peft + trl, then
writes the adapter (done, readable by every user) or nothing more (stopped) and `result.json`
last.
"""

import io
import os
import secrets
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.core.durable import fsync_dir, fsync_tree
from engine.core.errors import CraError, validation_lines
from engine.core.timestamps import utc_now
from engine.training.chat_template import check_chat_template
from engine.training.contract import (
    ADAPTER_CONFIG,
    ADAPTER_DIR,
    BACKEND_FILE,
    CHECKPOINTS_DIR,
    LOG_FILE,
    RESULT_FILE,
    SPEC_FILE,
    UNSLOTH_CACHE_DIR,
    Backend,
    BackendChoice,
    RunResult,
    RunSpec,
)
from engine.training.datasets_io import load_train_rows
from engine.training.job import Job, Trained
from engine.training.training_set import GPU_INSTALL, TrainingSet

TRAINER_STATE = "trainer_state.json"
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
READABLE_FILE = 0o644
READABLE_DIR = 0o755


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
    os.environ.update(worker_env(run_dir))
    # transformers' deprecation notices, raised from inside trl, repeat at every checkpoint and
    # are not the operator's to act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    print(f"worker {os.getpid()} started at {utc_now()} in {Path.cwd()}")
    machine = TrainingSet.detect()
    print(f"training set: {machine.describe()}")
    try:
        result = run(run_dir, Path.cwd(), machine)
    except CraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.status} at step {result.steps}/{result.max_steps} at {utc_now()}")
    return 0


def worker_env(run_dir: Path) -> dict[str, str]:
    """The environment the worker sets before anything reads it: Hugging Face offline, and
    Unsloth's generated trainer code in the run folder (read when unsloth is imported; its
    default is the current folder, the workspace) with its statistics call off."""
    return {
        **OFFLINE_ENV,
        "UNSLOTH_COMPILE_LOCATION": str(run_dir.resolve() / UNSLOTH_CACHE_DIR),
        "UNSLOTH_DISABLE_STATISTICS": "1",
    }


def run(run_dir: Path, workspace: Path, machine: TrainingSet) -> RunResult:
    """Train the run in `run_dir` (paths in its spec are relative to `workspace`) on `machine`'s
    training set."""
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
    backend, why = pick_backend(spec, machine)
    if backend == "unsloth":
        # Before the tokenizer check loads transformers: Unsloth patches it, trl and peft as it
        # loads them.
        import unsloth  # noqa: F401
    template = check_chat_template(base_path, spec.method)
    resume_from, resume_step = newest_checkpoint(run_dir / CHECKPOINTS_DIR)
    if previous is not None:
        print(f"continuing a run that stopped at step {previous.steps}")
        (run_dir / RESULT_FILE).unlink()
    if resume_from is not None:
        print(f"resuming from {resume_from.relative_to(run_dir)} at step {resume_step}")
    job = Job(spec, run_dir, base_path, rows, resume_from, resume_step, continues)
    choice = BackendChoice(backend=backend, why=why)
    _write_beside(run_dir / BACKEND_FILE, choice.model_dump_json() + "\n")
    print(f"backend: {backend} ({why}); {spec.method} on {len(rows)} rows of {spec.dataset_id}")
    print(template)
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


def pick_backend(spec: RunSpec, machine: TrainingSet) -> tuple[Backend, str]:
    """The backend the spec's `[training] backend` takes on `machine` (`TrainingSet.backend`),
    and why; trl for a run continuing an adapter, which peft loads trainable. Refused when the
    setting cannot train here, or when the spec asks for 4-bit or the 8-bit optimiser on CUDA
    without bitsandbytes (`backend = "trl"`): never replaced on a GPU behind the operator's
    back."""
    backend, why = machine.backend(spec.backend)
    asked = [
        name
        for name, wanted in (
            ("quantize_4bit", spec.hyper.quantize_4bit),
            ("optimizer adamw_8bit", spec.hyper.optimizer == "adamw_8bit"),
        )
        if wanted
    ]
    if machine.cuda and machine.bitsandbytes is None and asked:
        raise RunRefused(
            f"the run asks for {' and '.join(asked)} on CUDA, which needs bitsandbytes, and it is "
            f"not installed: install it (the GPU set has it: {GPU_INSTALL}), or start the run "
            "with --set quantize_4bit=false --set optimizer=adamw_torch"
        )
    if spec.continues is not None and backend == "unsloth":
        return "trl", f"{why}; continues adapter {spec.continues}, which peft loads trainable"
    return backend, why


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
    """The final adapter and its tokenizer, written beside `adapter/` and renamed into place,
    readable by every user: safetensors writes the weights through a temporary file, mode 0600
    whatever the umask, and a vLLM running as another user must read them."""
    staging = run_dir / f".{ADAPTER_DIR}.partial-{secrets.token_hex(6)}"
    trained.model.save_pretrained(staging)
    trained.tokenizer.save_pretrained(staging)
    make_readable(staging)
    fsync_tree(staging)
    target = run_dir / ADAPTER_DIR
    if target.exists():
        print(f"replacing {ADAPTER_DIR}/ left by a run that wrote no {RESULT_FILE}")
        shutil.rmtree(target)
    staging.rename(target)
    fsync_dir(run_dir)


def make_readable(folder: Path) -> None:
    """`folder` and every folder in it 0755, every file in it 0644."""
    folder.chmod(READABLE_DIR)
    for path in folder.rglob("*"):
        path.chmod(READABLE_DIR if path.is_dir() else READABLE_FILE)


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
