"""Approve repo packages into the corpus, reject them, and read back the corpus and decisions.

A package's identity, its digest, is the sha256 of its `manifest.json` bytes: the manifest pins
the commit shas, the head and every wheel's hash. Approval re-validates, builds the package under
`corpus/.staging/` (see `engine.intake.corpus`), renames it into place, and only then records the
package, its file hashes and the decision in one transaction. A crash at any point leaves nothing
that `list_corpus` shows; the next approval removes what the crash left. Nothing on the drive is
ever written. Who decided is the `operator` argument, else the config's operator; when is a UTC
ISO timestamp.
"""

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.db import inserted_id
from engine.core.errors import IngestError, ManifestError
from engine.core.workspace import Workspace
from engine.intake.corpus import (
    FileRecord,
    clear_staging,
    corpus_lock,
    folder_name,
    place,
    remove_tree,
    stage_package,
)
from engine.intake.label import PATH_DIGEST_PREFIX, package_label
from engine.intake.manifest import MANIFEST_FILE, parse_manifest
from engine.intake.validation_report import ValidationReport


class PackageNotValid(IngestError):
    """Approval refused because validation failed; `report` is the full validation report."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(refusal_text(report))


def refusal_text(report: ValidationReport) -> str:
    """Why the package of a failed `report` is not approved: its label, then each failing
    check's id, file and the first line of its reason, one a line."""
    failures = report.failures()
    count = f"{len(failures)} failing check{'' if len(failures) == 1 else 's'}"
    lines = [
        f"  {c.name}{f' [{c.path}]' if c.path else ''}: {_first_line(c.detail)}" for c in failures
    ]
    return f"{report.label}: not approved, {count}:\n" + "\n".join(lines)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines() or [""]
    return lines[0] + (" …" if len(lines) > 1 else "")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApprovalResult(_Model):
    """What `approve_package` did; `report` is None when the package was already approved."""

    name: str
    digest: str
    source_path: Path
    corpus_path: Path
    already_approved: bool
    report: ValidationReport | None
    removed_leftovers: list[Path]

    @property
    def label(self) -> str:
        """The package approved, as the operator knows it (`engine.intake.label`)."""
        return package_label(self.source_path, self.digest, self.name)


class IngestDecision(_Model):
    """One recorded approval or rejection (append-only)."""

    id: int
    digest: str
    name: str | None
    source_path: str
    decision: Literal["approved", "rejected"]
    operator: str
    reason: str | None
    decided_at: datetime
    report: ValidationReport | None

    @property
    def label(self) -> str:
        """The package decided on, as the operator knows it (`engine.intake.label`)."""
        return package_label(self.source_path, self.digest, self.name)


class CorpusEntry(_Model):
    """An approved package; `present` is False when its corpus folder has gone missing."""

    id: int
    name: str
    digest: str
    commit_count: int
    wheel_count: int
    file_count: int
    size_bytes: int
    approved_at: datetime
    approved_by: str
    source_path: str
    corpus_path: Path
    present: bool

    @property
    def label(self) -> str:
        """The package as the operator knows it: the folder it was approved from and its
        digest (`engine.intake.label`)."""
        return package_label(self.source_path, self.digest, self.name)


def approve_package(ws: Workspace, path: Path, *, operator: str | None = None) -> ApprovalResult:
    """Validate the package at `path` again and place it in the corpus, recording it.

    Raises PackageNotValid when validation fails, and IngestError or GitError when the package
    cannot be placed; in each case the corpus and the database are left as they were. A valid
    package whose digest is already in the corpus is reported (`already_approved`) and nothing
    is copied. Validation always comes first: a tampered copy of an approved package's manifest
    is refused, never reported as approved.
    """
    root = _package_root(path)
    who = operator or ws.config.operator
    raw = _manifest_bytes(root, ws.config.validation.manifest_max_bytes)
    report = _validate(ws, root)
    if not report.ok:
        raise PackageNotValid(report)
    if raw is None or _sha256(raw) != report.summary.manifest_sha256:
        raise IngestError(
            f"{root / MANIFEST_FILE}: changed while the package was being validated; "
            "validate it again"
        )
    try:
        with corpus_lock(ws.corpus_dir):
            return _approval_of(ws, root, _sha256(raw)) or _place_and_record(
                ws, root, raw, report, who
            )
    except OSError as exc:
        raise IngestError(f"{root}: cannot be placed in {ws.corpus_dir}: {exc}") from exc


