"""Rebuild a package's git repository from its objects instead of copying `.git/`.

The new repository is made by `git init` with an empty template (no sample hooks). The objects
reachable from the drive's branches, tags and HEAD are packed by the drive's git and indexed by the
new repository's git with `--strict` (each object checked as `fsck` would), then the branches and
tags are recreated: only objects and ref names cross over, so no hook, config or other `.git/`
content from the drive survives. Git reads the drive's repository only through an explicit
`--git-dir` (never a repository found by searching parent folders, and never refused for being
owned by another user, as a drive written on another machine is) and through `run_git`, so it
cannot run anything.
"""

import os
from pathlib import Path

from engine.core.errors import IngestError
from engine.intake.manifest import ManifestV1
from engine.isolation.gitsafe import GitError, run_git

REF_PREFIXES = ("refs/heads", "refs/tags")


def rebuild_repo(source: Path, dest: Path, manifest: ManifestV1) -> None:
    """Create a clean repository at `dest` holding `source`'s branches, tags and HEAD.

    HEAD points at the drive's HEAD branch, or is detached at the manifest's head when the drive's
    HEAD is detached; the working tree is checked out. Raises IngestError when the result does not
    hold the manifest's head and commits, or when `.git/` holds more than `git init` wrote.
    """
    drive = _DriveRepo(source)
    refs = drive.refs()
    branch = drive.head_branch()
    tips = sorted({sha for sha, _ in refs} | {drive.head()})
    pack = drive.git("pack-objects", "--revs", "--stdout", "--quiet", stdin="\n".join(tips) + "\n")
    dest.mkdir()
    run_git(dest, "init", "--quiet", "--template=", ".")
    pristine_config = (dest / ".git" / "config").read_bytes()
    run_git(dest, "index-pack", "--stdin", "--strict", input_bytes=pack)
    updates = "".join(f"create {ref} {sha}\n" for sha, ref in refs)
    run_git(dest, "update-ref", "--stdin", input_bytes=os.fsencode(updates))
    if branch is None:
        run_git(dest, "checkout", "--quiet", "--force", "--detach", manifest.head)
    else:
        run_git(dest, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        run_git(dest, "checkout", "--quiet", "--force")
    _verify(dest, manifest, pristine_config)


class _DriveRepo:
    """Read-only git calls on the drive's `repo/.git`, named explicitly."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.git_dir = f"--git-dir={source / '.git'}"

    def git(self, *args: str, stdin: str | None = None) -> bytes:
        data = stdin.encode() if stdin is not None else None
        return run_git(self.source, self.git_dir, *args, input_bytes=data).stdout

    def refs(self) -> list[tuple[str, str]]:
        """(sha, ref name) of every branch and tag; names keep their bytes (`os.fsdecode`)."""
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", *REF_PREFIXES)
        pairs = [line.split(" ", 1) for line in os.fsdecode(out).splitlines()]
        return [(sha, ref) for sha, ref in pairs]

    def head(self) -> str:
        return self.git("rev-parse", "--verify", "HEAD^{commit}").decode().strip()

    def head_branch(self) -> str | None:
        """The branch HEAD points at, or None when HEAD is detached."""
        result = run_git(self.source, self.git_dir, "symbolic-ref", "--quiet", "HEAD", check=False)
        if result.returncode == 1:
            return None
        if result.returncode != 0:
            err = result.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"{self.source}: cannot read HEAD: {err}")
        ref = os.fsdecode(result.stdout).strip()
        return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def _verify(repo: Path, manifest: ManifestV1, pristine_config: bytes) -> None:
    head = run_git(repo, "rev-parse", "--verify", "HEAD^{commit}").stdout.decode().strip()
    if head != manifest.head:
        raise IngestError(
            f"{repo}: rebuilt HEAD is {head}, but the manifest's head is {manifest.head}"
        )
    wanted = "".join(f"{c.sha}^{{commit}}\n" for c in manifest.commits).encode()
    listing = run_git(repo, "cat-file", "--batch-check", input_bytes=wanted).stdout.decode()
    missing = [line.split()[0] for line in listing.splitlines() if line.endswith(" missing")]
    if missing:
        raise IngestError(
            f"{repo}: manifest commits not reachable from any branch or tag of the drive's "
            f"repository: {', '.join(sha.removesuffix('^{commit}') for sha in missing)}"
        )
    hooks = repo / ".git" / "hooks"
    if hooks.exists() and any(hooks.iterdir()):
        raise IngestError(f"{hooks}: the rebuilt repository must hold no hooks")
    if (repo / ".git" / "config").read_bytes() != pristine_config:
        raise IngestError(
            f"{repo / '.git' / 'config'}: the rebuilt repository's config changed after git init"
        )
