"""Waiting in a Pilot test: let the real app run until something holds, never sleep and hope."""

import time
from collections.abc import Callable

from textual.pilot import Pilot

LIMIT_S = 60.0
"""How long a wait may take before the test fails: generous, since a loaded 2-core machine runs
the workers that the condition waits for; a wait that holds returns at once."""


async def until(
    pilot: Pilot,
    condition: Callable[[], bool],
    what: str,
    limit_s: float = LIMIT_S,
    detail: Callable[[], str] | None = None,
) -> None:
    """Let the app run until `condition` holds; after `limit_s` seconds fail, naming `what`
    (and `detail()`, what the screen showed, when given)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            shown = f":\n{detail()}" if detail is not None else ""
            raise AssertionError(f"gave up waiting for {what} after {limit_s:g} s{shown}")
        await pilot.pause(0.05)
