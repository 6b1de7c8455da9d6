"""vLLM's own environment: built offline from a folder of wheels, checked against the pin.

vLLM needs another torch than the console's (vllm 0.34.0: torch 2.14.0), so it cannot be
installed beside it; it lives in a virtual environment of its own, `[serving] vllm_env`, whose
`bin/vllm` is what `cra serve --launch` starts. `cra serve --install-vllm FOLDER` makes that
environment with the bundled uv from the wheels in FOLDER alone, on the console's Python: the
offline bundle's `vllm/` (`cra bundle --vllm`), whose `requirements.lock` is installed exactly
from its `wheels/`, each wheel by its sha256; or any folder of wheels, from which the pinned
vLLM is resolved. The installed version is read back with the environment's own Python. A
failed install leaves no environment behind.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

from engine.bundle.manifest import LOCK_FILE, WHEELS_DIR
from engine.core.errors import CraError
from engine.core.staged import remove_tree
from engine.core.workspace import Workspace
from engine.isolation.uvtool import offline_install_args, run_uv_step
from engine.serving.command import vllm_executable
from engine.serving.vllm_client import VLLM_PIN

VERSION_QUERY = "import importlib.metadata as m; print(m.version('vllm'))"
QUERY_TIMEOUT_S = 60


class VllmEnvError(CraError):
    """vLLM's environment cannot be made, or holds another vLLM than the pinned one."""


def vllm_env_dir(ws: Workspace) -> Path:
    return vllm_executable(ws).parent.parent


def installed_vllm(python: Path) -> str:
    """The vllm version `python` (an environment's interpreter) has installed."""
    try:
        done = subprocess.run(
            [str(python), "-c", VERSION_QUERY],
            capture_output=True,
            text=True,
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VllmEnvError(f"{python} could not be run to read vllm's version: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise VllmEnvError(f"{python} cannot read vllm's version: {last}")
    return done.stdout.strip()


def check_pinned(version: str, where: Path) -> None:
    if not Requirement(VLLM_PIN).specifier.contains(version, prereleases=True):
        raise VllmEnvError(f"vllm {version} in {where}; the console is checked against {VLLM_PIN}")


def install_vllm(ws: Workspace, wheels: Path) -> tuple[Path, str]:
    """Make `[serving] vllm_env` from `wheels` and install `VLLM_PIN` there (exactly the
    folder's `requirements.lock`, from its `wheels/`, when it has one), offline; returns the
    environment and the version installed. Refused when the environment's folder exists and
    is not empty, or when `wheels` holds no complete set."""
    env = vllm_env_dir(ws)
    if not wheels.is_dir():
        raise VllmEnvError(f"{wheels}: not a folder of wheels")
    if env.exists() and any(env.iterdir()):
        raise VllmEnvError(
            f"{env} ([serving] vllm_env) exists and is not empty; remove it, or name another "
            f"folder in {ws.config_path}"
        )
    env.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="cra-vllm-env-") as scratch:
            step = f"making {env}: uv"
            venv = ["venv", "--python", sys.executable, str(env)]
            run_uv_step(f"{step} venv", venv, ws.root, Path(scratch))
            python = env / "bin" / "python"
            locked = wheels / LOCK_FILE
            if locked.is_file():
                found = wheels / WHEELS_DIR
                wanted = ["--require-hashes", "-r", str(locked)]
            else:
                found, wanted = wheels, [VLLM_PIN]
            install = [*offline_install_args(found, python), *wanted]
            run_uv_step(f"{step} pip", install, ws.root, Path(scratch))
        version = installed_vllm(python)
        check_pinned(version, env)
        if not vllm_executable(ws).is_file():
            raise VllmEnvError(f"vllm {version} is installed in {env}, but it has no bin/vllm")
    except CraError:
        if env.exists():
            remove_tree(env)
        raise
    return env, version
