"""Background jobs: processes that outlive the console, recorded with pid, heartbeat and log.

A job is started in its own session (closing the console or its terminal does not reach it),
its output goes to a log file under `logs/`, and its row in `jobs` carries the pid and the
process's start time: a pid alone can be reused after the job dies, the pair cannot.

Starting a job and judging whether one died never race (`job_lock`): every start and every
reconcile of a kind holds that kind's start lock (`locks/start-KIND.lock`), so none of them sees
another's half-made start. The job itself holds its run lock (`locks/KIND-REF.lock`) for as long
as it lives: the starter takes it before the row is written and the job process inherits the
descriptor, so the lock is held without a gap from before the `starting` row exists until the
last process holding it exits, and the kernel frees it however that process ends. A job whose
run lock is free and whose recorded process is gone died without finishing: the owner of the
job's kind reconciles that (campaigns: `reconcile_campaigns`). No clock is involved.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.locks import exclusive_lock, try_lock
from engine.core.priority import niceness, session_niceness_prefix
from engine.core.timestamps import utc_now
from engine.core.workspace import LOGS_DIR, Workspace

JOB_ID_ENV = "CRA_JOB_ID"
LIVE = ("starting", "running")
TRAINING_KIND = "training"
"""The job kind of a training run: the one that takes the GPU, which serving makes way for."""
JOB_NICENESS = 10
"""Every job runs this much nicer than its starter (its workers, sandboxed tests and trainers
inherit it), its session's scheduling group too (`engine.core.priority`): on a machine whose cores
a campaign or a training run fills, the console, at the operator's default 0, is scheduled first,
so keys answer at once while the night's work takes what is left."""
EXIT_GRACE_S = 10.0


class JobRow(BaseModel):
    """One row of `jobs`: a background process, its pid and start time, status and log.
    `ref_id` is typed never NULL, though the column allows it: every job is spawned (`_spawn`)
    for the campaign, run, eval or watch it names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    kind: str
    ref_id: int
    argv_json: str | None
    pid: int | None
    pid_start: int | None
    status: str
    started_at: str
    heartbeat_at: str | None
    ended_at: str | None
    exit_code: int | None
    reason: str | None
    log_path: str | None


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


def job_alive(job: JobRow) -> bool:
    """Whether the process recorded for `job` is still the one running."""
    if job.pid is None or job.pid_start is None:
        return False
    return process_start_time(job.pid) == job.pid_start


class JobLock:
    """A kind's start lock, held: no other process starts or settles a job of that kind now."""

    def __init__(self, ws: Workspace, kind: str) -> None:
        self.ws = ws
        self.kind = kind

    def alive(self, job: JobRow) -> bool:
        """Whether `job` (a row of this kind) still runs: its run lock is held (by the job or a
        process it started), or its recorded process is still the one running."""
        fd = _try_run_lock(self.ws, self.kind, job.ref_id)
        if fd is None:
            return True
        os.close(fd)
        return job_alive(job)

    def running(self, ref_id: int) -> JobRow | None:
        """The job of `ref_id` that still runs, if any."""
        job = latest_job(self.ws, self.kind, ref_id)
        if job is not None and job.status in LIVE and self.alive(job):
            return job
        return None

    def _after_last_exits(self, ref_id: int) -> int | None:
        """Take `ref_id`'s run lock, giving a job that has recorded its end up to
        `EXIT_GRACE_S` to exit (it records its end just before its process exits); None when a
        process still holds it after that."""
        deadline = time.monotonic() + EXIT_GRACE_S
        while (fd := _try_run_lock(self.ws, self.kind, ref_id)) is None:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return fd

    def spawn(self, ref_id: int, argv: Sequence[str]) -> int:
        """Start `argv` as a detached job for `ref_id`; returns the job id.

        Refused while a job of `ref_id` still runs: one job per campaign, run or eval."""
        ws, kind = self.ws, self.kind
        live = self.running(ref_id)
        run_fd = None if live is not None else self._after_last_exits(ref_id)
        if live is not None or run_fd is None:
            if run_fd is not None:
                os.close(run_fd)
            which = "" if live is None else f" (job {live.id}, pid {live.pid})"
            raise JobError(f"{kind} {ref_id} already has a job running{which}; one at a time")
        try:
            return _spawn(ws, kind, ref_id, argv, run_fd)
        finally:
            os.close(run_fd)


@contextmanager
def job_lock(ws: Workspace, kind: str) -> Iterator[JobLock]:
    """Hold `kind`'s start lock for the block: check, record and spawn (or judge and settle)
    inside it, and no other process can do either for that kind in between.

    Never taken inside a database transaction: a holder may wait on the database."""
    path = _locks_dir(ws) / f"start-{kind}.lock"
    with ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(path))
        except OSError as exc:
            raise JobError(f"{path}: cannot take the {kind} start lock: {exc.strerror}") from exc
        yield JobLock(ws, kind)


