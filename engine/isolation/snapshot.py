"""Write a commit's tree into a folder with `git archive`, never through or as a leaving link.

Used by the validation dry run (HEAD of a drive's repository, which must not be written to, so
no worktree) and by the harness (any commit of a corpus repository). Members are written one by
one, refusing absolute paths, `..`, duplicates, links leaving the folder and special files
(Python 3.11 before 3.11.4 lacks `extractall(filter="data")`).
"""

import io
import os
import shutil
import tarfile
from pathlib import Path

from engine.core.errors import CraError
from engine.isolation.gitsafe import GitError, run_git

SNAPSHOT_GIT_TIMEOUT_S = 600.0


class SnapshotError(CraError):
    """The snapshot could not be written; `path` names the repository file at fault."""

    def __init__(self, detail: str, path: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.path = path


def write_snapshot(repo: Path, treeish: str, dest: Path) -> None:
    """Write the tree of `treeish` in the repository `repo` (its `.git`) under the new `dest`."""
    git_dir = f"--git-dir={repo / '.git'}"
    try:
        archive = run_git(
            repo, git_dir, "archive", "--format=tar", treeish, timeout=SNAPSHOT_GIT_TIMEOUT_S
        ).stdout
    except GitError as exc:
        raise SnapshotError(f"snapshot of {treeish} failed: {exc}", "repo") from exc
    dest.mkdir(parents=True)
    root = dest.resolve()
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                _unpack_member(tar, member, root, treeish)
    except tarfile.TarError as exc:
        raise SnapshotError(f"snapshot of {treeish} cannot be read: {exc}", "repo") from exc


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, treeish: str) -> None:
    refused = f"snapshot of {treeish} refused"
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts or "" in parts:
        raise SnapshotError(f"{refused}: {member.name!r} leaves the snapshot", "repo")
    target = root.joinpath(*parts)
    where = f"repo/{member.name}"
    if os.path.realpath(target.parent) != str(target.parent):
        raise SnapshotError(f"{refused}: {member.name} lies under a link", where)
    target.parent.mkdir(parents=True, exist_ok=True)
    if member.isdir():
        target.mkdir(exist_ok=True)
        return
    if target.exists() or target.is_symlink():
        raise SnapshotError(f"{refused}: {member.name} appears twice", where)
    if member.isfile():
        source = tar.extractfile(member)
        assert source is not None, "a regular member always has contents"
        with source, target.open("xb") as sink:
            shutil.copyfileobj(source, sink)
        target.chmod(0o755 if member.mode & 0o111 else 0o644)
    elif member.issym():
        target.symlink_to(member.linkname)
        if os.path.commonpath([os.path.realpath(target), root]) != str(root):
            target.unlink()
            detail = f"{refused}: {member.name} links outside to {member.linkname}"
            raise SnapshotError(detail, where)
    else:
        raise SnapshotError(f"{refused}: {member.name} is not a file, folder or link", where)
