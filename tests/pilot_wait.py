"""Waiting in a test: let the real thing run until something holds, never sleep and hope.

`until` lets a Pilot-driven app run until a condition holds; `wait_for` polls a condition on
processes, jobs or files from a plain test. Both fail with what they waited for once the limit
passes, and return as soon as the condition holds.
"""

import time
from collections.abc import Callable
from typing import TypeVar

from textual.pilot import Pilot

LIMIT_S = 60.0
"""How long a wait may take before the test fails: generous, since a loaded 2-core machine runs
the workers that the condition waits for; a wait that holds returns at once."""

EVERY_S = 0.05
"""How often `wait_for` looks again."""

T = TypeVar("T")


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


def wait_for(
    condition: Callable[[], T],
    what: str,
    limit_s: float = LIMIT_S,
    every_s: float = EVERY_S,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call `condition` until it returns something true, and return that; after `limit_s`
    seconds fail, naming `what` (and `detail()`, what was seen instead, when given)."""
    deadline = time.monotonic() + limit_s
    while not (found := condition()):
        if time.monotonic() > deadline:
            seen = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"gave up waiting for {what} after {limit_s:g} s{seen}")
        time.sleep(every_s)
    return found
