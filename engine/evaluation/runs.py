"""Eval runs: a version (or the bare base) scored on a stage's eval set, in a background job.

`start_eval` follows LoRA Training Strategy §9.2: the candidate and its baseline (the stage's active
version, or the base model for the first) are scored on the same eval set, the stage's newest frozen
one (`eval_set.py`), the baseline first when it has no finished eval there yet; both run in one
job, one after the other (two at once would only share the same cores), and the job ends by
putting the candidate through the gate. An eval run's answers go to `evals/<id>/`
(answers.jsonl, the harness attempts, eval.log) and its metrics to `eval_runs.metrics_json`;
`eval_runs.eval_set_id` and `eval_sha256` name the set it scored. A run whose job died is
marked failed at the next `reconcile_evals`; a failed run is never resumed, only run again.

A run's end is written once (`end_run`): only a run still queued or running is ended, by its job
or by a reconcile, whichever comes first, and the job checks at every step that its run is
still running, so no run is recorded `done` after it was settled failed, nor failed after it
was done. While a job runs, `eval_jobs` says how far it has got (`EvalJob.state`) and, once it
has ended, how it ended with the gate's word (`EvalJob.outcome`): what the Adapters pane shows
on the version's row and announces.
"""

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from engine.adapters.activation import AdapterVersion, unservable
from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.jobs import (
    LIVE,
    JobLock,
    JobRow,
    finish_job,
    job_lock,
    settle,
    terminate_job,
)
from engine.core.stages import BASE_MODEL, LORA_STAGES, as_stage, require_lora_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import EVALS_DIR, Workspace
from engine.evaluation.eval_run import UNDER_WAY, EvalRun, eval_runs
from engine.evaluation.eval_set import newest_eval_set
from engine.evaluation.gate import BASE, done_evals, serving_row

JOB_KIND = "eval"
RUNNER = "engine.runners.evaluation"
BACKENDS = ("server", "local")
DIED = "the eval job ended before this run finished; run it again"


class EvalRunError(CraError):
    """An eval run cannot be started as asked."""


def _version(ws: Workspace, name: str) -> AdapterVersion:
    rows = list(ws.db["adapter_versions"].rows_where("name = ?", [name]))
    if not rows:
        raise EvalRunError(f"there is no adapter version {name!r}; `cra adapters list` shows them")
    return AdapterVersion(**rows[0])


def start_eval(
    ws: Workspace,
    adapter: str | None = None,
    stage: str | None = None,
    backend: str | None = None,
    operator: str | None = None,
) -> list[int]:
    """Queue the eval runs `adapter` needs and start their job; returns the eval run ids.

    Every run scores its stage's newest frozen eval set. With `adapter` (a version name): the
    stage's baseline is evaluated first when it has no finished eval on that set. With no
    adapter: the base model alone on `stage`.
    """
    backend = backend or ws.config.evaluation.backend
    if backend not in BACKENDS:
        raise EvalRunError(f"unknown eval backend {backend!r}; backends are {', '.join(BACKENDS)}")
    targets: list[AdapterVersion | None]
    if adapter is not None:
        row = _version(ws, adapter)
        require_lora_stage(row.stage, f"adapter to evaluate ({adapter})")
        reason = unservable(ws, row)
        if reason is not None:
            raise EvalRunError(f"{reason}; an eval run would gate a version that never serves")
        stage, dataset_id = row.stage, row.dataset_id
        baseline = serving_row(ws, row.stage)
        targets = [row] if baseline is not None and baseline.id == row.id else [baseline, row]
    elif stage is None:
        raise EvalRunError(
            f"evaluating the base needs a stage; the LoRA stages are {', '.join(LORA_STAGES)}"
        )
    else:
        require_lora_stage(stage, "evaluation")
        targets = [None]
    eval_set = newest_eval_set(ws, stage)
    if eval_set is None:
        raise EvalRunError(
            f"{stage} has no eval set yet; `cra eval set build --stage {stage}` builds it"
        )
    if adapter is None:
        dataset_id = _newest_dataset(ws, stage)
    with job_lock(ws, JOB_KIND) as lock:
        _reconcile(ws, lock)
        _refuse_running(ws)
        if len(targets) == 2 and any(
            run.eval_sha256 == eval_set.sha256 for run in done_evals(ws, stage, targets[0])
        ):
            targets.pop(0)
        who = operator or ws.config.operator
        ids = [
            _insert(ws, target, stage, dataset_id, eval_set.id, eval_set.sha256, backend, who)
            for target in targets
        ]
        argv = [sys.executable, "-m", RUNNER, *map(str, ids)]
        try:
            lock.spawn(ids[-1], argv)
        except CraError as exc:
            for eval_id in ids:
                end_run(ws, eval_id, "failed", str(exc))
            raise
    return ids


