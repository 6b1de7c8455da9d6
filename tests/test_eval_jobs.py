"""The eval job as it runs: its progress recorded and shown by `cra eval status` and `cra eval
show`, and a run's end written once, whichever of the job and a reconcile comes first.

Real eval jobs (subprocesses of the real runner) score a scope candidate and the base on a real
frozen eval set, asking a local stand-in for vLLM that holds one answer until the test lets it
go (`held_evals`); the database is the real SQLite file.
"""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from held_evals import served_eval
from pilot_wait import wait_for

from app.cli import cli
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalProgress
from engine.evaluation.eval_set import newest_eval_set
from engine.evaluation.runs import DIED, eval_jobs, eval_row, reconcile_evals, start_eval


def _queued_run(ws: Workspace) -> int:
    """A run of the base queued on scope's eval set, with no job row behind it."""
    record = newest_eval_set(ws, "scope")
    assert record is not None
    return int(
        ws.db["eval_runs"]
        .insert(
            {
                "target": "base",
                "adapter_id": None,
                "stage": "scope",
                "base_model": "reasoning",
                "dataset_id": "scope-d1",
                "eval_set_id": record.id,
                "eval_sha256": record.sha256,
                "backend": "server",
                "status": "queued",
                "reason": "",
                "out_dir": "evals/1",
                "created_at": "2026-11-21T07:30:00Z",
                "created_by": "test",
            }
        )
        .last_pk
    )


def _cli(ws: Workspace, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_run_settled_while_its_runner_works_keeps_that_end(tmp_path: Path) -> None:
    """The runner takes a run that has no job row behind it (run rows written before their
    job's, or the runner started by hand as its usage line allows), and a poll's reconcile
    judges the run dead while the runner is still asking the model. That end stands: when the
    answers come the runner does not record the run `done` under the note that it ended
    unfinished; it stores no metrics or scores, stops, and says why."""
    with served_eval(tmp_path / "ws", hold_at=3) as (ws, _, held):
        eval_id = _queued_run(ws)
        runner = subprocess.Popen(
            [sys.executable, "-m", "engine.runners.evaluation", str(eval_id)],
            cwd=ws.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(lambda: held.asked == 3, "the runner to ask for the third answer")
            assert eval_row(ws, eval_id).status == "running"
            assert reconcile_evals(ws) == [eval_id]
            held.release()
            output, _ = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
        run = eval_row(ws, eval_id)
        assert (run.status, run.reason, run.metrics_json) == ("failed", DIED, None), output
        assert ws.db["eval_scores"].count == 0
        assert runner.returncode == 1
        assert f"eval run {eval_id} was settled failed by another process" in output


def test_status_and_show_say_how_far_a_running_eval_has_got(tmp_path: Path) -> None:
    """While the job answers the base's fourth row, the base's run records 3 of 6 answered and
    the candidate's waits queued; `cra eval status` and `cra eval show` say so. When the job
    ends both runs are done and the job's outcome names the gate's decision."""
    with served_eval(tmp_path / "ws", hold_at=4) as (ws, fake, held):
        base_id, candidate_id = start_eval(ws, adapter="scope-v1")
        wait_for(lambda: held.asked == 4, "the job to ask for the base's fourth answer")
        base = eval_row(ws, base_id)
        assert base.progress == EvalProgress(phase="answering", done=3, total=6)
        status = _cli(ws, "eval", "status").splitlines()
        assert [line.split()[0] for line in status] == [str(candidate_id), str(base_id)]
        assert " running, 3/6 answered " in status[1] + " "
        assert " queued " in status[0]
        assert " running, 3/6 answered" in _cli(ws, "eval", "show", str(base_id))
        [job] = eval_jobs(ws)
        assert job.live and job.state("scope-v1") == "evaluating: base 3/6 answered"

        held.release()

        def ended() -> bool:
            reconcile_evals(ws)
            return not eval_jobs(ws, [candidate_id])[0].live

        wait_for(ended, "the eval job to end", every_s=0.2)
        [job] = eval_jobs(ws, [candidate_id])
        assert [run.status for run in job.runs] == ["done", "done"]
        decision = ws.db.execute("SELECT decision FROM gate_decisions").fetchone()[0]
        assert job.outcome() == (
            f"scope-v1: eval done; gate: {decision} against base",
            "information",
        )
        assert " done " in _cli(ws, "eval", "show", str(candidate_id)).splitlines()[0]
        # The candidate was loaded for its run only: it does not keep one of the server's slots.
        assert fake.load_requests == ["scope-v1"] and fake.loaded == {}
