"""How a pane reads or acts through the engine off the UI thread, and what becomes a message
rather than a crash.

The Report pane uses it without the polling base (`screens.pane`).
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from textual import on
from textual.message import Message
from textual.screen import Screen

from engine.core.errors import CraError
from engine.core.workspace import Workspace, reopened

# Refusals, a busy database, I/O.
WORKER_ERRORS: tuple[type[Exception], ...] = (CraError, sqlite3.Error, OSError)

Value = TypeVar("Value")


@dataclass
class Fetched(Message):
    """A fetch ended: `deliver` hands its value (or its error) over on the UI thread."""

    deliver: Callable[[], object]


class Fetches(Screen[None]):
    """A screen over the workspace `_ws` that reads or acts once in a thread worker and gets
    the answer back on the UI thread: `fetch(read, then)`. The worker only posts a message."""

    _ws: Workspace

    def fetch(
        self,
        read: Callable[[Workspace], Value],
        then: Callable[[Value], object],
        *,
        title: str,
        failed: Callable[[str], object] | None = None,
        group: str = "fetch",
        exclusive: bool = False,
    ) -> None:
        """Call `read` on the workspace, opened again for a worker thread; on the UI thread
        `then` gets its value. A refusal, a busy database or an I/O error goes to `failed`, or
        else is notified under `title`."""
        self.run_worker(
            partial(self._fetch_in_worker, read, then, title, failed),
            thread=True,
            group=group,
            exclusive=exclusive,
        )

    def _fetch_in_worker(
        self,
        read: Callable[[Workspace], Value],
        then: Callable[[Value], object],
        title: str,
        failed: Callable[[str], object] | None,
    ) -> None:
        try:
            with reopened(self._ws) as ws:
                value = read(ws)
        except WORKER_ERRORS as exc:
            error = str(exc)
            if failed is None:
                failed = partial(self.notify, title=title, severity="error", markup=False)
            self.post_message(Fetched(partial(failed, error)))
            return
        self.post_message(Fetched(partial(then, value)))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        message.deliver()