def _newest_dataset(ws: Workspace, stage: str) -> str:
    """The stage's newest dataset, which a bare-base run records (`eval_runs.dataset_id`)."""
    found = ws.db.execute(
        "SELECT id FROM datasets WHERE stage = ? ORDER BY rowid DESC LIMIT 1", [stage]
    ).fetchone()
    if found is None:
        raise EvalRunError(
            f"{stage} has no dataset yet; an eval run records the stage's newest dataset: "
            f"curate one first (`cra curate-data --stage {stage}`)"
        )
    return found[0]


def _refuse_running(ws: Workspace) -> None:
    running = [run.id for run in _under_way(ws)]
    if running:
        raise EvalRunError(
            f"eval run {running[0]} is still under way; one eval job at a time "
            "(`cra eval status` shows it)"
        )


def _insert(
    ws: Workspace,
    target: AdapterVersion | None,
    stage: str,
    dataset_id: str | None,
    eval_set_id: int,
    sha: str,
    backend: str,
    operator: str,
) -> int:
    with ws.db.conn:
        eval_id = inserted_id(
            ws.db.table("eval_runs").insert(
                {
                    "target": BASE if target is None else target.name,
                    "adapter_id": None if target is None else target.id,
                    "stage": stage,
                    "base_model": BASE_MODEL[as_stage(stage)],
                    "dataset_id": dataset_id,
                    "eval_set_id": eval_set_id,
                    "eval_sha256": sha,
                    "backend": backend,
                    "status": "queued",
                    "reason": "",
                    "out_dir": "",
                    "created_at": utc_now(),
                    "created_by": operator,
                }
            )
        )
        ws.db.table("eval_runs").update(eval_id, {"out_dir": f"{EVALS_DIR}/{eval_id}"})
    return eval_id


def end_run(ws: Workspace, eval_id: int, status: str, reason: str) -> bool:
    """Record that run `eval_id` ended (`failed`, `stopped`) and why, unless it has ended
    already; returns whether this call recorded the end."""
    cursor = ws.db.execute(
        "UPDATE eval_runs SET status = ?, reason = ?, finished_at = ? "
        f"WHERE id = ? AND status IN ({', '.join('?' * len(UNDER_WAY))})",
        [status, reason, utc_now(), eval_id, *UNDER_WAY],
    )
    return cursor.rowcount == 1


def eval_row(ws: Workspace, eval_id: int) -> EvalRun:
    """Eval run `eval_id`; refused when there is none."""
    rows = eval_runs(ws.db.table("eval_runs").rows_where("id = ?", [eval_id]))
    if not rows:
        raise EvalRunError(f"there is no eval run {eval_id}; `cra eval status` lists them")
    return rows[0]


def list_evals(ws: Workspace) -> list[EvalRun]:
    """Every eval run, newest first."""
    return eval_runs(ws.db.table("eval_runs").rows_where(order_by="id desc"))


def stop_eval(ws: Workspace) -> int:
    """Ask the eval job under way to stop; returns the id of the run it was on."""
    with job_lock(ws, JOB_KIND):
        running = _under_way(ws)
        if not running:
            raise EvalRunError("no eval run is under way")
        job = job_of(ws, running[0].id)
        if job is None or not terminate_job(job):
            raise EvalRunError(
                f"eval run {running[0].id}: its job is not running; `cra eval status` settles it"
            )
    return running[0].id


def reconcile_evals(ws: Workspace) -> list[int]:
    """Mark failed the queued or running eval runs whose job is gone; returns their ids."""
    return settle(ws, JOB_KIND, _reconcile)


def _reconcile(ws: Workspace, lock: JobLock) -> list[int]:
    """Record the eval jobs that died as failed, then end the runs no live job holds."""
    for live in _live_jobs(ws):
        if not lock.alive(live):
            finish_job(ws, live.id, "failed", "the eval job died")
    ended = []
    for run in _under_way(ws):
        job = job_of(ws, run.id)
        if job is not None and job.status in LIVE:
            continue
        if end_run(ws, run.id, "failed", DIED):
            ended.append(run.id)
    return ended


def _live_jobs(ws: Workspace) -> list[JobRow]:
    rows = ws.db.table("jobs").rows_where(
        f"kind = ? AND status IN ({', '.join('?' * len(LIVE))})", [JOB_KIND, *LIVE], order_by="id"
    )
    return [JobRow.model_validate(row) for row in rows]


def _under_way(ws: Workspace) -> list[EvalRun]:
    """The eval runs queued or running, oldest first."""
    return eval_runs(
        ws.db.table("eval_runs").rows_where(
            f"status IN ({', '.join('?' * len(UNDER_WAY))})", list(UNDER_WAY), order_by="id"
        )
    )


def job_of(ws: Workspace, eval_id: int) -> JobRow | None:
    """The job that runs `eval_id`: its own, or the job of a later run queued with it."""
    rows = ws.db.table("jobs").rows_where(
        "kind = ? AND ref_id >= ? AND EXISTS (SELECT 1 FROM json_each(argv_json) WHERE value = ?)",
        [JOB_KIND, eval_id, str(eval_id)],
        order_by="id desc",
        limit=1,
    )
    return next((JobRow.model_validate(row) for row in rows), None)


