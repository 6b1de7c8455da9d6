"""What `cra serve --launch` started for each base, kept while that server runs.

vLLM cannot be asked the `--max-lora-rank` it was started with, and a load above it fails inside
the server. The supervisor writes `logs/serve-<base>.start.json` when it starts a server (its
URL, process and the limit it was given) and removes it when it stops it; a load reads the
limit back from the record of the process answering now.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.core.durable import write_durably
from engine.core.errors import CraError
from engine.core.jobs import process_start_time
from engine.core.workspace import LOGS_DIR, Workspace


class ServerStart(BaseModel):
    """One server the supervisor started: where, which process, with which rank limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str
    url: str
    pid: int
    pid_start: int
    max_lora_rank: int


def start_record(ws: Workspace, base: str) -> Path:
    return ws.root / LOGS_DIR / f"serve-{base}.start.json"


def record_start(ws: Workspace, base: str, url: str, pid: int, max_lora_rank: int) -> None:
    """Record the server just started as process `pid` (it must be alive)."""
    pid_start = process_start_time(pid)
    if pid_start is None:
        return
    record = ServerStart(
        base=base, url=url, pid=pid, pid_start=pid_start, max_lora_rank=max_lora_rank
    )
    write_durably(start_record(ws, base), record.model_dump_json().encode())


def clear_start(ws: Workspace, base: str) -> None:
    start_record(ws, base).unlink(missing_ok=True)


def running_start(ws: Workspace, base: str, url: str) -> ServerStart | None:
    """The record of base `base`'s server at `url` when its process still runs; None when no
    server the supervisor started runs there now. A damaged record is refused, naming it."""
    path = start_record(ws, base)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        record = ServerStart.model_validate_json(data)
    except ValidationError as exc:
        raise CraError(
            f"{path} is not a server start record ({exc.error_count()} problems); remove it "
            "when no `cra serve --launch` runs"
        ) from exc
    if record.url.rstrip("/") != url.rstrip("/"):
        return None
    if process_start_time(record.pid) != record.pid_start:
        return None
    return record
