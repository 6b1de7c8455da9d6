"""Real wheel files built offline: from in-memory sources, or repacked from an installed dist.

The demo package needs wheels for its own dependency and for pytest (the test runner the dry run
collects with). Nothing may be downloaded at run time, so the pytest wheels are rebuilt from the
distributions installed beside the console: same files, fresh RECORD, deterministic zip.
"""

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from engine.core.errors import CraError

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIST_INFO = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _write_wheel(path: Path, members: Iterable[tuple[str, bytes]], dist_info: str) -> Path:
    """Write a wheel zip with a RECORD listing every member, entries in a stable order."""
    records = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
            records.append(f"{name},{_record_hash(data)},{len(data)}")
        record_name = f"{dist_info}/RECORD"
        records.append(f"{record_name},,")
        info = zipfile.ZipInfo(record_name, date_time=_ZIP_DATE)
        info.external_attr = 0o644 << 16
        zf.writestr(info, "\n".join(records) + "\n")
    return path


def _escaped(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def build_wheel(
    name: str,
    version: str,
    files: dict[str, str],
    out_dir: Path,
    requires: Iterable[str] = (),
    summary: str = "",
) -> Path:
    """Build a pure-Python `py3-none-any` wheel holding `files` (archive path → text)."""
    dist_info = f"{_escaped(name)}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    wheel = ["Wheel-Version: 1.0", "Generator: cra-demo", "Root-Is-Purelib: true"]
    wheel.append("Tag: py3-none-any")
    members = [(p, t.encode("utf-8")) for p, t in files.items()]
    members.append((f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()))
    members.append((f"{dist_info}/WHEEL", ("\n".join(wheel) + "\n").encode()))
    filename = f"{_escaped(name)}-{version}-py3-none-any.whl"
    return _write_wheel(out_dir / filename, members, dist_info)


def repack_installed(dist_name: str, out_dir: Path) -> Path:
    """Rebuild the wheel of an installed pure-Python distribution into `out_dir`."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError as exc:
        raise CraError(
            f"{dist_name}: not installed beside the console, so its wheel cannot be rebuilt "
            "offline; install the console with its dev extra"
        ) from exc
    wheel_text = dist.read_text("WHEEL") or ""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")
    ]
    if "Root-Is-Purelib: true" not in wheel_text or tags != ["py3-none-any"]:
        raise CraError(f"{dist_name}: only pure py3-none-any distributions can be repacked")
    infos = {f.parts[0] for f in dist.files or [] if f.parts[0].endswith(".dist-info")}
    if len(infos) != 1:
        raise CraError(f"{dist_name}: expected one .dist-info folder, found {sorted(infos)}")
    dist_info = infos.pop()
    members = []
    for file in dist.files or []:
        posix = file.as_posix()
        parts = posix.split("/")
        if parts[0] == ".." or "__pycache__" in parts or posix.endswith(".pyc"):
            continue
        if parts[0].endswith(".dist-info") and parts[-1] in _SKIPPED_DIST_INFO:
            continue
        members.append((posix, Path(file.locate()).read_bytes()))
    filename = dist_info.removesuffix(".dist-info") + "-py3-none-any.whl"
    return _write_wheel(out_dir / filename, members, dist_info)


def runtime_closure(root: str, python_version: str = "3.11") -> list[str]:
    """`root` and every distribution it needs on Linux under `python_version`, installed here."""
    # A plain dict of strings (packaging types it as a TypedDict), so it takes any marker key.
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(python_version=python_version, python_full_version=f"{python_version}.0")
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix")
    seen: dict[str, str] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        dist = distribution(name)
        seen[key] = dist.metadata["Name"]
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                pending.append(req.name)
    return sorted(seen.values(), key=str.lower)