def settle(
    ws: Workspace, kind: str, reconcile: Callable[[Workspace, JobLock], list[int]]
) -> list[int]:
    """`reconcile(ws, lock)` holding `kind`'s start lock: settle the jobs of `kind` that died;
    returns what it settled. A read-only workspace is shown as recorded: nothing is settled."""
    if ws.read_only:
        return []
    with job_lock(ws, kind) as lock:
        return reconcile(ws, lock)


def _locks_dir(ws: Workspace) -> Path:
    folder = ws.locks_dir
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise JobError(f"{folder}: cannot create the job locks folder: {exc.strerror}") from exc
    return folder


def _try_run_lock(ws: Workspace, kind: str, ref_id: int) -> int | None:
    """The descriptor holding the run lock of `kind` `ref_id`; None when a job holds it."""
    path = _locks_dir(ws) / f"{kind}-{ref_id}.lock"
    try:
        return try_lock(path)
    except OSError as exc:
        raise JobError(f"{path}: cannot take the job's run lock: {exc.strerror}") from exc


def spawn_job(ws: Workspace, kind: str, ref_id: int, argv: Sequence[str]) -> int:
    """Start `argv` as a detached job of `kind` for `ref_id`; returns the job id."""
    with job_lock(ws, kind) as lock:
        return lock.spawn(ref_id, argv)


def _spawn(ws: Workspace, kind: str, ref_id: int, argv: Sequence[str], run_fd: int) -> int:
    """Record the job `starting`, start it holding `run_fd` (its run lock), record its pid."""
    started = utc_now()
    log_rel = Path(LOGS_DIR) / f"{kind}-{ref_id}-{started.replace(':', '')}.log"
    with ws.db.conn:
        job_id = inserted_id(
            ws.db.table("jobs").insert(
                {
                    "kind": kind,
                    "ref_id": ref_id,
                    "argv_json": json.dumps(list(argv)),
                    "status": "starting",
                    "started_at": started,
                    "log_path": log_rel.as_posix(),
                }
            )
        )
    env = {**os.environ, JOB_ID_ENV: str(job_id)}
    try:
        if shutil.which(argv[0]) is None:
            raise FileNotFoundError(f"no such program: {argv[0]}")
        with open(ws.root / log_rel, "ab") as log:
            proc = subprocess.Popen(
                # The shell and `nice` exec the job in their place: the recorded pid is the job's.
                [
                    *session_niceness_prefix(min(19, niceness() + JOB_NICENESS)),
                    "nice",
                    "-n",
                    str(JOB_NICENESS),
                    *argv,
                ],
                cwd=ws.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(run_fd,),
            )
    except OSError as exc:
        _finish(ws, job_id, "failed", None, f"could not start {argv[0]}: {exc}")
        raise JobError(f"job {kind} {ref_id}: could not start {argv[0]}: {exc}") from exc
    start = process_start_time(proc.pid)
    with ws.db.conn:
        ws.db.table("jobs").update(
            job_id,
            {"pid": proc.pid, "pid_start": start, "status": "running", "heartbeat_at": started},
        )
    return job_id


def heartbeat(ws: Workspace, job_id: int) -> None:
    with ws.db.conn:
        ws.db.table("jobs").update(job_id, {"heartbeat_at": utc_now()})


def _finish(ws: Workspace, job_id: int, status: str, exit_code: int | None, reason: str) -> bool:
    """Record the job's end unless one is recorded: a reconcile that read the job live just
    before it recorded its own end and exited never overwrites that end."""
    cursor = ws.db.execute(
        "UPDATE jobs SET status = ?, exit_code = ?, reason = ?, ended_at = ? "
        f"WHERE id = ? AND status IN ({', '.join('?' * len(LIVE))})",
        [status, exit_code, reason, utc_now(), job_id, *LIVE],
    )
    return cursor.rowcount == 1


def finish_job(ws: Workspace, job_id: int, status: str, reason: str = "") -> bool:
    """Record that the job ended (`exited`, `failed` or `killed`) and why; an end is written
    once, so False when one was recorded already."""
    return _finish(ws, job_id, status, None, reason)


def latest_job(ws: Workspace, kind: str, ref_id: int) -> JobRow | None:
    """The newest job of `kind` for `ref_id`, if any."""
    rows = ws.db.table("jobs").rows_where(
        "kind = ? AND ref_id = ?", [kind, ref_id], order_by="id desc", limit=1
    )
    return next((JobRow.model_validate(row) for row in rows), None)


def live_jobs(ws: Workspace, kind: str) -> list[JobRow]:
    """The jobs of `kind` recorded live whose process is still the one recorded."""
    rows = ws.db.table("jobs").rows_where(
        f"kind = ? AND status IN ({', '.join('?' * len(LIVE))})", [kind, *LIVE], order_by="id"
    )
    return [job for row in rows if job_alive(job := JobRow.model_validate(row))]


def signal_job(job: JobRow, signum: int) -> bool:
    """Send `signum` to the job's process if it is still the recorded one; False if gone."""
    if job.pid is None or not job_alive(job):
        return False
    try:
        os.kill(job.pid, signum)
    except ProcessLookupError:
        return False
    return True


def terminate_job(job: JobRow) -> bool:
    return signal_job(job, signal.SIGTERM)
