"""Background jobs as the engine starts them: their priority and a refused start."""

import os
import signal
import time
from pathlib import Path

import pytest
from workspaces import open_workspace

from engine.core.jobs import JOB_NICENESS, JobError, spawn_job


def test_a_job_runs_below_the_console_in_priority(tmp_path: Path) -> None:
    """A background job (and what it starts) runs at `JOB_NICENESS`, so a campaign or a training
    run filling the cores leaves the console, at the operator's niceness, answering keys; the pid
    recorded is the job's own, not a wrapper's. Where the kernel schedules by session
    (autogroup), the job's session group has that niceness too."""
    ws = open_workspace(tmp_path / "ws")
    job_id = spawn_job(ws, "eval", 1, ["sleep", "30"])
    pid = ws.db["jobs"].get(job_id)["pid"]
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/comm").read_text().strip() != "sleep":  # `nice` execs it
            assert time.monotonic() < deadline, "the job's pid never became the job"
            time.sleep(0.01)
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, pid) == expected
        group = Path(f"/proc/{pid}/autogroup")
        if group.exists():  # a new session's group would start at 0: set it too
            assert group.read_text().split()[-1] == str(expected)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_job_whose_program_is_missing_is_refused_at_once(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "ws")
    with pytest.raises(JobError, match="could not start /no/such/program: no such program"):
        spawn_job(ws, "eval", 1, ["/no/such/program"])
    assert ws.db["jobs"].get(1)["status"] == "failed"
