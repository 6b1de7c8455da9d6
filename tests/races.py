"""Run the same operations from several real processes at once, round after round.

Each racer is a process of its own (spawned, so it shares nothing with the test but the
workspace folder) that opens the workspace once and then, every round: looks (what an operator
sees before acting), waits for every other racer to have looked, acts, and reports its outcome.
Between rounds the test checks the outcomes and puts the workspace back for the next one.
"""

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilot_wait import wait_for

from engine.core.errors import CraError
from engine.core.jobs import JobRow, job_alive, job_lock
from engine.core.workspace import Workspace

ROUNDS = 20
WAIT_S = 120

Look = Callable[[Workspace, int], Any]
Act = Callable[[Workspace, int, Any], str]

_CTX = multiprocessing.get_context("spawn")


def _nothing(ws: Workspace, round_no: int) -> None:
    return None


def _racer(root: str, look: Look, act: Act, rounds: int, barrier: Any, results: Any) -> None:
    ws = Workspace.open(Path(root))
    for round_no in range(rounds):
        barrier.wait()
        seen = look(ws, round_no)
        barrier.wait()
        try:
            outcome = act(ws, round_no, seen)
        except CraError as exc:
            outcome = f"refused: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            outcome = f"crashed: {exc!r}"
        results.put((os.getpid(), outcome))


def race(
    root: Path,
    racers: list[tuple[Look | None, Act]],
    settle: Callable[[int, list[str]], None],
    prepare: Callable[[int], None] = lambda round_no: None,
    rounds: int = ROUNDS,
) -> None:
    """Run `racers` (each a look and an act) in processes of their own, all at once, `rounds`
    times: `prepare(round)` before each round, `settle(round, outcomes)` after it, outcomes in
    the order of `racers`."""
    barrier = _CTX.Barrier(len(racers) + 1, timeout=WAIT_S)
    results = _CTX.Queue()
    procs = [
        _CTX.Process(
            target=_racer, args=(str(root), look or _nothing, act, rounds, barrier, results)
        )
        for look, act in racers
    ]
    for proc in procs:
        proc.start()
    order = {proc.pid: index for index, proc in enumerate(procs)}
    try:
        for round_no in range(rounds):
            prepare(round_no)
            barrier.wait()
            barrier.wait()
            got = [results.get(timeout=WAIT_S) for _ in procs]
            outcomes = [outcome for _, outcome in sorted(got, key=lambda r: order[r[0]])]
            settle(round_no, outcomes)
    finally:
        barrier.abort()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()


def end_jobs(ws: Workspace, kind: str, after_id: int) -> list[JobRow]:
    """Kill (SIGKILL, with their process groups) the jobs of `kind` recorded after job
    `after_id`, wait until they are gone, and return their rows.

    Gone means their run lock is free too: a killed process with threads shows as a zombie
    while its other threads are still closing its files."""
    jobs = [
        JobRow.model_validate(row)
        for row in ws.db["jobs"].rows_where("kind = ? AND id > ?", [kind, after_id], order_by="id")
    ]
    for job in jobs:
        if job.pid is not None and job_alive(job):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)

    def all_gone() -> bool:
        with job_lock(ws, kind) as lock:
            return not any(lock.alive(job) for job in jobs)

    wait_for(all_gone, f"jobs {[job.id for job in jobs]} to end after SIGKILL", 30, 0.01)
    return jobs


def last_job_id(ws: Workspace) -> int:
    return ws.db.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()[0]
