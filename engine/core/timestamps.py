"""The one timestamp form the harness records: UTC to the second, `YYYY-MM-DDTHH:MM:SSZ`."""

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)
