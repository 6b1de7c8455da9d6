"""Check: the wheels in packages/ are exactly those the manifest lists, intact and harmless to open.

Each listed wheel must be a regular file whose sha256 matches the manifest, whose filename parses
as a wheel name, and whose zip holds a `*.dist-info/METADATA` agreeing with that name and version.
Zip bombs are refused from the zip's central directory alone, never by extracting: a total
unpacked size over the limit, or a large member compressed beyond the ratio limit. Member names
that would land outside the install folder are refused. Wheels nobody listed are refused too.
"""

import hashlib
import os
import re
import zipfile
import zlib
from pathlib import Path

from packaging.metadata import parse_email
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from engine.core.config import ValidationConfig
from engine.intake.checks.context import PackageContext, failed, passed
from engine.intake.validation_report import CheckResult

NAME = "wheels"
# Small members legitimately compress far (a 4 KiB file of spaces); only big ones can be bombs.
RATIO_MIN_MEMBER_BYTES = 1024 * 1024
METADATA_MAX_BYTES = 8 * 1024 * 1024
_NAMES_SHOWN = 3
_METADATA = re.compile(r"^[^/]+\.dist-info/METADATA$")


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _escapes(member: str) -> bool:
    """True when a member name is absolute or climbs out of the folder it is unpacked into."""
    if member.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", member):
        return True
    return ".." in re.split(r"[/\\]", member)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def _member_problems(infos: list[zipfile.ZipInfo], limits: ValidationConfig) -> list[str]:
    """Path escapes and zip-bomb signs, read from the central directory only."""
    problems = []
    escaping = [i.filename for i in infos if _escapes(i.filename)]
    if escaping:
        problems.append(f"member names escape the install folder: {_listing(escaping)}")
    total = sum(i.file_size for i in infos)
    if total > limits.wheel_max_uncompressed_bytes:
        problems.append(
            f"zip bomb: members unpack to {total} bytes, over the limit of "
            f"{limits.wheel_max_uncompressed_bytes} (wheel_max_uncompressed_bytes)"
        )
    dense = [
        i
        for i in infos
        if i.file_size >= RATIO_MIN_MEMBER_BYTES
        and i.file_size > limits.wheel_max_compression_ratio * max(i.compress_size, 1)
    ]
    if dense:
        worst = max(dense, key=lambda i: i.file_size / max(i.compress_size, 1))
        ratio = worst.file_size / max(worst.compress_size, 1)
        problems.append(
            f"zip bomb: {_listing([i.filename for i in dense])} compressed beyond the ratio "
            f"limit of {limits.wheel_max_compression_ratio:g}:1 (wheel_max_compression_ratio; "
            f"{worst.filename} is {ratio:.0f}:1)"
        )
    return problems


def _metadata_problems(zf: zipfile.ZipFile, filename: str) -> list[str]:
    """METADATA must exist once, parse, and name the distribution and version of the filename."""
    found = [i for i in zf.infolist() if _METADATA.match(i.filename)]
    if len(found) != 1:
        where = _listing([i.filename for i in found]) if found else "none"
        return [f"needs exactly one top-level *.dist-info/METADATA, found {where}"]
    info = found[0]
    if info.file_size > METADATA_MAX_BYTES:
        return [f"{info.filename} is {info.file_size} bytes, over {METADATA_MAX_BYTES}"]
    try:
        with zf.open(info) as fh:
            raw = fh.read(METADATA_MAX_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        return [f"{info.filename} cannot be read: {exc}"]
    fields, _unparsed = parse_email(raw)
    name, version = fields.get("name"), fields.get("version")
    if not name or not version:
        return [f"{info.filename} lacks a Name or Version field"]
    wheel_name, wheel_version, _build, _tags = parse_wheel_filename(filename)
    problems = []
    if canonicalize_name(name) != wheel_name:
        problems.append(f"{info.filename} names {name!r}, but the filename says {wheel_name!r}")
    try:
        same_version = Version(version) == wheel_version
    except InvalidVersion:
        problems.append(f"{info.filename} has version {version!r}, which is not PEP 440")
    else:
        if not same_version:
            problems.append(
                f"{info.filename} has version {version}, but the filename says {wheel_version}"
            )
    return problems


def _wheel_problems(path: Path, expected_sha256: str, limits: ValidationConfig) -> list[str]:
    """Every rule one listed wheel breaks, in the order they were found."""
    if path.is_symlink():
        return ["is a link; wheels must be regular files"]
    if not path.exists():
        return ["is listed in manifest.json but missing from packages/"]
    if not path.is_file():
        return ["is not a regular file"]
    problems = []
    actual = _sha256(path)
    if actual != expected_sha256:
        problems.append(f"sha256 is {actual}, manifest.json says {expected_sha256}")
    try:
        parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        problems.append(f"filename is not a valid wheel name: {exc}")
        name_ok = False
    else:
        name_ok = True
    try:
        with zipfile.ZipFile(path) as zf:
            member_problems = _member_problems(zf.infolist(), limits)
            problems += member_problems
            if name_ok and not member_problems:
                problems += _metadata_problems(zf, path.name)
    except zipfile.BadZipFile as exc:
        problems.append(f"is not a valid zip archive: {exc}")
    return problems


def _unlisted(packages: Path, listed: set[str]) -> list[str]:
    """Wheels anywhere under packages/ that the manifest does not list, as relative paths."""
    found = []
    for folder, _dirs, files in os.walk(packages):
        for file in files:
            rel = (Path(folder) / file).relative_to(packages).as_posix()
            if file.lower().endswith(".whl") and rel not in listed:
                found.append(rel)
    return sorted(found)


def check_wheels(ctx: PackageContext) -> list[CheckResult]:
    manifest = ctx.manifest
    assert manifest is not None, "runs only after the manifest check passed"
    if ctx.packages.is_symlink() or not ctx.packages.is_dir():
        return [failed(NAME, "packages/ must be a folder holding the wheels", "packages")]
    results = []
    for entry in manifest.wheels:
        path = ctx.packages / entry.filename
        for problem in _wheel_problems(path, entry.sha256, ctx.config):
            results.append(failed(NAME, f"{entry.filename}: {problem}", ctx.rel(path)))
    listed = {entry.filename for entry in manifest.wheels}
    for rel in _unlisted(ctx.packages, listed):
        detail = f"{rel}: not listed in manifest.json; every wheel must be listed with its sha256"
        results.append(failed(NAME, detail, f"packages/{rel}"))
    if results:
        return results
    return [
        passed(
            NAME,
            f"{len(manifest.wheels)} wheels match manifest.json: sha256, wheel names, METADATA, "
            "no zip bomb, no escaping member",
        )
    ]
