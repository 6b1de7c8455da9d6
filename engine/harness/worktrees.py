"""Throwaway checkouts of a corpus repository at one commit, removed when the block ends.

A checkout is a `git archive` snapshot (engine.isolation.snapshot), not a git worktree: it writes
nothing into the corpus repository and has no `.git` a test could reach.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.core.staged import remove_tree
from engine.harness.package import HarnessError
from engine.isolation.gitsafe import run_git
from engine.isolation.snapshot import write_snapshot


@contextmanager
def checkout(repo: Path, sha: str, tmp_root: Path | None = None) -> Iterator[Path]:
    """A fresh folder holding the tree of `sha`; removed afterwards, whatever happens."""
    holder = Path(tempfile.mkdtemp(prefix="cra-checkout-", dir=tmp_root))
    try:
        tree = holder / "repo"
        write_snapshot(repo, sha, tree)
        yield tree
    finally:
        remove_tree(holder)


def under_link(root: Path, target: Path) -> bool:
    """Whether writing `target` (a path under the resolved `root`) would go through a link out of
    `root`."""
    parent = os.path.realpath(target.parent)
    return parent != str(root) and not parent.startswith(f"{root}/")


def overlay_files(repo: Path, sha: str, paths: list[str], tree: Path) -> None:
    """Make each of `paths` in `tree` what it is at `sha`: written, or removed if absent there."""
    git_dir = f"--git-dir={repo / '.git'}"
    listed = run_git(repo, git_dir, "ls-tree", "-z", sha, "--", *paths).stdout
    present = {}
    for entry in listed.split(b"\0"):
        if entry:
            meta, name = entry.split(b"\t", 1)
            present[name.decode("utf-8")] = meta.split()[2].decode("ascii")
    root = tree.resolve()
    for rel in paths:
        target = root / rel
        if under_link(root, target):
            raise HarnessError(f"{repo}: {rel} at {sha} lies under a link in the checkout")
        if rel not in present:
            if target.exists() or target.is_symlink():
                target.unlink()
            continue
        data = run_git(repo, git_dir, "cat-file", "blob", present[rel]).stdout
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_bytes(data)
