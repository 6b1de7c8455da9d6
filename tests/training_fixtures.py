"""Waiting on a real training run, for the tests that start one through the job system."""

from collections.abc import Container

import pytest
from pilot_wait import wait_for

from engine.core.workspace import Workspace
from engine.training.run_view import TrainingRun
from engine.training.runs import reconcile_runs, run_row

RUN_LIMIT_S = 300
"""A tiny-model run on a loaded 2-core machine: seconds alone, minutes beside other suites."""


def wait_for_run(ws: Workspace, run_id: int, status: str, under_way: Container[str]) -> TrainingRun:
    """Reconcile until the run leaves the `under_way` statuses and return its row; fail with its
    log unless it reached `status`."""

    def log() -> str:
        run = run_row(ws, run_id)
        return (ws.root / run.run_dir / "train.log").read_text(encoding="utf-8")

    def reached() -> TrainingRun | None:
        reconcile_runs(ws)
        run = run_row(ws, run_id)
        return run if run.status == status or run.status not in under_way else None

    run = wait_for(reached, f"run {run_id} to be {status}", RUN_LIMIT_S, 0.2, log)
    if run.status != status:
        pytest.fail(f"run {run_id} is {run.status}, not {status}: {run.reason}\n{log()}")
    return run
