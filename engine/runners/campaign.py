"""The campaign job: a detached process that runs a campaign's attempts to the end.

Run as `python -m engine.runners.campaign WORKSPACE CAMPAIGN_ID` by `start_campaign`. It
heartbeats its job row every second and runs the attempts on the configured backend: one local
worker process per slot, or the nodes of a Ray cluster (`[harness] backend = "ray"`,
`engine.cluster.campaign`). Then it records how the campaign ended: done, paused, stopped, or
failed with the reason. A done campaign's packages are derived into examples and pairs first
(`cra data build`). SIGTERM (`stop_campaign`) kills the workers, or cancels the cluster's
orders, at once; attempts they were running go back to pending.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from engine.core.errors import CraError
from engine.core.jobs import JOB_ID_ENV, finish_job, heartbeat
from engine.core.workspace import Workspace
from engine.harness.campaigns import (
    campaign_row,
    requeue_running,
    set_status,
)
from engine.training_data.derive import build_training_data

POLL_S = 1.0


class _Stop(Exception):
    """SIGTERM arrived."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _counts(ws: Workspace, campaign_id: int) -> dict[str, int]:
    rows = ws.db.execute(
        "SELECT state, COUNT(*) FROM attempts WHERE campaign_id = ? GROUP BY state",
        [campaign_id],
    ).fetchall()
    return dict(rows)


def _end_status(ws: Workspace, campaign_id: int, failures: list[str]) -> tuple[str, str]:
    status = campaign_row(ws, campaign_id).status
    if status == "stopping":
        return "stopped", "stopped by the operator"
    if status == "pausing":
        return "paused", "paused by the operator"
    if failures:
        return "failed", "; ".join(failures)
    left = _counts(ws, campaign_id).get("pending", 0)
    if left:
        return "failed", f"the workers exited with {left} attempts still pending"
    return "done", ""


def run_job(ws: Workspace, campaign_id: int, job_id: int) -> str:
    """Run the campaign's attempts on the configured backend until they finish; returns the
    campaign's final status."""
    spec = campaign_row(ws, campaign_id).spec
    requeue_running(ws, campaign_id)
    if ws.config.harness.backend == "ray":
        from engine.cluster.campaign import run_campaign_on_cluster

        failures = run_campaign_on_cluster(ws, campaign_id, job_id)
    else:
        failures = _run_workers(ws, campaign_id, job_id, spec.workers)
    requeue_running(ws, campaign_id)
    status, reason = _end_status(ws, campaign_id, failures)
    if status == "done":
        _derive(ws, spec.packages)
    set_status(ws, campaign_id, status, reason)
    return status


def _run_workers(ws: Workspace, campaign_id: int, job_id: int, count: int) -> list[str]:
    """Run `count` local worker processes to their end; returns what failed. SIGTERM kills
    them at once."""
    with ws.db.conn:
        ws.db.execute("DELETE FROM harness_workers WHERE campaign_id = ?", [campaign_id])
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.harness.campaign_worker",
                str(ws.root),
                str(campaign_id),
                str(slot),
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
        )
        for slot in range(1, count + 1)
    ]
    try:
        while any(worker.poll() is None for worker in workers):
            heartbeat(ws, job_id)
            time.sleep(POLL_S)
    except _Stop:
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.wait()
        raise
    return [
        f"worker {slot} exited with status {worker.returncode}"
        for slot, worker in enumerate(workers, start=1)
        if worker.returncode != 0
    ]


def _derive(ws: Workspace, packages: list[str]) -> None:
    """Turn the finished campaign's tasks and attempts into examples and pairs (`cra data
    build` for its packages), so the Review pane has them when the campaign shows done."""
    try:
        report = build_training_data(ws, packages)
    except CraError as exc:
        print(f"training data not derived: {exc}; run `cra data build`", flush=True)
        return
    for package in report.packages:
        pairs = sum(package.pairs_added.values())
        print(
            f"training data from {package.label}: {package.examples_added} examples, "
            f"{pairs} pairs added",
            flush=True,
        )


def main(argv: list[str]) -> int:
    root, campaign_id = Path(argv[0]), int(argv[1])
    job_id = int(os.environ[JOB_ID_ENV])
    signal.signal(signal.SIGTERM, _on_term)
    ws = Workspace.open(root)
    try:
        status = run_job(ws, campaign_id, job_id)
    except _Stop:
        requeue_running(ws, campaign_id)
        set_status(ws, campaign_id, "stopped", "stopped by the operator")
        status = "stopped"
    except BaseException as exc:
        set_status(ws, campaign_id, "failed", f"the campaign job crashed: {exc!r}")
        finish_job(ws, job_id, "failed", repr(exc))
        raise
    finish_job(ws, job_id, "exited", status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
