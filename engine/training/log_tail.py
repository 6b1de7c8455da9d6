"""Follow an append-only log file: the complete lines added since the last read, read in chunks.

A training run's `train.log` grows for hours and can reach millions of lines; the console must
reattach to it at any time without reading it all and keep a fixed amount of it in memory.
`LogTail` keeps the file open and reads from where it stopped, in `chunk`-sized `pread`s:

- a line is returned once its newline is written; the unfinished last line is kept (and shown
  as `partial`) until it is. A partial line longer than `max_line` bytes (a progress bar
  redrawn with `\\r` and never ended) keeps only what follows its last `\\r`, or is cut and
  returned as it stands, so it cannot grow without bound;
- with `keep_last` set, a backlog of more than `skip_over` unread bytes (a big log opened for
  the first time, or a console that fell behind) is read only for its last `keep_last` lines,
  found by reading backwards from the end; the bytes passed over are counted in `skipped`;
- a file smaller than the position read up to was truncated: reading starts again from 0;
- a path that names another file than the one open was rotated: the old file is read to its
  end (its unfinished line returned as a line), then the new one from its start.

`LineRing` keeps the last `capacity` lines (a fixed-size circular list, numbered from the first
line ever added), so a million-line log costs the console what `capacity` lines do.
"""

import os
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Literal

CHUNK = 64 * 1024
MAX_LINE = 16 * 1024
SKIP_OVER = 1024 * 1024
Restart = Literal["truncated", "rotated"]


@dataclass(frozen=True)
class TailRead:
    """What one `LogTail.read` found.

    `lines`: new complete lines, oldest first, without their newline (a trailing `\\r` of a
    CRLF ending is dropped, `\\r` inside a line kept). `restarted`: the file was truncated or
    rotated since the previous read. `skipped`: bytes passed over without being read. `partial`:
    the unfinished last line so far. `more`: the read stopped at `max_bytes` with more to read.
    """

    lines: list[str]
    restarted: Restart | None
    skipped: int
    partial: str
    more: bool