def _place_and_record(
    ws: Workspace, root: Path, raw: bytes, report: ValidationReport, operator: str
) -> ApprovalResult:
    """Stage, rename into place, then record; the caller holds the corpus lock."""
    digest = _sha256(raw)
    manifest = parse_manifest(raw, str(root / MANIFEST_FILE))
    final = ws.corpus_dir / folder_name(manifest.name, digest)
    rel = final.relative_to(ws.root).as_posix()
    removed = clear_staging(ws.corpus_dir) + _remove_unrecorded(ws, final, rel, digest)
    staged = stage_package(ws.corpus_dir, root, raw, manifest, digest)
    place(staged.path, final)
    now = _now()
    report_json = report.model_dump_json()
    package = {
        "name": manifest.name,
        "digest": digest,
        "source_path": str(root),
        "corpus_path": rel,
        "commit_count": len(manifest.commits),
        "wheel_count": len(manifest.wheels),
        "size_bytes": sum(f.size_bytes for f in staged.files),
        "approved_by": operator,
        "approved_at": now,
        "report_json": report_json,
        "manifest_json": raw.decode("utf-8"),
    }
    decision = _decision_row(
        digest=digest,
        name=manifest.name,
        root=root,
        decision="approved",
        operator=operator,
        reason=None,
        decided_at=now,
        report_json=report_json,
    )
    try:
        record_approval(ws.db, package=package, files=staged.files, decision=decision)
    except Exception:
        remove_tree(final)
        raise
    return ApprovalResult(
        name=manifest.name,
        digest=digest,
        source_path=root,
        corpus_path=final,
        already_approved=False,
        report=report,
        removed_leftovers=removed,
    )


def _remove_unrecorded(ws: Workspace, final: Path, rel: str, digest: str) -> list[Path]:
    """Remove `final` if no package row owns it (a crash between rename and commit left it)."""
    if not final.exists() and not final.is_symlink():
        return []
    row = ws.db.execute("SELECT digest FROM packages WHERE corpus_path = ?", [rel]).fetchone()
    if row is not None:
        raise IngestError(f"{final}: already holds the package with digest {row[0]}, not {digest}")
    remove_tree(final)
    return [final]


def record_approval(
    db: sqlite_utils.Database, *, package: dict, files: list[FileRecord], decision: dict
) -> int:
    """Insert the package row, its file rows and the decision in one transaction; return its id."""
    with db.atomic():
        package_id = inserted_id(db.table("packages").insert(package))
        db.table("package_files").insert_all(
            {"package_id": package_id, **f.model_dump()} for f in files
        )
        db.table("ingest_decisions").insert(decision)
    return package_id


def reject_package(
    ws: Workspace,
    path: Path,
    *,
    reason: str,
    operator: str | None = None,
    report: ValidationReport | None = None,
) -> IngestDecision:
    """Record that the package at `path` is rejected, with `reason`; copy nothing.

    `report` is the validation report the operator read; without one the package is validated
    now. The decision's digest is the sha256 of `manifest.json` when that file can be read
    (a regular file within the size limit), else `path:` followed by the sha256 of the package's
    absolute path, so that an unreadable package is still recorded under a stable key. Rejecting
    a valid package that is in the corpus is refused; a copy that shares an approved package's
    manifest but fails validation is a different package and can be rejected.
    """
    if not reason.strip():
        raise IngestError(f"{path}: a rejection needs a reason (it was blank)")
    root = _package_root(path)
    who = operator or ws.config.operator
    if report is None:
        report = _validate(ws, root)
    elif report.package != str(root):
        raise IngestError(f"{root}: the report given is for another package ({report.package})")
    raw = _manifest_bytes(root, ws.config.validation.manifest_max_bytes)
    if raw is None:
        digest = PATH_DIGEST_PREFIX + _sha256(os.fsencode(root))
        name = None
    else:
        digest = _sha256(raw)
        name = _manifest_name(raw)
        if report.ok and (known := _approval_of(ws, root, digest)):
            raise IngestError(
                f"{known.label} is in the corpus at {known.corpus_path} (approved); "
                "an approved package cannot be rejected"
            )
    row = _decision_row(
        digest=digest,
        name=name,
        root=root,
        decision="rejected",
        operator=who,
        reason=reason.strip(),
        decided_at=_now(),
        report_json=report.model_dump_json(),
    )
    decision_id = inserted_id(ws.db.table("ingest_decisions").insert(row))
    return _decision(ws.db.table("ingest_decisions").get(decision_id))


def package_labels(ws: Workspace) -> dict[str, str]:
    """Each approved package's label (`engine.intake.label`) by its digest: how the harness,
    the training data and their reports name a package they know by digest."""
    rows = ws.db.execute("SELECT digest, source_path, name FROM packages").fetchall()
    return {digest: package_label(source, digest, name) for digest, source, name in rows}


