"""One `git log` over the whole history, streamed and parsed: commits with git's own numstat.

Mining reads every commit reachable from HEAD (merges included, so the filter can count them)
from a single git process: a NUL-separated header per commit followed by `--numstat -z` entries.
"""

import io
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.isolation.gitsafe import GitError, git_argv, safe_git_env

LOG_FORMAT = "%H%x00%P%x00%an%x00%ae%x00%cI%x00%s%x00%b"
# The repository's own config must not change what the parser sees: no signatures in the output,
# no text conversion or external diff programs run, renames always detected.
LOG_OPTIONS = ("--no-show-signature", "--no-textconv", "--no-ext-diff", "--find-renames")
HEADER_FIELDS = 7
CHUNK_BYTES = 1 << 16
_NUMSTAT = re.compile(rb"\n?(\d+|-)\t(\d+|-)\t(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file a commit changed, as numstat reports it (binary files count no lines)."""

    path: str
    old_path: str
    added: int
    deleted: int
    binary: bool


@dataclass(frozen=True, slots=True)
class LogCommit:
    """A commit's metadata and numstat, straight from `git log`."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    date: datetime
    subject: str
    body: str
    files: tuple[FileChange, ...]

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body}" if self.body.strip() else self.subject

    @property
    def lines_added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def lines_deleted(self) -> int:
        return sum(f.deleted for f in self.files)


def read_log(repo: Path, *revisions: str) -> Iterator[LogCommit]:
    """Commits reachable from `revisions` (HEAD by default), newest first, with their numstat."""
    args = (
        "log",
        "-z",
        "--numstat",
        f"--format={LOG_FORMAT}",
        *LOG_OPTIONS,
        *(revisions or ("HEAD",)),
        "--",
    )
    return parse_log(_tokens(stream_git(repo, *args), repo), str(repo))


def stream_git(repo: Path, *args: str) -> Iterator[bytes]:
    """Stdout of a safe git command in chunks as it comes; GitError if git fails."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            git_argv(repo, *args),
            env=safe_git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        assert isinstance(proc.stdout, io.BufferedReader), "stdout is a buffered pipe"
        finished = False
        try:
            while chunk := proc.stdout.read1(CHUNK_BYTES):
                yield chunk
            finished = True
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            returncode = proc.wait()
        if returncode != 0:
            stderr.seek(0)
            err = stderr.read().decode("utf-8", "replace").strip()
            raise GitError(f"{repo}: git {' '.join(args[:3])} failed: {err}")


def _tokens(chunks: Iterable[bytes], repo: Path) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        yield from parts
    if rest:
        raise GitError(f"{repo}: git log output ended without its NUL terminator")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _count(raw: bytes) -> int:
    return 0 if raw == b"-" else int(raw)


def _commit(header: list[bytes], files: list[FileChange]) -> LogCommit:
    sha, parents, name, email, date, subject, body = header
    return LogCommit(
        sha=sha.decode("ascii"),
        parents=tuple(parents.decode("ascii").split()),
        author_name=_text(name),
        author_email=_text(email),
        date=datetime.fromisoformat(date.decode("ascii")),
        subject=_text(subject),
        body=_text(body),
        files=tuple(files),
    )


def parse_log(tokens: Iterable[bytes], source: str) -> Iterator[LogCommit]:
    """Commits from the NUL-separated tokens of `git log -z --numstat --format=LOG_FORMAT`.

    After a commit's header fields come its numstat entries, `added\\tdeleted\\tpath`, or for a
    rename `added\\tdeleted\\t` followed by the old and the new path as two more tokens. A token
    that is not a numstat entry starts the next commit.
    """
    header: list[bytes] = []
    files: list[FileChange] = []
    rename: tuple[bytes, bytes] | None = None
    rename_paths: list[bytes] = []
    for token in tokens:
        if len(header) < HEADER_FIELDS:
            header.append(token)
            continue
        if rename is not None:
            rename_paths.append(token)
            if len(rename_paths) == 2:
                old, new = rename_paths
                files.append(_change(rename, _path(new), _path(old)))
                rename, rename_paths = None, []
            continue
        stat = _NUMSTAT.fullmatch(token)
        if stat is None:
            yield _commit(header, files)
            header, files = [token], []
            continue
        added, deleted, path = stat.groups()
        if path:
            files.append(_change((added, deleted), _path(path), _path(path)))
        else:
            rename = (added, deleted)
    if rename is not None or 0 < len(header) < HEADER_FIELDS:
        raise GitError(f"{source}: git log output ended in the middle of a commit")
    if header:
        yield _commit(header, files)


def _change(stat: tuple[bytes, bytes], path: str, old_path: str) -> FileChange:
    added, deleted = stat
    return FileChange(
        path=path,
        old_path=old_path,
        added=_count(added),
        deleted=_count(deleted),
        binary=added == b"-",
    )
