"""Words and styles every pane draws the same way: statuses, times, durations."""

STATUS_STYLE = {
    "pending": "dim",
    "running": "bold green",
    "pausing": "yellow",
    "stopping": "yellow",
    "paused": "yellow",
    "stopped": "yellow",
    "done": "bold cyan",
    "failed": "bold red",
    "interrupted": "bold red",
    "active": "bold green",
    "candidate": "cyan",
    "inactive": "dim",
    "rejected": "red",
}
# A stopped campaign waits for nothing (its workers are gone); a stopped run waits to resume.
CAMPAIGN_STATUS_STYLE = STATUS_STYLE | {"stopped": "dim"}


def when(timestamp: str | None) -> str:
    """`2026-05-02T09:16:00Z` as `2026-05-02 09:16`; `—` when unknown."""
    return "—" if not timestamp else timestamp[:16].replace("T", " ")