def _text(raw: bytes, max_line: int) -> str:
    """One line as text; longer than `max_line` bytes, its first `max_line` bytes and `…`."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) > max_line:
        return raw[:max_line].decode("utf-8", errors="replace") + "…"
    return raw.decode("utf-8", errors="replace")


class LogTail:
    """Reads the lines appended to `path` since the previous `read`; see the module docstring.

    Not thread-safe: one thread at a time may call `read` (the console's poll never overlaps).
    """

    def __init__(
        self,
        path: Path,
        *,
        keep_last: int | None = None,
        skip_over: int = SKIP_OVER,
        chunk: int = CHUNK,
        max_line: int = MAX_LINE,
    ) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        if chunk < 1 or max_line < 1 or skip_over < 0:
            raise ValueError("chunk and max_line must be positive, skip_over not negative")
        self.path = path
        self._keep_last = keep_last
        self._skip_over = skip_over
        self._chunk = chunk
        self._max_line = max_line
        self._file: FileIO | None = None
        self._pos = 0
        self._partial = b""

    @property
    def position(self) -> int:
        """The offset read up to in the open file (its unfinished line included)."""
        return self._pos

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, max_bytes: int | None = None) -> TailRead:
        """The lines completed since the previous read; at most `max_bytes` bytes are read."""
        lines: list[str] = []
        restarted: Restart | None = None
        skipped = 0
        budget = max_bytes if max_bytes is not None else -1
        if self._file is not None:
            restarted, skipped, budget = self._check_file(lines, budget)
            if budget == 0:
                return TailRead(lines, restarted, skipped, self.partial, True)
        if self._file is None and not self._open():
            return TailRead(lines, restarted, skipped, "", False)
        more_skipped, budget = self._pump(lines, budget)
        return TailRead(lines, restarted, skipped + more_skipped, self.partial, self._behind())

    def _check_file(self, lines: list[str], budget: int) -> tuple[Restart | None, int, int]:
        """Notice a truncation (start again from 0) or a rotation (read the old file to its end,
        then close it); returns what happened, the bytes skipped and the budget left. A rotated
        file read only up to the budget stays open, to be finished by the next read."""
        own = self._own_stat()
        if own.st_size < self._pos:
            self._pos = 0
            self._partial = b""
            return "truncated", 0, budget
        try:
            named = self.path.stat()
        except FileNotFoundError:
            return None, 0, budget
        if (named.st_ino, named.st_dev) == (own.st_ino, own.st_dev):
            return None, 0, budget
        skipped, budget = self._pump(lines, budget)
        if self._behind():
            return None, skipped, budget
        if self._partial:
            lines.append(_text(self._partial, self._max_line))
            self._partial = b""
        self.close()
        return "rotated", skipped, budget

    def _behind(self) -> bool:
        """The open file holds bytes not read yet."""
        return self._file is not None and self._pos < self._own_stat().st_size

    @property
    def partial(self) -> str:
        """The unfinished last line read so far, as a terminal shows it (after its last `\\r`)."""
        raw = self._partial.rstrip(b"\r")
        return _text(raw[raw.rfind(b"\r") + 1 :], self._max_line)

    # -- reading ------------------------------------------------------------------------

    def _open(self) -> bool:
        try:
            self._file = FileIO(self.path, "r")
        except FileNotFoundError:
            return False
        self._pos = 0
        self._partial = b""
        return True

    def _own_stat(self) -> os.stat_result:
        assert self._file is not None
        return os.fstat(self._file.fileno())

    def _pump(self, lines: list[str], budget: int) -> tuple[int, int]:
        """Read the open file from the position to its current end (or until `budget` bytes,
        when not negative, are spent); returns the bytes skipped and the budget left."""
        assert self._file is not None
        fd = self._file.fileno()
        end = self._own_stat().st_size
        skipped = 0
        if self._keep_last is not None and end - self._pos > self._skip_over:
            start = self._last_lines_start(fd, self._pos, end, self._keep_last)
            if start > self._pos:
                skipped = start - self._pos
                self._pos = start
                self._partial = b""
        while self._pos < end and budget != 0:
            size = min(self._chunk, end - self._pos)
            if budget > 0:
                size = min(size, budget)
                budget -= size
            data = os.pread(fd, size, self._pos)
            if not data:
                break
            self._pos += len(data)
            self._split(self._partial + data, lines)
        return skipped, budget

    def _split(self, data: bytes, lines: list[str]) -> None:
        parts = data.split(b"\n")
        self._partial = parts.pop()
        lines.extend(_text(part, self._max_line) for part in parts)
        if len(self._partial) > self._max_line:
            stripped = self._partial.rstrip(b"\r")
            last = stripped[stripped.rfind(b"\r") + 1 :]
            if len(last) <= self._max_line:
                self._partial = last
            else:
                lines.append(_text(self._partial, self._max_line))
                self._partial = b""

    def _last_lines_start(self, fd: int, low: int, end: int, count: int) -> int:
        """The offset where the last `count` lines of [low, end) begin (the unfinished last
        line counts as one), found by reading backwards a chunk at a time; `low` if fewer."""
        wanted = count + 1 if end > low and os.pread(fd, 1, end - 1) == b"\n" else count
        seen = 0
        cursor = end
        while cursor > low:
            size = min(self._chunk, cursor - low)
            cursor -= size
            data = os.pread(fd, size, cursor)
            index = len(data)
            while True:
                index = data.rfind(b"\n", 0, index)
                if index < 0:
                    break
                seen += 1
                if seen == wanted:
                    return cursor + index + 1
        return low


class LineRing:
    """The last `capacity` lines added; `total` counts every line ever added, so line `n`
    (0-based, in order of adding) is kept while `n >= first`."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._slots: list[str] = [""] * capacity
        self._len = 0
        self.total = 0

    def __len__(self) -> int:
        return self._len

    @property
    def first(self) -> int:
        """The number of the oldest line kept."""
        return self.total - self._len

    def __getitem__(self, index: int) -> str:
        """The `index`-th line kept (0: the oldest kept, -1: the newest)."""
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"line {index} of {self._len} kept")
        return self._slots[(self.first + index) % self.capacity]

    def extend(self, lines: list[str]) -> int:
        """Add `lines`; returns how many older lines they pushed out."""
        passed = max(0, len(lines) - self.capacity)
        self.total += passed
        for line in lines[passed:]:
            self._slots[self.total % self.capacity] = line
            self.total += 1
        before = self._len
        self._len = min(self.capacity, self._len + len(lines))
        return before + len(lines) - self._len

    def clear(self) -> None:
        self._slots = [""] * self.capacity
        self._len = 0
        self.total = 0
