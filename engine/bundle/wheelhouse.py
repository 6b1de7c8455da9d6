"""The wheelhouse: the console's wheel and every wheel it needs, for the target, locked by hash.

`pip download` of the console's wheel (with the bundle's extras) fetches the dependencies: the
running interpreter's pip, so pip's configured indexes and find-links apply, wheels only
(`--only-binary=:all:`), for the target's Python and platforms when given (else this machine's).
Then `uv pip compile --no-index --find-links wheels/ --generate-hashes` resolves the same
requirement from those files alone, offline: a lock that compiles proves the folder complete, and
every pin carries the sha256 of its file there. PEP 440 lets `torch==2.13.0` match a local build
such as `2.13.0+cpu`, and uv pins the local version it found.
"""

import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import platform_tags

from engine.bundle.errors import BundleError
from engine.bundle.steps import run_step
from engine.isolation.uvtool import (
    UvError,
    UvStepError,
    run_uv,
    run_uv_step,
    uv_reason,
    write_requirements,
)

_PYTHON = re.compile(r"^3\.\d{1,2}$")
_MANYLINUX = re.compile(r"^manylinux_2_(?P<minor>\d{1,2})_(?P<arch>x86_64|aarch64)$")
_LEGACY = re.compile(r"^manylinux2014_(?P<arch>x86_64|aarch64)$")
_LINUX = re.compile(r"^linux_(?P<arch>x86_64|aarch64)$")


def _uv_platform(tag: str) -> tuple[int, str] | None:
    """uv's `--python-platform` for a pip platform tag, with the glibc minor it stands for (0
    for plain linux); None for a tag uv cannot take."""
    if match := _MANYLINUX.match(tag):
        return int(match["minor"]), f"{match['arch']}-manylinux_2_{match['minor']}"
    if match := _LEGACY.match(tag):
        return 17, f"{match['arch']}-manylinux2014"
    if match := _LINUX.match(tag):
        return 0, f"{match['arch']}-unknown-linux-gnu"
    return None


@dataclass(frozen=True)
class Target:
    """The air-gapped machine's Python and platform: what pip downloads for and uv locks for.
    `platforms` are pip's platform tags as given (none: this machine's); `platform` is the
    recorded one, `uv_platform` the same for uv."""

    python_version: str
    platforms: tuple[str, ...]
    platform: str
    uv_platform: str

    @property
    def shown(self) -> str:
        return f"Python {self.python_version} on {self.platform}"

    def pip_args(self) -> list[str]:
        """pip download's target options: none for this machine's own. pip matches a given
        platform tag exactly, so a glibc level stands for itself and every older manylinux
        level of its architecture (a glibc 2.36 machine runs manylinux_2_17 wheels)."""
        args = [part for tag in _expanded(self.platforms) for part in ("--platform", tag)]
        if self.python_version != this_python():
            args += ["--python-version", self.python_version]
        return args


def _expanded(platforms: tuple[str, ...]) -> list[str]:
    tags: list[str] = []
    for tag in platforms:
        found = [tag]
        if match := _MANYLINUX.match(tag):
            arch = match["arch"]
            found += [
                f"manylinux_2_{minor}_{arch}" for minor in range(int(match["minor"]) - 1, 16, -1)
            ]
            found.append(f"manylinux2014_{arch}")
        tags += [each for each in found if each not in tags]
    return tags


def this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def resolve_target(python_version: str | None, platforms: tuple[str, ...]) -> Target:
    """The target from --python-version and --platform, each defaulting to this machine's."""
    version = python_version or this_python()
    if not _PYTHON.match(version):
        raise BundleError(f"--python-version {version!r}: expected 3.N, e.g. 3.11")
    found = []
    for tag in platforms:
        uv = _uv_platform(tag)
        if uv is None:
            raise BundleError(
                f"--platform {tag!r}: cra bundle takes manylinux_2_N_ARCH, manylinux2014_ARCH or "
                "linux_ARCH, ARCH x86_64 or aarch64"
            )
        found.append((*uv, tag))
    if not platforms:
        # This machine's own tags; the highest glibc's manylinux among them is recorded.
        found = [(*uv, tag) for tag in platform_tags() if (uv := _uv_platform(tag)) is not None]
        if not found:
            raise BundleError(
                f"this machine's platform ({next(iter(platform_tags()))}) is no glibc Linux on "
                "x86_64 or aarch64; pass --platform"
            )
    if len({uv.split("-")[0] for _, uv, _ in found}) > 1:
        raise BundleError(f"--platform: {', '.join(platforms)} name more than one architecture")
    _, uv_platform, platform = max(found)
    return Target(version, tuple(platforms), platform, uv_platform)


def download_wheels(project_wheel: Path, extras: list[str], target: Target, wheels: Path) -> None:
    """Download into `wheels` every wheel the console's wheel (with `extras`) needs on `target`:
    the one step of `cra bundle` that uses the network, as pip is configured to."""
    requirement = str(project_wheel.absolute())
    if extras:
        requirement += f"[{','.join(extras)}]"
    download_requirement(requirement, target, wheels)


def download_requirement(requirement: str, target: Target, wheels: Path) -> None:
    """pip download of `requirement` and everything it needs on `target`, wheels only."""
    argv = [
        *(sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(wheels)),
        *("--disable-pip-version-check", "--no-input", "--progress-bar", "off"),
        *target.pip_args(),
        requirement,
    ]
    run_step(f"downloading the wheels of {requirement} for {target.shown} (pip download)", argv)


def compile_lock(requirement: str, wheels: Path, target: Target, scratch: Path) -> str:
    """uv's lock of `requirement` from the wheels in `wheels` alone, offline, every pin with the
    sha256 of its file: a wheel missing from the folder fails here, not on the air-gapped
    machine."""
    req_file = write_requirements(scratch / "bundle-requirement.txt", [requirement])
    args = [
        *("pip", "compile", str(req_file), "--offline", "--no-index"),
        *("--find-links", str(wheels.absolute()), "--generate-hashes", "--no-build"),
        *("--python", sys.executable, "--python-version", target.python_version),
        *("--python-platform", target.uv_platform, "--no-header", "--no-annotate", "--quiet"),
    ]
    step = f"locking {requirement} offline from wheels/ (uv pip compile)"
    try:
        return run_uv_step(step, args, scratch, scratch)
    except UvStepError as exc:
        raise BundleError(str(exc)) from exc


def uv_version() -> str:
    """The bundled uv's version (`uv 0.13.9`), for the lock's header and bundle.json."""
    with tempfile.TemporaryDirectory(prefix="cra-uv-") as scratch:
        try:
            result = run_uv(["--version"], Path(scratch), Path(scratch))
        except UvError as exc:
            raise BundleError(f"asking uv its version failed: {exc}") from exc
    if result.returncode != 0 or not result.stdout.startswith("uv "):
        raise BundleError(f"asking uv its version failed: {uv_reason(result.stderr)}")
    return result.stdout.split("(")[0].strip()