def list_corpus(ws: Workspace) -> list[CorpusEntry]:
    """Every approved package, newest first."""
    rows = ws.db.execute(
        "SELECT p.id, p.name, p.digest, p.commit_count, p.wheel_count, p.size_bytes, "
        "p.approved_at, p.approved_by, p.source_path, p.corpus_path, "
        "(SELECT COUNT(*) FROM package_files f WHERE f.package_id = p.id) "
        "FROM packages p ORDER BY p.approved_at DESC, p.id DESC"
    ).fetchall()
    entries = []
    for id_, name, digest, commits, wheels, size, at, by, source, rel, files in rows:
        folder = ws.root / rel
        entries.append(
            CorpusEntry(
                id=id_,
                name=name,
                digest=digest,
                commit_count=commits,
                wheel_count=wheels,
                file_count=files,
                size_bytes=size,
                approved_at=datetime.fromisoformat(at),
                approved_by=by,
                source_path=source,
                corpus_path=folder,
                present=folder.is_dir() and not folder.is_symlink(),
            )
        )
    return entries


def corpus_files(ws: Workspace, digest: str) -> list[FileRecord]:
    """The recorded files (path, kind, sha256, size) of the approved package `digest`."""
    row = ws.db.execute("SELECT id FROM packages WHERE digest = ?", [digest]).fetchone()
    if row is None:
        raise IngestError(f"no approved package has digest {digest}")
    rows = ws.db.execute(
        "SELECT path, kind, sha256, size_bytes FROM package_files WHERE package_id = ? "
        "ORDER BY path",
        [row[0]],
    ).fetchall()
    return [FileRecord(path=p, kind=k, sha256=s, size_bytes=n) for p, k, s, n in rows]


def decision_history(ws: Workspace, limit: int = 50) -> list[IngestDecision]:
    """The `limit` most recent approvals and rejections, newest first."""
    rows = ws.db.query(
        "SELECT * FROM ingest_decisions ORDER BY decided_at DESC, id DESC LIMIT ?", [limit]
    )
    return [_decision(row) for row in rows]


def _validate(ws: Workspace, root: Path) -> ValidationReport:
    """The package at `root` validated under the workspace's rules, or its kept report when
    this content was validated under them (`validation_cache`). The checks are imported
    there on use: they cost about 0.1 s that reading the corpus (`cra ingest list`) does not
    need."""
    from engine.intake.validation_cache import validate_cached

    return validate_cached(ws, root)


def _package_root(path: Path) -> Path:
    root = path.expanduser().absolute()
    if not root.exists() and not root.is_symlink():
        raise IngestError(f"{path}: no such folder")
    if root.is_symlink() or not root.is_dir():
        raise IngestError(f"{path}: a repo package must be a folder (not a file or a link)")
    return root


def _manifest_bytes(root: Path, max_bytes: int) -> bytes | None:
    """The bytes of `manifest.json` if it is a readable regular file within `max_bytes`.

    None otherwise: validation then reports why, naming the file and the rule.
    """
    path = root / MANIFEST_FILE
    if path.is_symlink() or not path.is_file() or path.stat().st_size > max_bytes:
        return None
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError:
        return None
    return raw if len(raw) <= max_bytes else None


def _manifest_name(raw: bytes) -> str | None:
    try:
        return parse_manifest(raw).name
    except ManifestError:
        return None


def _approval_of(ws: Workspace, root: Path, digest: str) -> ApprovalResult | None:
    """The approval of `digest`, if any, as seen from the folder `root` asked about."""
    row = ws.db.execute(
        "SELECT name, corpus_path FROM packages WHERE digest = ?", [digest]
    ).fetchone()
    if row is None:
        return None
    return ApprovalResult(
        name=row[0],
        digest=digest,
        source_path=root,
        corpus_path=ws.root / row[1],
        already_approved=True,
        report=None,
        removed_leftovers=[],
    )


def _decision_row(
    *,
    digest: str,
    name: str | None,
    root: Path,
    decision: str,
    operator: str,
    reason: str | None,
    decided_at: str,
    report_json: str,
) -> dict:
    return {
        "digest": digest,
        "name": name,
        "source_path": str(root),
        "decision": decision,
        "operator": operator,
        "reason": reason,
        "decided_at": decided_at,
        "report_json": report_json,
    }


def _decision(row: dict) -> IngestDecision:
    report = row["report_json"]
    return IngestDecision(
        id=row["id"],
        digest=row["digest"],
        name=row["name"],
        source_path=row["source_path"],
        decision=row["decision"],
        operator=row["operator"],
        reason=row["reason"],
        decided_at=datetime.fromisoformat(row["decided_at"]),
        report=ValidationReport.model_validate_json(report) if report else None,
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
