"""`cra doctor`: is this machine ready for a night? One line per check, each ok, warn or fail.

What a night needs: the sandbox and git (the harness), a GPU with free memory and a CUDA build
of torch (training), the GPU set at its pinned versions (Unsloth for training, vLLM for serving,
in its own environment), room on the workspace's disk, a sound database, and the bases and
active adapters whose files are still the registered ones. A check never changes anything; a
`fail` is something the night would trip over, a `warn` something it would run without (the
CPU beside a GPU) or that may need a look.
"""

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from importlib import metadata
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict

from engine.adapters.activation import AdapterFilesError, list_versions, unservable, verify_files
from engine.bases.registry import (
    BaseRegistryError,
    check_configured,
    configured_keys,
    current_base,
    problems_line,
    verify_base,
)
from engine.bundle.vllm_env import check_pinned, installed_vllm
from engine.core.errors import CraError
from engine.core.sizes import human_size
from engine.core.stages import BaseModelKind
from engine.core.workspace import DB_FILE, Workspace
from engine.isolation.sandbox import check_isolation
from engine.serving.command import vllm_executable
from engine.serving.vllm_client import VLLM_PIN
from engine.training.training_set import TrainingSet, TrainingSetRefused, installed_version

Status = Literal["ok", "warn", "fail"]
DISTRIBUTION = "cra-console"
GPU_EXTRA = "gpu"
DISK_FAIL_BYTES = 5 * 1024**3
DISK_WARN_BYTES = 20 * 1024**3
"""A night writes checkpoints, adapters, eval answers and logs: a few GiB at most; under 5 GiB
free a checkpoint can fail half-written, under 20 GiB a week of nights may not fit."""
VRAM_WARN_BYTES = 8 * 1024**3
"""Under this much free on a GPU, a 3-4B base in 4-bit with its LoRA does not train."""
PROBE_TIMEOUT_S = 60
ROLES: tuple[BaseModelKind, ...] = ("reasoning", "coding")


class Check(BaseModel):
    """One line of the doctor's answer."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Status
    detail: str


def run_checks(ws: Workspace) -> list[Check]:
    """Every check, in the order a night needs them."""
    checks = [
        _console(),
        _guarded("sandbox", _sandbox),
        _guarded("git", _git),
        *_gpu(),
        _guarded("torch", _torch),
        *_gpu_set(ws),
        _guarded("vllm", lambda: _vllm(ws)),
        _guarded("disk", lambda: _disk(ws)),
        _guarded("database", lambda: _database(ws)),
    ]
    checks += [_guarded(f"base {role}", partial(_base, ws, role)) for role in ROLES]
    checks.append(_guarded("adapters", lambda: _adapters(ws)))
    return checks


def _guarded(name: str, check: Callable[[], tuple[Status, str]]) -> Check:
    """Run one check; a CraError it raises is its failure, said in its line."""
    try:
        status, detail = check()
    except CraError as exc:
        return Check(name=name, status="fail", detail=str(exc))
    return Check(name=name, status=status, detail=detail)


def _console() -> Check:
    version = metadata.version(DISTRIBUTION)
    python = ".".join(map(str, sys.version_info[:3]))
    return Check(name="console", status="ok", detail=f"cra {version} on Python {python}")


def _sandbox() -> tuple[Status, str]:
    check_isolation()
    return "ok", "bubblewrap isolates (namespaces, no network, no capabilities)"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CraError(f"`{argv[0]}` could not be run: {exc}") from exc


def _git() -> tuple[Status, str]:
    git = shutil.which("git")
    if git is None:
        return "fail", "git is not on PATH (the harness reads every package's history with it)"
    done = _run([git, "--version"])
    return "ok", done.stdout.strip()


def _gpu() -> list[Check]:
    """One line per GPU nvidia-smi lists: its name and free memory."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        detail = "no NVIDIA GPU (nvidia-smi is not on PATH): training and serving run on the CPU"
        return [Check(name="gpu", status="warn", detail=detail)]
    query = "--query-gpu=index,name,memory.total,memory.free"
    done = _run([smi, query, "--format=csv,noheader,nounits"])
    if done.returncode != 0:
        detail = f"nvidia-smi failed (exit {done.returncode}): {done.stderr.strip()[:200]}"
        return [Check(name="gpu", status="fail", detail=detail)]
    checks = []
    for line in done.stdout.strip().splitlines():
        try:
            index, name, total, free = (part.strip() for part in line.split(","))
            total_b, free_b = int(total) * 1024**2, int(free) * 1024**2
        except ValueError:
            detail = f"nvidia-smi printed {line!r}, not index, name, total MiB, free MiB"
            return [Check(name="gpu", status="fail", detail=detail)]
        status: Status = "ok" if free_b >= VRAM_WARN_BYTES else "warn"
        detail = f"{name}: {human_size(free_b)} free of {human_size(total_b)}"
        if status == "warn":
            detail += " (a server or another job holds it? a night stops the servers first)"
        checks.append(Check(name=f"gpu {index}", status=status, detail=detail))
    return checks or [Check(name="gpu", status="fail", detail="nvidia-smi lists no GPU")]


