"""Run the uv bundled with the console offline: no config files, no downloads, no index.

Used to resolve a package's requirements from its wheels and to build its environments.
"""

import os
import subprocess
from pathlib import Path

import uv
from packaging.requirements import Requirement

from engine.core.errors import CraError

UV_TIMEOUT_S = 300.0
_REASON_MAX_CHARS = 800


class UvError(CraError):
    """uv could not be run to completion."""


def uv_settings(scratch: Path) -> dict[str, str]:
    """The uv variables every call uses: no config files, no downloads, its cache in `scratch`."""
    return {
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_OFFLINE": "1",
        "UV_NO_PROGRESS": "1",
        "UV_CACHE_DIR": str(scratch / "uv-cache"),
    }


def uv_env(scratch: Path) -> dict[str, str]:
    """A scrubbed environment for uv, built from nothing but `uv_settings`, PATH and LANG.

    HOME and the XDG data folder are kept so uv still finds Pythons it installed earlier.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **uv_settings(scratch),
    }
    for key in ("HOME", "XDG_DATA_HOME", "UV_PYTHON_INSTALL_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def run_uv(
    args: list[str], cwd: Path, scratch: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the bundled uv with `env` (by default `uv_env`, offline); a non-zero exit is the
    caller's to judge."""
    argv = [uv.find_uv_bin(), *args]
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=uv_env(scratch) if env is None else env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=UV_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise UvError(f"uv {' '.join(args[:3])} took longer than {UV_TIMEOUT_S:g}s") from exc


def uv_reason(stderr: str) -> str:
    """uv's error message on one line, trimmed for a report."""
    text = " ".join(line.strip() for line in stderr.splitlines() if line.strip())
    text = text.removeprefix("error: ")
    if len(text) > _REASON_MAX_CHARS:
        text = text[: _REASON_MAX_CHARS - 1] + "…"
    return text


def write_requirements(path: Path, requirements: list[str]) -> Path:
    """Write requirements one per line, re-serialised by packaging so no line can be an option."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{Requirement(r)}\n" for r in requirements), encoding="utf-8")
    return path


class UvStepError(CraError):
    """A step of an offline environment build failed; the message says which step and why."""


def run_uv_step(step: str, args: list[str], cwd: Path, scratch: Path) -> str:
    """uv's stdout for `args`; UvStepError naming `step` and uv's reason when it fails."""
    try:
        result = run_uv(args, cwd, scratch)
    except UvError as exc:
        raise UvStepError(f"{step} failed: {exc}") from exc
    if result.returncode != 0:
        raise UvStepError(f"{step} failed: {uv_reason(result.stderr)}")
    return result.stdout


def offline_install_args(packages: Path, python: Path) -> list[str]:
    """`uv pip install` arguments taking wheels from `packages` only, into `python`'s env."""
    packages_arg = str(packages.absolute())
    return [
        "pip",
        "install",
        "--offline",
        "--no-index",
        "--find-links",
        packages_arg,
        "--python",
        str(python),
    ]


_FOUND_PYTHONS: dict[str, str] = {}


def find_python(python_version: str, cwd: Path, scratch: Path) -> str:
    """The interpreter uv picks for `python_version`, found once per process.

    Discovery runs every candidate interpreter (0.1–0.2 s); a found interpreter is remembered,
    a missing one is looked for again next time (it may have been installed since).
    """
    if python_version in _FOUND_PYTHONS:
        return _FOUND_PYTHONS[python_version]
    try:
        found = run_uv(["python", "find", "--no-project", python_version], cwd, scratch)
    except UvError as exc:
        raise UvStepError(f"looking for Python {python_version} failed: {exc}") from exc
    if found.returncode != 0:
        raise UvStepError(
            f"looking for Python {python_version} failed: Python {python_version} (manifest "
            "python_version) is not installed on this machine and downloads are disabled: "
            f"{uv_reason(found.stderr)}"
        )
    _FOUND_PYTHONS[python_version] = found.stdout.strip()
    return _FOUND_PYTHONS[python_version]


def build_offline_venv(
    python_version: str,
    requirements: list[str],
    packages: Path,
    dest: Path,
    scratch: Path,
    *,
    relocatable: bool = False,
) -> tuple[Path, str]:
    """Create `dest/venv` with `requirements` installed from the wheels in `packages` only.

    Returns the environment's python and the interpreter it was made from. Installing wheels
    runs no code from them, so this runs outside the sandbox; uv never builds a source tree.
    """
    interpreter = find_python(python_version, dest, scratch)
    venv = dest / "venv"
    extra = ["--relocatable"] if relocatable else []
    run_uv_step(
        f"creating the Python {python_version} environment",
        ["venv", "--offline", "--no-project", *extra, "--python", interpreter, str(venv)],
        dest,
        scratch,
    )
    python = venv / "bin" / "python"
    req_file = write_requirements(dest / "requirements.txt", requirements)
    run_uv_step(
        f"installing the requirements offline from {packages}",
        [*offline_install_args(packages, python), "--no-build", "-r", str(req_file)],
        dest,
        scratch,
    )
    return python, interpreter
