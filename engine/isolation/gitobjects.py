"""Read a repository's objects in bulk: git with an explicit git folder, blobs in one batch.

Every reader names `repo/.git` itself, so git never finds another repository around a broken one
and never refuses a repository owned by another user ("dubious ownership"); and reads go through
`engine.isolation.gitsafe`, so nothing in the repository's config or hooks runs.
"""

import subprocess
from pathlib import Path

from engine.isolation.gitsafe import GitError, run_git

GIT_TIMEOUT_S = 600.0


def repo_git(
    repo: Path, *args: str, check: bool = True, input_bytes: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run git on the repository whose work tree is `repo`, naming its `.git` explicitly."""
    return run_git(
        repo,
        f"--git-dir={repo.resolve() / '.git'}",
        *args,
        check=check,
        input_bytes=input_bytes,
        timeout=GIT_TIMEOUT_S,
    )


def read_blobs(repo: Path, names: list[str]) -> list[bytes]:
    """The contents of the objects `names`, in order, from one `git cat-file --batch`."""
    batch = "".join(f"{name}\n" for name in names).encode("ascii")
    out = repo_git(repo, "cat-file", "--batch", input_bytes=batch).stdout
    contents = []
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].decode("ascii", "replace").split(" ")
        if len(header) != 3:
            raise GitError(f"{repo}: git cat-file could not read {' '.join(header)}")
        start = header_end + 1
        contents.append(out[start : start + int(header[2])])
        pos = start + int(header[2]) + 1
    if len(contents) != len(names):
        raise GitError(f"{repo}: git cat-file returned {len(contents)} objects for {len(names)}")
    return contents