def _torch() -> tuple[Status, str]:
    """The installed torch's build: a CPU build on a machine with a GPU trains on the CPU."""
    # Imported here: torch costs seconds that the other checks do not need.
    import torch

    version = torch.__version__
    if torch.version.cuda is None:
        status: Status = "fail" if shutil.which("nvidia-smi") else "warn"
        return status, f"torch {version}, a CPU build: training runs on the CPU"
    if not torch.cuda.is_available():
        return "fail", f"torch {version} (CUDA {torch.version.cuda}) sees no usable GPU"
    return "ok", f"torch {version}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)"


def gpu_pins() -> list[Requirement]:
    """The GPU training set the console pins: its `gpu` extra."""
    pins = []
    for text in metadata.requires(DISTRIBUTION) or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise CraError(f"{DISTRIBUTION}'s metadata lists {text!r}: {exc}") from exc
        marker = requirement.marker
        in_extra = marker is not None and marker.evaluate({"extra": GPU_EXTRA})
        if in_extra and marker is not None and not marker.evaluate({"extra": ""}):
            requirement.marker = None
            pins.append(requirement)
    return pins


def _gpu_set(ws: Workspace) -> list[Check]:
    """Which of the two supported training sets is installed, named as a run's worker names it
    in its first lines, and whether `[training] backend` trains on it: a fail where the worker
    would refuse every run; a warn for the CPU set beside an NVIDIA GPU, and for plain trl on
    CUDA without bitsandbytes (runs asking 4-bit or the 8-bit optimiser are refused). With
    Unsloth, every pin of the `gpu` extra must hold too, since the set was resolved as a whole."""
    pins = gpu_pins()
    if not pins:
        detail = f"{DISTRIBUTION} declares no `{GPU_EXTRA}` extra; nothing to check"
        return [Check(name="gpu set", status="fail", detail=detail)]
    machine = TrainingSet.detect()
    setting = ws.config.training.backend
    try:
        backend, _ = machine.backend(setting)
    except TrainingSetRefused as exc:
        checks = [Check(name="gpu set", status="fail", detail=f"{machine.describe()}: {exc}")]
    else:
        status: Status = "ok"
        detail = f'{machine.describe()}: [training] backend = "{setting}" trains on {backend}'
        if not machine.cuda and shutil.which("nvidia-smi"):
            status, detail = "warn", f"{detail}, on the CPU beside an NVIDIA GPU"
        elif machine.cuda and machine.bitsandbytes is None:
            status = "warn"
            detail += "; without bitsandbytes, runs asking quantize_4bit or adamw_8bit are refused"
        checks = [Check(name="gpu set", status=status, detail=detail)]
    if machine.unsloth is None:
        return checks
    for pin in pins:
        installed = installed_version(pin.name)
        if installed is None:
            detail = f"not installed; the GPU set pins {pin}"
            checks.append(Check(name=pin.name, status="fail", detail=detail))
        elif pin.specifier.contains(installed, prereleases=True):
            checks.append(Check(name=pin.name, status="ok", detail=f"{installed} ({pin})"))
        else:
            detail = f"{installed} is installed, the GPU set pins {pin}"
            checks.append(Check(name=pin.name, status="fail", detail=detail))
    return checks


