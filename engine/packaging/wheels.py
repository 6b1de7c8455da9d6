"""Gather the wheels a package needs for its target Python and platform; never an sdist.

From a local folder (`--wheels DIR`), `uv pip compile` resolves the requirements offline against
that folder for the target, and exactly the pinned wheels are copied into packages/. Without a
folder, on the connected side (the one step of `cra package` that uses the network), `uv pip
compile` first resolves them against the index for the target, wheels only, taking no file
uploaded after the cutoff (`--exclude-newer`: by default the newest packaged commit's date, so the
tools are those the history was written against, not releases that came after it); then `pip
download --no-deps --only-binary=:all:` fetches exactly those pins, and the same selection runs on
what it fetched. uv's own index settings (`UV_INDEX_URL`, `UV_DEFAULT_INDEX`, …) and pip's (an
index mirror in pip.conf) apply to their steps. Each direct requirement is first matched against
the folder on its own, and every resolution error names the requirements it mentions with the
files that declared them.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from engine.intake.manifest import WheelEntry
from engine.isolation.uvtool import (
    UV_TIMEOUT_S,
    UvError,
    run_uv,
    uv_env,
    uv_reason,
    write_requirements,
)
from engine.packaging.build_history import BuildRequires
from engine.packaging.deps import FoundRequirement
from engine.packaging.errors import PackagingError

DEFAULT_PLATFORM = "x86_64-manylinux_2_28"
PIP_DOWNLOAD_TIMEOUT_S = 1800.0
_PLATFORM = re.compile(r"^(?P<arch>x86_64|aarch64)-manylinux_2_(?P<minor>\d{1,2})$")
_PYTHON = re.compile(r"^3\.(?P<minor>\d{1,2})$")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")
# Older manylinux names for the same glibc (PEP 599, 571, 513), per architecture.
_LEGACY_MANYLINUX = {
    "x86_64": {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"},
    "aarch64": {17: "manylinux2014"},
}
_REASON_LINES = 6
# What the online resolution takes from the operator's environment: the index and the network.
_ONLINE_ENV = (
    *("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS"),
    *("UV_NO_INDEX", "UV_INSECURE_HOST", "UV_NATIVE_TLS", "SSL_CERT_FILE", "SSL_CERT_DIR"),
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy"),
    *("all_proxy", "no_proxy"),
)


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the air-gapped machine runs: CPython `python_version` on
    glibc Linux, written as uv's `--python-platform` (`x86_64-manylinux_2_28`)."""

    python_version: str
    platform: str = DEFAULT_PLATFORM

    def __post_init__(self) -> None:
        if not _PYTHON.match(self.python_version):
            raise PackagingError(f"--python {self.python_version!r}: expected 3.N, e.g. 3.11")
        match = _PLATFORM.match(self.platform)
        if match is None or not 17 <= int(match["minor"]) <= 99:
            raise PackagingError(
                f"--platform {self.platform!r}: expected x86_64 or aarch64 with a glibc of "
                "2.17 or newer, written like x86_64-manylinux_2_28"
            )

    @property
    def shown(self) -> str:
        return f"Python {self.python_version} on {self.platform}"

    def platform_tags(self) -> list[str]:
        """Every platform tag a wheel for this target may carry, most specific first."""
        match = _PLATFORM.match(self.platform)
        assert match is not None, "checked in __post_init__"
        arch = match["arch"]
        legacy = _LEGACY_MANYLINUX[arch]
        tags = []
        for minor in range(int(match["minor"]), 4, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            if minor in legacy:
                tags.append(f"{legacy[minor]}_{arch}")
        return tags

    @cached_property
    def tag_order(self) -> dict[Tag, int]:
        """The wheel tags this target installs, each with its preference (lower is better)."""
        version = (3, int(self.python_version.split(".")[1]))
        platforms = self.platform_tags()
        tags = [
            *cpython_tags(version, platforms=platforms),
            *compatible_tags(version, f"cp3{version[1]}", platforms),
        ]
        return {tag: rank for rank, tag in reversed(list(enumerate(tags)))}

    def marker_environment(self) -> dict[str, str]:
        # A plain dict of strings (packaging types it as a TypedDict), so it takes any marker key.
        env = {key: str(value) for key, value in default_environment().items()}
        arch = self.platform.split("-", 1)[0]
        env.update(
            python_version=self.python_version,
            python_full_version=f"{self.python_version}.0",
            implementation_name="cpython",
            platform_python_implementation="CPython",
            sys_platform="linux",
            platform_system="Linux",
            os_name="posix",
            platform_machine=arch,
            extra="",
        )
        return env


@dataclass(frozen=True)
class Wheel:
    """A wheel file in the source folder and what its name says."""

    path: Path
    name: NormalizedName
    version: Version
    tags: frozenset[Tag]


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def wheels_in(folder: Path) -> list[Wheel]:
    """The regular files in `folder` whose names parse as wheel names."""
    found = []
    for path in sorted(folder.glob("*.whl")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            name, version, _build, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        found.append(Wheel(path, name, version, frozenset(tags)))
    return found


def _rank(wheel: Wheel, target: Target) -> int | None:
    """The preference of `wheel` for the target (lower is better), None if it does not fit."""
    ranks = [target.tag_order[tag] for tag in wheel.tags if tag in target.tag_order]
    return min(ranks) if ranks else None


def _unmatched(
    requirements: list[FoundRequirement], wheels: list[Wheel], target: Target
) -> list[str]:
    """The direct requirements no wheel in the folder fits, each with why and where from."""
    env = target.marker_environment()
    lines = []
    for found in requirements:
        req = Requirement(found.text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        same_name = [w for w in wheels if w.name == canonicalize_name(req.name)]
        fitting = [w for w in same_name if _rank(w, target) is not None]
        if any(req.specifier.contains(w.version, prereleases=True) for w in fitting):
            continue
        if fitting:
            versions = ", ".join(sorted({str(w.version) for w in fitting}))
            why = f"only version {versions} is there"
        elif same_name:
            why = f"its wheels there are for other platforms ({same_name[0].path.name})"
        else:
            why = "there is no wheel of it"
        lines.append(f"{found.text} (from {'; '.join(found.sources)}): {why}")
    return lines


def _blamed(message: str, requirements: list[FoundRequirement]) -> str:
    """The lines naming, with their sources, the requirements a resolver's `message` mentions."""
    lines = []
    for found in requirements:
        name = Requirement(found.text).name
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", message, re.IGNORECASE):
            lines.append(f"\n  {found.text} (from {'; '.join(found.sources)})")
    return "".join(lines)


def _pins(stdout: str) -> list[tuple[NormalizedName, Version]]:
    pins = []
    for line in stdout.splitlines():
        if match := _PIN.match(line.strip()):
            pins.append((canonicalize_name(match["name"]), Version(match["version"])))
    return pins


def _resolve(
    requirements: list[FoundRequirement], folder: Path, target: Target, scratch: Path, label: str
) -> list[tuple[NormalizedName, Version]]:
    """uv's pins for `requirements`, resolved offline from `folder` for `target`."""
    texts = [r.text for r in requirements]
    req_file = write_requirements(scratch / f"{label.replace(' ', '-')}.txt", texts)
    args = [
        *("pip", "compile", str(req_file), "--offline", "--no-index"),
        *("--find-links", str(folder.absolute())),
        *("--python-version", target.python_version, "--python-platform", target.platform),
        *("--no-build", "--no-header", "--no-annotate", "--quiet"),
    ]
    try:
        result = run_uv(args, scratch, scratch)
    except UvError as exc:
        raise PackagingError(f"resolving the {label}: {exc}") from exc
    if result.returncode != 0:
        reason = uv_reason(result.stderr)
        raise PackagingError(
            f"the {label} do not resolve from the wheels in {folder} for {target.shown}: "
            f"{reason}{_blamed(reason, requirements)}"
        )
    return _pins(result.stdout)


def _pick(pin: tuple[NormalizedName, Version], wheels: list[Wheel], target: Target) -> Wheel:
    """The one wheel of a pinned distribution the target's installer would take."""
    name, version = pin
    ranked = [
        (rank, w)
        for w in wheels
        if w.name == name and w.version == version and (rank := _rank(w, target)) is not None
    ]
    if not ranked:
        raise PackagingError(
            f"{name}=={version} was resolved but no wheel of it fits {target.shown}"
        )
    return min(ranked, key=lambda pair: (pair[0], pair[1].path.name))[1]


def build_found(build: BuildRequires) -> list[FoundRequirement]:
    return [FoundRequirement(text=t, sources=[build.source]) for t in build.requires]


def select_wheels(
    requirements: list[FoundRequirement],
    builds: Sequence[BuildRequires],
    folder: Path,
    target: Target,
    dest: Path,
    scratch: Path,
) -> list[WheelEntry]:
    """Copy into `dest` exactly the wheels from `folder` that the requirements (and, when the
    repository is installed, each set of its build backend's requirements on its own) resolve
    to; list their hashes."""
    if folder.is_symlink() or not folder.is_dir():
        raise PackagingError(f"--wheels {folder}: not a folder")
    wheels = wheels_in(folder)
    sets = [(b.label, build_found(b)) for b in builds if b.requires]
    build = [found for _, found_set in sets for found in found_set]
    if missing := _unmatched([*requirements, *build], wheels, target):
        raise PackagingError(
            f"no wheel in {folder} satisfies {len(missing)} requirement(s) for {target.shown}:\n"
            + "\n".join(f"  {line}" for line in missing)
        )
    scratch.mkdir(parents=True, exist_ok=True)
    pins = _resolve(requirements, folder, target, scratch, "requirements")
    for label, found_set in sets:
        pins += _resolve(found_set, folder, target, scratch, label)
    chosen = {w.path.name: w for w in (_pick(pin, wheels, target) for pin in pins)}
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for filename, wheel in sorted(chosen.items()):
        copied = Path(shutil.copyfile(wheel.path, dest / filename))
        entries.append(WheelEntry(filename=filename, sha256=_sha256(copied)))
    return entries


def _online_env(scratch: Path) -> dict[str, str]:
    env = {key: value for key, value in uv_env(scratch).items() if key != "UV_OFFLINE"}
    env.update({key: os.environ[key] for key in _ONLINE_ENV if key in os.environ})
    return env


def resolve_online(
    requirements: list[FoundRequirement],
    target: Target,
    exclude_newer: datetime | None,
    scratch: Path,
    label: str,
) -> list[tuple[NormalizedName, Version]]:
    """uv's pins for `requirements` from the index, wheels for `target` only, none uploaded after
    `exclude_newer`; a failure names uv's reason and the requirements it mentions."""
    req_file = write_requirements(
        scratch / f"online-{label.replace(' ', '-')}.txt", [r.text for r in requirements]
    )
    argv = [
        *("pip", "compile", str(req_file), "--only-binary", ":all:"),
        *("--python-version", target.python_version, "--python-platform", target.platform),
        *("--no-header", "--no-annotate", "--quiet"),
    ]
    if exclude_newer is not None:
        argv += ["--exclude-newer", exclude_newer.isoformat()]
    try:
        result = run_uv(argv, scratch, scratch, env=_online_env(scratch))
    except UvError as exc:
        raise PackagingError(f"resolving the {label} took longer than {UV_TIMEOUT_S:g}s") from exc
    if result.returncode != 0:
        cutoff = f" uploaded before {exclude_newer.isoformat()}" if exclude_newer else ""
        reason = uv_reason(result.stderr)
        raise PackagingError(
            f"the {label} do not resolve to wheels{cutoff} for {target.shown}: {reason}"
            f"{_blamed(reason, requirements)}"
        )
    return _pins(result.stdout)


def download_wheels(
    requirements: list[FoundRequirement],
    builds: Sequence[BuildRequires],
    target: Target,
    exclude_newer: datetime | None,
    dest: Path,
    scratch: Path,
) -> None:
    """Resolve `requirements` (and the build backend's) against the index with `resolve_online`,
    then fetch exactly those wheels into `dest` with pip, for `target`."""
    pins = resolve_online(requirements, target, exclude_newer, scratch, "requirements")
    for b in (b for b in builds if b.requires):
        pins += resolve_online(build_found(b), target, exclude_newer, scratch, b.label)
    wanted = sorted({f"{name}=={version}" for name, version in pins})
    req_file = write_requirements(scratch / "download.txt", wanted)
    minor = target.python_version.split(".")[1]
    argv = [
        *(sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest)),
        *("--no-deps", "--python-version", target.python_version, "--implementation", "cp"),
        *("--abi", f"cp3{minor}", "--abi", "abi3", "--abi", "none"),
        *(part for tag in target.platform_tags() for part in ("--platform", tag)),
        *("--disable-pip-version-check", "--no-input", "--quiet", "-r", str(req_file)),
    ]
    try:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PIP_DOWNLOAD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(
            f"pip download took longer than {PIP_DOWNLOAD_TIMEOUT_S:g}s; "
            "collect the wheels in a folder and pass --wheels"
        ) from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise PackagingError(
            f"pip download of wheels for {target.shown} failed:\n"
            + "\n".join(f"  {line}" for line in lines[-_REASON_LINES:])
        )
