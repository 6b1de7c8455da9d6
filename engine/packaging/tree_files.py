"""Read a repository's files as committed at one revision (HEAD unless told), through git,
never from the work tree.

Every git call names the git folder itself (`--git-dir`) and runs through
`engine.isolation.gitsafe`, so the repository's hooks and config never run and a work tree's
uncommitted edits are never read.
"""

import subprocess
import tomllib
from pathlib import Path

from engine.isolation.gitsafe import GitError, run_git
from engine.packaging.errors import PackagingError


class TreeFiles:
    """The files of the commit `rev` of the repository whose git folder is `git_dir`."""

    def __init__(self, git_dir: Path, rev: str = "HEAD") -> None:
        self.git_dir = git_dir.absolute()
        self.rev = rev
        self.at = "HEAD" if rev == "HEAD" else rev[:12]
        """How messages name the revision."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", rev).stdout
        blobs: set[str] = set()
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, _sha = meta.decode("ascii").split()
            if kind == "blob" and not mode.startswith("120"):
                blobs.add(path.decode("utf-8", "surrogateescape"))
        self.paths = frozenset(blobs)

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_git(self.git_dir, f"--git-dir={self.git_dir}", *args)

    def has(self, path: str) -> bool:
        return path in self.paths

    def read(self, path: str) -> str:
        """The text of `path` at the revision; a missing or non-UTF-8 file is a PackagingError."""
        if path not in self.paths:
            raise PackagingError(f"{path}: not a file at {self.at}")
        try:
            raw = self._git("cat-file", "blob", f"{self.rev}:{path}").stdout
        except GitError as exc:
            raise PackagingError(f"{path}: cannot be read at {self.at}: {exc}") from exc
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PackagingError(f"{path}: not UTF-8 text at {self.at} ({exc})") from exc

    def read_toml(self, path: str) -> dict:
        """`path` parsed as TOML; invalid TOML is a PackagingError naming the file."""
        try:
            return tomllib.loads(self.read(path))
        except tomllib.TOMLDecodeError as exc:
            raise PackagingError(f"{path} at {self.at} is not valid TOML: {exc}") from exc
