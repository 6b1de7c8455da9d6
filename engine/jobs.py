"""Background jobs: processes that outlive the console, recorded with pid, heartbeat and log.

A job is started in its own session (closing the console or its terminal does not reach it),
its output goes to a log file under `logs/`, and its row in `jobs` carries the pid and the
process's start time: a pid alone can be reused after the job dies, the pair cannot. A job
whose process is gone (or a zombie) while its row says `running` died without finishing: the
owner of the job's kind reconciles that (campaigns: `reconcile_campaigns`).
"""

import json
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import CraError
from engine.timestamps import utc_now
from engine.workspace import Workspace

JOB_ID_ENV = "CRA_JOB_ID"


class JobError(CraError):
    """A job cannot be started or signalled."""


def process_start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot; None when there is no live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def job_alive(job: dict[str, Any]) -> bool:
    """Whether the process recorded for `job` is still the one running."""
    if job["pid"] is None or job["pid_start"] is None:
        return False
    return process_start_time(job["pid"]) == job["pid_start"]


def spawn_job(ws: Workspace, kind: str, ref_id: int, argv: Sequence[str]) -> int:
    """Start `argv` as a detached job of `kind` for `ref_id`; returns the job id."""
    started = utc_now()
    log_rel = Path("logs") / f"{kind}-{ref_id}-{started.replace(':', '')}.log"
    with ws.db.conn:
        job_id = (
            ws.db["jobs"]
            .insert(
                {
                    "kind": kind,
                    "ref_id": ref_id,
                    "argv_json": json.dumps(list(argv)),
                    "status": "starting",
                    "started_at": started,
                    "log_path": log_rel.as_posix(),
                }
            )
            .last_pk
        )
    env = {**os.environ, JOB_ID_ENV: str(job_id)}
    try:
        with open(ws.root / log_rel, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                cwd=ws.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:
        _finish(ws, job_id, "failed", None, f"could not start {argv[0]}: {exc}")
        raise JobError(f"job {kind} {ref_id}: could not start {argv[0]}: {exc}") from exc
    start = process_start_time(proc.pid)
    with ws.db.conn:
        ws.db["jobs"].update(
            job_id,
            {"pid": proc.pid, "pid_start": start, "status": "running", "heartbeat_at": started},
        )
    return job_id


def heartbeat(ws: Workspace, job_id: int) -> None:
    with ws.db.conn:
        ws.db["jobs"].update(job_id, {"heartbeat_at": utc_now()})


def _finish(ws: Workspace, job_id: int, status: str, exit_code: int | None, reason: str) -> None:
    with ws.db.conn:
        ws.db["jobs"].update(
            job_id,
            {"status": status, "exit_code": exit_code, "reason": reason, "ended_at": utc_now()},
        )


def finish_job(ws: Workspace, job_id: int, status: str, reason: str = "") -> None:
    """Record that the job ended (`exited`, `failed` or `killed`) and why."""
    _finish(ws, job_id, status, None, reason)


def latest_job(ws: Workspace, kind: str, ref_id: int) -> dict[str, Any] | None:
    rows = list(
        ws.db["jobs"].rows_where("kind = ? AND ref_id = ?", [kind, ref_id], order_by="id desc")
    )
    return rows[0] if rows else None


def signal_job(job: dict[str, Any], signum: int) -> bool:
    """Send `signum` to the job's process if it is still the recorded one; False if gone."""
    if not job_alive(job):
        return False
    try:
        os.kill(job["pid"], signum)
    except ProcessLookupError:
        return False
    return True


def terminate_job(job: dict[str, Any]) -> bool:
    return signal_job(job, signal.SIGTERM)
