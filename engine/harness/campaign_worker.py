"""A campaign worker process: claims pending attempts one at a time and runs them.

Run as `python -m engine.harness.campaign_worker WORKSPACE CAMPAIGN_ID SLOT JOB_PID` by the
campaign job. It dies with the job (PR_SET_PDEATHSIG), so a killed job never leaves workers
running on. A claim is one `BEGIN IMMEDIATE` transaction, so no two workers take the same
attempt. Between attempts it stops when the campaign is no longer `running` (paused, stopping).
"""

import os
import sys
from pathlib import Path
from typing import Any

from engine.core.processes import die_with_parent
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.attempts import run_attempt
from engine.harness.campaigns import campaign_row


def _die_with_parent(parent: int) -> None:
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)


def _claim(ws: Workspace, campaign_id: int, slot: int) -> dict[str, Any] | None:
    conn = ws.db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT id FROM attempts WHERE campaign_id = ? AND state = 'pending' "
            "ORDER BY id LIMIT 1",
            [campaign_id],
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE attempts SET state = 'running', worker = ?, pid = ?, started_at = ?, "
                "reason = NULL WHERE id = ?",
                [slot, os.getpid(), utc_now(), row[0]],
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if row is None:
        return None
    return next(ws.db["attempts"].rows_where("id = ?", [row[0]]))


def set_stage(
    ws: Workspace, campaign_id: int, slot: int, stage: str, attempt_id: int | None, detail: str
) -> None:
    """Record what this worker is doing now, for the console's live worker lines."""
    with ws.db.conn:
        ws.db.table("harness_workers").upsert(
            {
                "campaign_id": campaign_id,
                "slot": slot,
                "pid": os.getpid(),
                "stage": stage,
                "attempt_id": attempt_id,
                "detail": detail,
                "updated_at": utc_now(),
            },
            pk=("campaign_id", "slot"),
        )


def work(ws: Workspace, campaign_id: int, slot: int) -> int:
    """Run attempts until none is pending or the campaign stops running; returns how many."""
    done = 0
    while campaign_row(ws, campaign_id).status == "running":
        attempt = _claim(ws, campaign_id, slot)
        if attempt is None:
            break

        def on_stage(stage: str, attempt: dict[str, Any] = attempt) -> None:
            set_stage(ws, campaign_id, slot, stage, attempt["id"], attempt["task"])

        run_attempt(ws, attempt, on_stage)
        done += 1
    set_stage(ws, campaign_id, slot, "exited", None, f"{done} attempts")
    return done


def main(argv: list[str]) -> int:
    root, campaign_id, slot, job_pid = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    _die_with_parent(job_pid)
    ws = Workspace.open(root)
    set_stage(ws, campaign_id, slot, "idle", None, "")
    work(ws, campaign_id, slot)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
