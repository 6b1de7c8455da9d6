"""When a training run may take the GPU: not while the inference server holds it, not outside
the operator's training window, not beside another run (mnemonic's continuous-learning pull
request: VRAM contention crashed its daemon; docs/background.md). Each refusal says how to clear it;
`force` skips them all.
"""

import socket
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit

from engine.core.errors import CraError
from engine.core.workspace import Workspace

CONNECT_TIMEOUT_S = 0.5


class GuardrailError(CraError):
    """Training would contend for the GPU or run outside its window."""


def accepts_connections(url: str) -> bool:
    """Whether something accepts TCP connections at `url`'s host and port now (False for a URL
    that names no host)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def check_inference_server(url: str | None) -> None:
    """Refused while something accepts TCP connections at `url`'s host and port."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.hostname is None:
        raise GuardrailError(f"[training] inference_url {url!r} names no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not accepts_connections(url):
        return
    raise GuardrailError(
        f"the inference server at {parts.hostname}:{port} ([training] inference_url) holds the "
        "GPU; stop it or pass --force"
    )


def parse_window(window: str) -> tuple[time, time]:
    """`HH:MM-HH:MM` as its start and end; a bad clock value names the key."""
    try:
        start, end = (time.fromisoformat(part) for part in window.split("-"))
    except ValueError as exc:
        raise GuardrailError(f"[training] window {window!r}: not HH:MM-HH:MM: {exc}") from exc
    if start == end:
        raise GuardrailError(
            f"[training] window {window!r}: start equals end; leave it unset to train any time"
        )
    return start, end


def in_window(start: time, end: time, now: time) -> bool:
    if start < end:
        return start <= now < end
    return now >= start or now < end


def check_window(window: str | None, now: datetime) -> None:
    """Refused when local time `now` lies outside `window` (which may wrap midnight)."""
    if window is None:
        return
    start, end = parse_window(window)
    if in_window(start, end, now.time()):
        return
    opens = now.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opens <= now:
        opens += timedelta(days=1)
    wait_min = int((opens - now).total_seconds() // 60)
    raise GuardrailError(
        f"outside the training window {window} ([training] window, local time); it opens at "
        f"{start:%H:%M} (in {wait_min // 60} h {wait_min % 60} min); wait or pass --force"
    )


def check_no_active_run(ws: Workspace, except_run: int | None = None) -> None:
    """Refused while another run is running or stopping: two runs would share one GPU."""
    rows = ws.db.execute(
        "SELECT id, status FROM training_runs WHERE status IN ('running', 'stopping') "
        "AND id IS NOT ? ORDER BY id",
        [except_run],
    ).fetchall()
    if rows:
        run_id, status = rows[0]
        raise GuardrailError(
            f"training run {run_id} is {status} and holds the GPU; wait for it, stop it "
            f"(`cra train stop {run_id}`) or pass --force"
        )


def check_guardrails(ws: Workspace, now: datetime, except_run: int | None = None) -> None:
    """Every guardrail for starting (or resuming `except_run`) at local time `now`."""
    check_no_active_run(ws, except_run)
    check_inference_server(ws.config.training.inference_url)
    check_window(ws.config.training.window, now)
