"""The CLI's stdout and stderr pass every write through `engine.core.terminal_text.neutralise`.

Commands print commit subjects, test ids, logged prompts, server replies: text from outside.
Rather than trust every `click.echo` to remember, `cra` swaps both streams for the whole process
(`main`), and every command invoked through click swaps them too (`CraGroup.main`, which is what
tests drive), so no output path can print a control character raw, a traceback's included.
The console itself is untouched: Textual writes to the terminal through `sys.__stderr__`, and
its panes neutralise what they show.
"""

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import TextIO

from engine.core.terminal_text import neutralise


class _VisibleStream(io.TextIOBase):
    """A text stream writing `neutralise(text)` to the stream it wraps."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._inner.errors

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._inner.write(neutralise(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()


def _visible(stream: TextIO) -> TextIO:
    return stream if isinstance(stream, _VisibleStream) else _VisibleStream(stream)  # type: ignore[return-value]


def install_visible_output() -> None:
    """For the rest of the process, including a traceback printed as it ends."""
    sys.stdout, sys.stderr = _visible(sys.stdout), _visible(sys.stderr)


@contextlib.contextmanager
def visible_output() -> Iterator[None]:
    """Within the block, `sys.stdout` and `sys.stderr` show control characters as escapes."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _visible(out), _visible(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
