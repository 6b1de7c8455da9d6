"""The end of a log file, for an error message or a report: read from its last 64 KiB only."""

from pathlib import Path

TAIL_BYTES = 65536


def file_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of the file at `path`; empty when there is none."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read()
    except FileNotFoundError:
        return ""
    text = tail.decode("utf-8", errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])
