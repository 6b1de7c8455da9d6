"""When a training run may take the GPU: not while an inference server holds it, not outside
the operator's training window, not beside another run (mnemonic's continuous-learning pull
request: VRAM contention crashed its daemon; docs/background.md). Each refusal says how to clear it;
`force` skips them all.
"""

import socket
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit

from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.serving.command import server_url
from engine.serving.vllm_client import ServingError

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


def check_inference_servers(ws: Workspace) -> None:
    """Refused while something accepts TCP connections where a served base's server answers
    (`[serving]`: one per base) or at `[training] inference_url` (another server on the GPU)."""
    where = [(f"base {kind}'s server", url) for kind, url in serving_urls(ws).items()]
    extra = ws.config.training.inference_url
    if extra is not None:
        if urlsplit(extra).hostname is None:
            raise GuardrailError(f"[training] inference_url {extra!r} names no host")
        where.append(("the inference server at [training] inference_url", extra))
    for what, url in where:
        if accepts_connections(url):
            parts = urlsplit(url)
            raise GuardrailError(
                f"{what} answers at {parts.hostname}:{parts.port} and holds the GPU; stop it, "
                "or hold serving while training (`cra serve --hold`; a running `cra serve "
                "--launch` then stops its servers until `cra serve --release`), or pass --force"
            )


def serving_urls(ws: Workspace) -> dict[str, str]:
    """Where each served base's server answers."""
    try:
        return {kind: server_url(ws, kind) for kind in ws.config.serving.bases}
    except ServingError as exc:
        raise GuardrailError(str(exc)) from exc


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
    check_inference_servers(ws)
    check_window(ws.config.training.window, now)
