"""The corpus folder on disk: staging a package, hashing what it holds, placing it atomically.

A package is built in `corpus/.staging/<name>-<digest12>-<random>/`, every file and folder is
fsynced, and the folder is renamed to `corpus/<name>-<digest12>/` in one step, so a crash leaves
either nothing or a whole package. Staging leftovers are removed by the next approval, which holds
`corpus/.lock` so that two approvals never clear each other's staging folders.
"""

import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict

from engine.core.durable import fsync_dir, fsync_tree
from engine.core.errors import IngestError
from engine.core.locks import exclusive_lock
from engine.core.staged import remove_tree
from engine.intake.manifest import MANIFEST_FILE, ManifestV1
from engine.intake.repo_rebuild import rebuild_repo

STAGING_DIR = ".staging"
LOCK_FILE = ".lock"
_CHUNK = 1 << 20


class FileRecord(BaseModel):
    """One file of a corpus package: its path inside the package folder, kind, sha256 and size.

    A symlink is recorded by its target text: `sha256` and `size_bytes` are those of the target.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    kind: Literal["file", "symlink"]
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class StagedPackage:
    """A complete, fsynced package folder under `corpus/.staging/`, ready to be renamed."""

    path: Path
    files: list[FileRecord]


def folder_name(name: str, digest: str) -> str:
    """The corpus folder of package `name` with manifest digest `digest`."""
    return f"{name}-{digest[:12]}"


@contextmanager
def corpus_lock(corpus_dir: Path) -> Iterator[None]:
    """Hold the corpus lock for the block; the kernel releases it if the process dies."""
    with exclusive_lock(corpus_dir / LOCK_FILE):
        yield


def clear_staging(corpus_dir: Path) -> list[Path]:
    """Remove every leftover staging folder (a crashed approval's); return what was removed."""
    staging = corpus_dir / STAGING_DIR
    if not staging.is_dir():
        return []
    leftovers = sorted(staging.iterdir())
    for path in leftovers:
        remove_tree(path)
    return leftovers


def copy_file(src: Path, dest: Path) -> tuple[str, int]:
    """Copy the regular file `src` to the new file `dest`, fsync it; return (sha256, size).

    The hash is of the bytes written, so it proves what the copy holds, whatever the drive held
    when the package was validated. A link or anything but a regular file is refused.
    """
    with _open_regular(src) as fin, open(dest, "xb") as fout:
        digest = hashlib.sha256()
        size = 0
        for block in iter(lambda: fin.read(_CHUNK), b""):
            digest.update(block)
            fout.write(block)
            size += len(block)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest(), size


def stage_package(
    corpus_dir: Path, source: Path, raw_manifest: bytes, manifest: ManifestV1, digest: str
) -> StagedPackage:
    """Build the package from the drive folder `source` under `corpus/.staging/`.

    Writes the manifest bytes that were hashed into `digest`, copies each wheel the manifest lists
    (refusing one whose sha256 no longer matches, or a wheel the manifest does not list), rebuilds
    the repository and checks that its working tree is the drive's, then fsyncs everything.
    A failure removes the staging folder and raises IngestError (GitError when git fails).
    """
    staging = (
        corpus_dir / STAGING_DIR / f"{folder_name(manifest.name, digest)}-{secrets.token_hex(4)}"
    )
    staging.mkdir(parents=True)
    try:
        files = [_write_manifest(staging / MANIFEST_FILE, raw_manifest)]
        files += _copy_wheels(source / "packages", staging / "packages", manifest)
        rebuild_repo(source / "repo", staging / "repo", manifest)
        repo_files = _tree_records(staging / "repo", prefix="repo/")
        _compare_with_drive(repo_files, source / "repo")
        files += repo_files
        fsync_tree(staging)
    except BaseException:
        remove_tree(staging)
        raise
    return StagedPackage(path=staging, files=files)


def stage_received(
    corpus_dir: Path,
    source: Path,
    raw_manifest: bytes,
    digest: str,
    manifest: ManifestV1,
    expected: list[FileRecord],
) -> StagedPackage:
    """Build an approved package that another machine sent (its manifest, `packages/` and
    `repo/.git`) under `corpus/.staging/`, as `stage_package` builds one from a drive: the
    manifest's bytes must hash to `digest`, each wheel to the manifest's sha256, the repository
    is rebuilt from its objects (nothing else of `.git/` crosses over), and every file must be
    the one the sender recorded at approval (`expected`). A failure removes the staging folder
    and raises IngestError naming the first difference."""
    got = hashlib.sha256(raw_manifest).hexdigest()
    if got != digest:
        raise IngestError(
            f"{source / MANIFEST_FILE}: sha256 {got}, the package's digest is {digest}"
        )
    staging = (
        corpus_dir / STAGING_DIR / f"{folder_name(manifest.name, digest)}-{secrets.token_hex(4)}"
    )
    staging.mkdir(parents=True)
    try:
        files = [_write_manifest(staging / MANIFEST_FILE, raw_manifest)]
        files += _copy_wheels(source / "packages", staging / "packages", manifest)
        rebuild_repo(source / "repo", staging / "repo", manifest)
        files += _tree_records(staging / "repo", prefix="repo/")
        _compare_with_recorded(sorted(files, key=lambda r: r.path), expected, source)
        fsync_tree(staging)
    except BaseException:
        remove_tree(staging)
        raise
    return StagedPackage(path=staging, files=files)


def _compare_with_recorded(
    files: list[FileRecord], expected: list[FileRecord], source: Path
) -> None:
    want = {record.path: record for record in expected}
    have = {record.path: record for record in files}
    for path in sorted(want.keys() | have.keys()):
        if want.get(path) != have.get(path):
            what = (
                "is missing"
                if path not in have
                else "was not recorded at approval"
                if path not in want
                else f"has sha256 {have[path].sha256}, recorded {want[path].sha256}"
            )
            raise IngestError(f"{source}: {path} {what}; the package is not the approved one")


def place(staged: Path, final: Path) -> None:
    """Rename the staged folder to its corpus name in one step and make the rename durable."""
    staged.rename(final)
    fsync_dir(final.parent)
    fsync_dir(staged.parent)


def _tree_records(root: Path, prefix: str) -> list[FileRecord]:
    """Every file and link under `root` except a top-level `.git/`, hashed, sorted by path."""
    records = []
    for rel, path, kind in _walk(root):
        if kind == "other":
            raise IngestError(f"{path}: not a regular file, folder or link")
        records.append(_record(path, prefix + rel, kind))
    return sorted(records, key=lambda r: r.path)


def _write_manifest(dest: Path, raw: bytes) -> FileRecord:
    with open(dest, "xb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    return FileRecord(
        path=MANIFEST_FILE,
        kind="file",
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
    )


def _copy_wheels(src_dir: Path, dest_dir: Path, manifest: ManifestV1) -> list[FileRecord]:
    expected = {w.filename: w.sha256 for w in manifest.wheels}
    present = sorted(p.name for p in src_dir.iterdir()) if src_dir.is_dir() else []
    if unlisted := [name for name in present if name not in expected]:
        raise IngestError(f"{src_dir}: not listed in the manifest: {', '.join(unlisted)}")
    dest_dir.mkdir()
    records = []
    for filename, want in sorted(expected.items()):
        got, size = copy_file(src_dir / filename, dest_dir / filename)
        if got != want:
            raise IngestError(
                f"{src_dir / filename}: sha256 of the copy is {got}, the manifest says {want}: "
                "the drive changed after validation"
            )
        records.append(
            FileRecord(path=f"packages/{filename}", kind="file", sha256=got, size_bytes=size)
        )
    return records


def _compare_with_drive(repo_files: list[FileRecord], drive_repo: Path) -> None:
    """The rebuilt working tree must be the drive's working tree, which is what was validated."""
    drive = {rel: (path, kind) for rel, path, kind in _walk(drive_repo)}
    for record in repo_files:
        rel = record.path.removeprefix("repo/")
        if rel not in drive:
            raise IngestError(
                f"{drive_repo / rel}: in the repository's HEAD but missing from the drive's "
                "working tree, which is what was validated"
            )
        path, kind = drive[rel]
        if kind != record.kind or _record(path, record.path, kind) != record:
            raise IngestError(
                f"{drive_repo / rel}: differs from the same file at HEAD; the working tree "
                "that was validated is not the commit being approved"
            )


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, Path, str]]:
    """(relative POSIX path, path, kind) below `root`, never following links, skipping `.git/`."""
    with os.scandir(root / rel if rel else root) as entries:
        children = sorted(entries, key=lambda e: e.name)
    for entry in children:
        if not rel and entry.name == ".git":
            continue
        sub = f"{rel}{entry.name}"
        try:
            sub.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise IngestError(f"{entry.path!r}: file name is not valid UTF-8") from exc
        if entry.is_symlink():
            yield sub, Path(entry.path), "symlink"
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(root, sub + "/")
        elif entry.is_file(follow_symlinks=False):
            yield sub, Path(entry.path), "file"
        else:
            yield sub, Path(entry.path), "other"


def _record(path: Path, rel: str, kind: str) -> FileRecord:
    if kind == "symlink":
        target = os.fsencode(path.readlink())
        return FileRecord(
            path=rel,
            kind="symlink",
            sha256=hashlib.sha256(target).hexdigest(),
            size_bytes=len(target),
        )
    digest = hashlib.sha256()
    size = 0
    with _open_regular(path) as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
            size += len(block)
    return FileRecord(path=rel, kind="file", sha256=digest.hexdigest(), size_bytes=size)


def _open_regular(path: Path) -> BinaryIO:
    """Open `path` for reading if it is a regular file: never follows a link or waits on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if path.is_symlink():
            raise IngestError(f"{path}: is a symbolic link, expected a regular file") from exc
        raise IngestError(f"{path}: cannot be read: {exc.strerror}") from exc
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise IngestError(f"{path}: not a regular file")
    return fh