def job_runs(job: JobRow) -> list[int]:
    """The ids of the eval runs `job` runs, in the order it runs them."""
    argv = json.loads(job.argv_json or "[]")
    if RUNNER not in argv:
        return [job.ref_id]
    return [int(arg) for arg in argv[argv.index(RUNNER) + 1 :]]


Severity = Literal["information", "warning", "error"]


def _where(run: EvalRun) -> str:
    """`queued`, `starting` (taken, nothing asked yet) or the run's progress."""
    progress = run.progress
    if run.status == "queued":
        return "queued"
    return "starting" if progress is None else progress.text()


@dataclass(frozen=True)
class EvalJob:
    """One eval job as the operator follows it: its runs in the order it runs them (a baseline
    first, the version it evaluates last), its job row (None before it has one), and the gate's
    decision on its last run (word, baseline) once recorded."""

    runs: list[EvalRun]
    job: JobRow | None
    decision: tuple[str, str] | None

    @property
    def key(self) -> int:
        """The id of its last run, which names the job (`jobs.ref_id`)."""
        return self.runs[-1].id

    @property
    def target(self) -> str:
        """What it evaluates: a version's name, or `base (STAGE)` for the bare base."""
        last = self.runs[-1]
        return last.target if last.adapter_id is not None else f"{BASE} ({last.stage})"

    @property
    def live(self) -> bool:
        """A run is queued or running, or the job has not recorded its end (it gates last)."""
        return any(run.status in UNDER_WAY for run in self.runs) or (
            self.job is not None and self.job.status in LIVE
        )

    def state(self, name: str) -> str | None:
        """What version `name`'s row says while the job runs (`evaluating: 12/40 answered`,
        `evaluating: base 3/40 answered` while its baseline goes first, `evaluating: gating`);
        None when the job has ended or does not score `name` now."""
        if not self.live:
            return None
        current = next((run for run in self.runs if run.status in UNDER_WAY), None)
        last = self.runs[-1]
        if name == last.target and last.adapter_id is not None:
            if current is None:
                return "evaluating: gating"
            if current.id == last.id:
                return f"evaluating: {_where(current)}"
            return f"evaluating: {current.target} {_where(current)}"
        if current is not None and current.target == name and current.adapter_id is not None:
            return f"evaluating: {_where(current)}, baseline of {last.target}"
        return None

    def outcome(self) -> tuple[str, Severity]:
        """How the ended job ended, in one line: done with the gate's word, or stopped, or
        failed with the reason."""
        ended = next((run for run in self.runs if run.status != "done"), None)
        if ended is None:
            if self.decision is not None:
                word, baseline = self.decision
                return f"{self.target}: eval done; gate: {word} against {baseline}", "information"
            if self.runs[-1].adapter_id is None:
                return f"{self.target}: eval done", "information"
            log = "" if self.job is None or not self.job.log_path else f" ({self.job.log_path})"
            return f"{self.target}: eval done; the gate did not decide{log}", "warning"
        which = "" if ended.id == self.key else f" (eval run {ended.id} of {ended.target})"
        if ended.status == "stopped":
            return f"{self.target}: eval stopped{which}: {ended.reason}", "warning"
        return f"{self.target}: eval {ended.status}{which}: {ended.reason}", "error"


def newest_eval_id(ws: Workspace) -> int:
    """The id of the newest eval run; 0 when there is none."""
    found: int = ws.db.execute("SELECT COALESCE(MAX(id), 0) FROM eval_runs").fetchone()[0]
    return found


def eval_jobs(ws: Workspace, keys: Iterable[int] = (), after: int | None = None) -> list[EvalJob]:
    """The eval jobs under way, those whose runs include one of `keys`, and those with a run
    newer than run `after`; oldest first. Each job's row is read before its runs and its runs
    before the decision, so a job read ended has its final runs and decision."""
    wanted = {run.id for run in _under_way(ws)} | {job.ref_id for job in _live_jobs(ws)}
    wanted |= set(keys)
    if after is not None:
        wanted |= {
            row[0] for row in ws.db.execute("SELECT id FROM eval_runs WHERE id > ?", [after])
        }
    found: dict[int, EvalJob] = {}
    seen: set[int] = set()
    for eval_id in sorted(wanted):
        if eval_id in seen:
            continue
        job = job_of(ws, eval_id)
        ids = [eval_id] if job is None else job_runs(job)
        seen.update(ids)
        runs = eval_runs(
            ws.db.table("eval_runs").rows_where(
                f"id IN ({', '.join('?' * len(ids))})", ids, order_by="id"
            )
        )
        if not runs:
            continue
        decision = ws.db.execute(
            "SELECT decision, baseline FROM gate_decisions WHERE candidate_eval_id = ? "
            "ORDER BY id DESC LIMIT 1",
            [runs[-1].id],
        ).fetchone()
        entry = EvalJob(runs, job, None if decision is None else (decision[0], decision[1]))
        found[entry.key] = entry
    return [found[key] for key in sorted(found)]
