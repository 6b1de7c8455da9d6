"""Task environments: one virtual environment per (package, Python, requirement set), reused.

An environment is built offline with uv from the package's `packages/` only, in
`envs/.staging/<key>-<random>/`, and renamed to `envs/<key>/` in one step once complete
(`engine.core.staged.build_once`), so a crash leaves nothing that looks ready; the next build of
the same key clears its leftovers. A per-key lock keeps two builders of one key apart. The venv
is relocatable (`uv venv --relocatable`) so the rename does not break it; tests run as
`python -m pytest`.

Its modules are compiled to bytecode once, when it is built: the sandbox mounts it read-only
and tests run with PYTHONDONTWRITEBYTECODE, so without it every test run compiled pytest, its
plugins and every library it imported again (half of a one-second structlog run). An
environment built before that (no `bytecode` in its `build.json`) is compiled on its next use.
Compiling parses the installed sources and runs none of them; Python fixes a module's file name
on import, so the rename does not matter.
"""

import hashlib
import json
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.core.durable import sync_filesystem
from engine.core.staged import build_once
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.package import CorpusPackage, HarnessError
from engine.intake.manifest import MANIFEST_FILE
from engine.isolation.uvtool import UvStepError, build_offline_venv

BUILD_FILE = "build.json"
COMPILE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class TaskEnv:
    """A ready environment: its folder, its python, and whether this call built it."""

    key: str
    path: Path
    built_now: bool

    @property
    def python(self) -> Path:
        return self.path / "venv" / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.path / "venv" / "bin"


def env_key(package: CorpusPackage) -> str:
    """`<digest12>-py<version>-<requirements hash12>`: what the environment depends on."""
    manifest = package.manifest
    reqs = "\n".join(sorted(manifest.requirements)).encode("utf-8")
    req_hash = hashlib.sha256(reqs).hexdigest()[:12]
    return f"{package.digest[:12]}-py{manifest.python_version}-{req_hash}"


def ensure_env(ws: Workspace, package: CorpusPackage) -> TaskEnv:
    """The package's environment, built now if no ready one exists."""
    envs = ws.envs_dir

    def build(staging: Path) -> None:
        _build(package, staging, envs)
        sync_filesystem(staging)

    key = env_key(package)
    path, built_now = build_once(envs, key, BUILD_FILE, build, when_ready=_compiled)
    return TaskEnv(key=key, path=path, built_now=built_now)


def _build(package: CorpusPackage, dest: Path, scratch: Path) -> None:
    """Build the venv under `dest/venv` and write `dest/build.json` last."""
    manifest = package.manifest
    version = manifest.python_version
    try:
        _, interpreter = build_offline_venv(
            version, manifest.requirements, package.packages, dest, scratch, relocatable=True
        )
    except UvStepError as exc:
        raise HarnessError(f"{package.root / MANIFEST_FILE}: {exc}") from exc
    _compile_bytecode(dest, package.root / MANIFEST_FILE)
    build = {
        "package_digest": package.digest,
        "python_version": version,
        "interpreter": interpreter,
        "requirements": manifest.requirements,
        "built_at": utc_now(),
        "bytecode": True,
    }
    (dest / BUILD_FILE).write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")


def _compiled(env_dir: Path) -> None:
    """Compile a ready environment built without bytecode, then say so in its `build.json`
    (written whole, then renamed over the old one)."""
    build = json.loads((env_dir / BUILD_FILE).read_text(encoding="utf-8"))
    if build.get("bytecode"):
        return
    _compile_bytecode(env_dir, env_dir / BUILD_FILE)
    build["bytecode"] = True
    fresh = env_dir / f"{BUILD_FILE}.{secrets.token_hex(4)}"
    fresh.write_text(json.dumps(build, indent=2) + "\n", encoding="utf-8")
    fresh.rename(env_dir / BUILD_FILE)


def _compile_bytecode(env_dir: Path, named: Path) -> None:
    """Compile every module under the venv's lib/ with its own python, outside the sandbox, so
    without the site module (`-S`): a wheel's `.pth` file can run code when site processes it.
    A file that does not compile is left as it is (compileall's exit status 1): it cannot be
    imported either, and tests that try will say so themselves."""
    python = env_dir / "venv" / "bin" / "python"
    lib = str(env_dir / "venv" / "lib")
    argv = [str(python), "-I", "-S", "-m", "compileall", "-q", "-q", "-j", "0", lib]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=COMPILE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(
            f"{named}: compiling the environment's modules took over {COMPILE_TIMEOUT_S:g}s"
        ) from exc
    if result.returncode not in (0, 1):
        raise HarnessError(
            f"{named}: compiling the environment's modules failed: {result.stderr.strip()[-500:]}"
        )