def _vllm(ws: Workspace) -> tuple[Status, str]:
    """The `vllm` that `cra serve --launch` would start (in `[serving] vllm_env`), and its
    version against the pin, read by that environment's own Python."""
    executable = vllm_executable(ws)
    env = executable.parent.parent
    if not executable.is_file():
        needed = ws.config.serving.bases and ws.config.evaluation.backend == "server"
        status: Status = "fail" if needed else "warn"
        return status, (
            f"no vllm in {env} ([serving] vllm_env); `cra serve --install-vllm BUNDLE/vllm` "
            f"installs {VLLM_PIN} there"
        )
    version = installed_vllm(env / "bin" / "python")
    check_pinned(version, env)
    return "ok", f"vllm {version} in {env}"


def _disk(ws: Workspace) -> tuple[Status, str]:
    usage = shutil.disk_usage(ws.root)
    detail = f"{human_size(usage.free)} free under {ws.root}"
    if usage.free < DISK_FAIL_BYTES:
        return (
            "fail",
            f"{detail}: a checkpoint may not fit (at least {human_size(DISK_FAIL_BYTES)})",
        )
    if usage.free < DISK_WARN_BYTES:
        return "warn", f"{detail} (under {human_size(DISK_WARN_BYTES)})"
    return "ok", detail


def _database(ws: Workspace) -> tuple[Status, str]:
    rows = [row[0] for row in ws.db.execute("PRAGMA integrity_check").fetchall()]
    if rows == ["ok"]:
        return "ok", f"{DB_FILE}: integrity check ok"
    shown = "; ".join(rows[:3]) + (f" (and {len(rows) - 3} more)" if len(rows) > 3 else "")
    return "fail", f"{DB_FILE}: integrity check found {shown}"


def _base(ws: Workspace, role: BaseModelKind) -> tuple[Status, str]:
    """The role's current base, its files hashed against the record; a configured folder that
    is not the registered one fails, as training and serving would."""
    configured = configured_keys(ws, role)
    current = current_base(ws, role)
    if current is None:
        if not configured:
            return "ok", "not configured (no stage of this role trains or serves)"
        return "warn", "configured, not registered yet (registered on its first use)"
    try:
        for key in configured:
            check_configured(ws, role, key, current)
    except BaseRegistryError as exc:
        return "fail", str(exc)
    problems = verify_base(ws, current)
    if problems:
        return "fail", f"{current.name}: {problems_line(problems)}"
    return "ok", f"{current.name}: {len(current.files)} files match ({human_size(current.size)})"


def _adapters(ws: Workspace) -> tuple[Status, str]:
    """The active versions: their files as registered, each on its role's current base."""
    active = [row for row in list_versions(ws) if row.status == "active"]
    if not active:
        return "ok", "no version is active: every stage runs on its bare base"
    problems = []
    stranded = []
    for row in active:
        if unservable(ws, row) is not None:
            stranded.append(row.name)
            continue
        try:
            verify_files(ws, row)
        except AdapterFilesError as exc:
            problems.append(str(exc))
    if problems:
        return "fail", "; ".join(problems)
    names = ", ".join(row.name for row in active if row.name not in stranded)
    if stranded:
        return "warn", (
            f"on an older base, never served: {', '.join(stranded)} (`cra train-plan`)"
            + (f"; files match: {names}" if names else "")
        )
    return "ok", f"files match: {names}"


def checks_json(checks: list[Check]) -> str:
    return json.dumps([check.model_dump() for check in checks], indent=2)
