"""Validation reports kept by package content, so an unchanged package is validated once.

The key is two digests. The package's (`package_content_sha256`): every entry under its folder,
walked without following a link, in path order, as its relative path, its kind and permission
bits, and for a file its size and the sha256 of its bytes, for a link its target; the manifest is
one of those files, so its sha256 is in it. Sizes and mtimes alone would do for a trusted folder,
but a drive is not one: a package swapped for another of the same sizes and times must not read
as validated, and hashing the files costs a fraction of validating them (no build, no sandbox).
The rules' (`rules_sha256`): the workspace's `[validation]` settings and the source of the checks,
so a changed limit or an upgraded check validates again. A report is kept only when the package's
digest is the same after validation as before it (one changed meanwhile is validated again
next time), in `validation_reports` (migration 15): a cache, apart from the decisions' record,
each row replaced when its package is validated afresh. A report names the folder it was read
from; a kept one is returned naming the folder asked about, as the same content validates the
same wherever it sits.
"""

import hashlib
import os
import stat
from functools import cache
from pathlib import Path

from engine.core.config import ValidationConfig
from engine.core.errors import CraError
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.intake.validation_report import ValidationReport

TABLE = "validation_reports"


def package_content_sha256(root: Path) -> str:
    """The digest of everything in the package folder `root` (see the module's docstring)."""
    digest = hashlib.sha256()
    try:
        for rel, info in _entries(root):
            kind = stat.S_IFMT(info.st_mode)
            digest.update(os.fsencode(rel) + b"\0")
            digest.update(f"{kind:o} {stat.S_IMODE(info.st_mode):o}".encode() + b"\0")
            if stat.S_ISREG(kind):
                digest.update(f"{info.st_size} ".encode() + _file_sha256(root / rel) + b"\0")
            elif stat.S_ISLNK(kind):
                digest.update(os.fsencode((root / rel).readlink()) + b"\0")
    except OSError as exc:
        raise CraError(f"{root}: cannot read the package to key its report: {exc}") from exc
    return digest.hexdigest()


def _entries(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every entry under `root` with its lstat, relative paths sorted; links are not followed."""
    found = []
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(root / rel if rel else root) as listing:
            for entry in listing:
                path = f"{rel}/{entry.name}" if rel else entry.name
                info = entry.stat(follow_symlinks=False)
                found.append((path, info))
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
    return sorted(found, key=lambda item: os.fsencode(item[0]))


def _file_sha256(path: Path) -> bytes:
    """The sha256 of a regular file's bytes, opened without following a link (a file swapped
    for a link since the walk is refused, not followed)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path} is no longer a regular file")
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest().encode()


@cache
def _checks_source_sha256() -> str:
    """The sha256 of the validation code's source: validate.py and every check module."""
    here = Path(__file__).parent
    sources = [here / "validate.py", here / "manifest.py", *sorted((here / "checks").glob("*.py"))]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def rules_sha256(config: ValidationConfig) -> str:
    """The digest of what validation applies besides the package: settings and checks."""
    settings = config.model_dump_json().encode()
    return hashlib.sha256(settings + b"\0" + _checks_source_sha256().encode()).hexdigest()


def cached_report(ws: Workspace, path: Path) -> ValidationReport | None:
    """The kept report of the package at `path` as it is now, or None: no package of this
    content was validated under the workspace's current rules. Reads the package's files (to
    hash them), never validates: call it off the UI thread."""
    from engine.intake.validate import package_folder

    root = package_folder(path)
    return _lookup(ws, root, package_content_sha256(root))


def _lookup(ws: Workspace, root: Path, content: str) -> ValidationReport | None:
    row = ws.db.execute(
        f"SELECT report_json FROM {TABLE} WHERE content_sha256 = ? AND rules_sha256 = ?",
        [content, rules_sha256(ws.config.validation)],
    ).fetchone()
    if row is None:
        return None
    report = ValidationReport.model_validate_json(row[0])
    return report.model_copy(update={"package": str(root)})


def validate_cached(ws: Workspace, path: Path, fresh: bool = False) -> ValidationReport:
    """The report of the package at `path`: the kept one when its content was validated under
    the current rules (unless `fresh`), else a new validation, kept when the package did not
    change while it ran. A read-only workspace validates and keeps nothing."""
    from engine.intake import validate

    root = validate.package_folder(path)
    before = package_content_sha256(root)
    if not fresh and (kept := _lookup(ws, root, before)) is not None:
        return kept
    report = validate.validate_package(root, ws.config.validation)
    if not ws.read_only and package_content_sha256(root) == before:
        with ws.db.conn:
            ws.db.table(TABLE).upsert(
                {
                    "content_sha256": before,
                    "rules_sha256": rules_sha256(ws.config.validation),
                    "report_json": report.model_dump_json(),
                    "validated_at": utc_now(),
                },
                pk=("content_sha256", "rules_sha256"),
            )
    return report
