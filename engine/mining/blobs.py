"""Git objects read on demand from one running `git cat-file --batch` process.

Everything the filter reads after `git log` (trees for the tests-exist rule, files at parent and
commit for the symbol comparison) goes through one process, asked one object at a time.
"""

import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from engine.isolation.gitsafe import GitError, git_argv, safe_git_env
from engine.mining.errors import MiningError

TREE_MODE = b"40000"


class ObjectReader:
    """`git cat-file --batch` on `repo`: ask for `rev:path`, an object id or `rev^{tree}`."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self._proc = subprocess.Popen(
            git_argv(repo, "cat-file", "--batch"),
            env=safe_git_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None, "pipes"
        self._in: IO[bytes] = self._proc.stdin
        self._out: IO[bytes] = self._proc.stdout
        self._trees: dict[bytes, list[tuple[bytes, str, bytes]]] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in.close()
        if exc_type is not None:
            self._proc.kill()
        self._out.close()
        returncode = self._proc.wait()
        self._stderr.close()
        if exc_type is None and returncode != 0:
            raise GitError(f"{self.repo}: git cat-file --batch exited with {returncode}")

    def read(self, name: str) -> tuple[bytes, str, bytes] | None:
        """The id, type and content of the object `name`; None when there is no such object."""
        if "\n" in name:
            raise MiningError(f"{self.repo}: {name!r} holds a newline; git cannot be asked for it")
        self._in.write(name.encode("utf-8", "surrogateescape") + b"\n")
        self._in.flush()
        header = self._out.readline()
        if not header:
            self._stderr.seek(0)
            err = self._stderr.read().decode("utf-8", "replace").strip()
            raise GitError(f"{self.repo}: git cat-file --batch stopped answering: {err}")
        fields = header.split()
        if fields[-1] == b"missing":
            return None
        if len(fields) != 3:
            raise GitError(f"{self.repo}: git cat-file --batch: {name}: {header!r}")
        size = int(fields[2])
        content = self._out.read(size + 1)
        return fields[0], fields[1].decode("ascii"), content[:size]

    def read_file(self, rev: str, path: str) -> bytes | None:
        """The file at `path` in `rev`; None when `rev` has no such path."""
        return self._blob(f"{rev}:{path}")

    def read_blob(self, oid: bytes) -> bytes:
        """The content of the file object `oid`."""
        content = self._blob(oid.decode("ascii"))
        if content is None:
            raise GitError(f"{self.repo}: object {oid.decode('ascii')} is missing")
        return content

    def _blob(self, name: str) -> bytes | None:
        found = self.read(name)
        if found is None:
            return None
        _, kind, content = found
        if kind != "blob":
            raise MiningError(f"{self.repo}: {name} is a {kind}, not a file")
        return content

    def root_tree(self, rev: str) -> bytes:
        """The id of the top tree of commit `rev`."""
        found = self.read(f"{rev}^{{tree}}")
        if found is None:
            raise GitError(f"{self.repo}: commit {rev} has no tree")
        oid, _, content = found
        self._trees.setdefault(oid, _parse_tree(content, len(oid) // 2))
        return oid

    def tree_entries(self, oid: bytes) -> list[tuple[bytes, str, bytes]]:
        """(mode, name, object id) of each entry of the tree `oid`."""
        if (cached := self._trees.get(oid)) is not None:
            return cached
        found = self.read(oid.decode("ascii"))
        if found is None or found[1] != "tree":
            raise GitError(f"{self.repo}: {oid.decode('ascii')} is not a tree")
        entries = _parse_tree(found[2], len(oid) // 2)
        self._trees[oid] = entries
        return entries


def _parse_tree(data: bytes, oid_bytes: int) -> list[tuple[bytes, str, bytes]]:
    entries = []
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        oid = data[nul + 1 : nul + 1 + oid_bytes].hex().encode("ascii")
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries.append((data[pos:space], name, oid))
        pos = nul + 1 + oid_bytes
    return entries
