"""The one timestamp form the harness records (UTC to the second, `YYYY-MM-DDTHH:MM:SSZ`), and
how a duration is written for the operator."""

from collections.abc import Callable
from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


Clock = Callable[[], datetime]
"""What a pane reads the time from: `wall_clock`, or a test's own."""


def wall_clock() -> datetime:
    """The current time in UTC: the clock the console runs on outside tests."""
    return datetime.now(UTC)


def utc_now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def duration_text(seconds: float | None) -> str:
    """12.3s, 4m 05s, 2h 03m; `—` when unknown: a duration as the panes and the CLI show it."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
