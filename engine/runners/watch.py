"""The watch job: `python -m engine.runners.watch WATCH_ID`, in the workspace.

Measures the baseline (unless a result of the same model on the same tasks can be reused, see
`engine.promotion.watch`) and the promoted version: each held-out task through the harness with
the model in the planner slot (temperature 0, seed 0), from the configured vLLM server
(`server`) or the CPU stand-in started for the measurement (`local`), the evaluation's backend.
Artifacts go to `watches/<id>/<baseline|after>/<task>/`. Then it decides: a drop of the
resolved rate past the tolerance rolls the stage back, when the promoted version still serves.

A model that gives no answer (the endpoint failed, not a malformed answer) stops the watch as
failed: a measurement of an unreachable server says nothing about the version.
"""

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.adapters.activation import AdapterVersion, active_row, version_by_id
from engine.bases.registry import base_folder_of
from engine.core.config import OpenAIPipelineConfig
from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.jobs import JOB_ID_ENV, finish_job, heartbeat
from engine.core.stages import BASE_MODEL, BaseModelKind
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.gate import target_name
from engine.harness.attempts import evaluate_attempt
from engine.harness.openai_pipeline import propose_openai
from engine.harness.package import CorpusPackage
from engine.harness.pipeline import PipelineResult, PlannerTask
from engine.promotion.switch import rollback_stage
from engine.promotion.watch import (
    WATCH_OPERATOR,
    TaskSet,
    WatchError,
    flipped,
    result_rate,
    task_set,
)
from engine.serving.command import server_url
from engine.serving.cpu_server import cpu_server
from engine.serving.vllm_client import VllmClient, base_folder, load_version
from engine.training.registry import resolve_base
from engine.training.runs import frozen_base
from engine.training.worker import OFFLINE_ENV

FLIPPED_IN_REASON = 5


def _set(ws: Workspace, watch_id: int, **values: Any) -> None:
    with ws.db.conn:
        ws.db.table("watch_runs").update(watch_id, values)


def _version(ws: Workspace, version_id: int | None) -> AdapterVersion | None:
    return None if version_id is None else version_by_id(ws, version_id)


def _base_path(
    ws: Workspace, backend: str, kind: BaseModelKind, target: AdapterVersion | None
) -> Path:
    """The base model folder the measurement uses: a result is reused only on the same one."""
    if backend == "server":
        return base_folder(ws, kind)
    if target is not None:
        return resolve_base(ws, target).resolve()
    return base_folder_of(ws, frozen_base(ws, kind)).resolve()


@contextmanager
def _endpoint(
    ws: Workspace,
    backend: str,
    kind: str,
    base: Path,
    target: AdapterVersion | None,
    out: Path,
) -> Iterator[tuple[str, str]]:
    """The base URL to ask and the model name to ask for, for `target` (None: the base)."""
    if backend == "local":
        adapters = {} if target is None else {target.name: ws.root / target.path}
        with cpu_server(base, out / "server.log", adapters) as url:
            yield url, str(base) if target is None else target.name
        return
    url = server_url(ws, kind)
    if target is None:
        yield url, str(base)
        return
    load_version(VllmClient(url, ws.config.serving.timeout_s), ws, target)
    yield url, target.name


def _reusable(
    ws: Workspace, watch: dict[str, Any], target: AdapterVersion | None, base: Path
) -> dict[str, Any] | None:
    """The newest result of the same model on the same tasks and backend, if any."""
    rows = list(
        ws.db["e2e_results"].rows_where(
            "stage = ? AND tasks_sha256 = ? AND backend = ? AND target = ? "
            "AND adapter_id IS ? AND base_path = ?",
            [
                watch["stage"],
                watch["tasks_sha256"],
                watch["backend"],
                target_name(target),
                None if target is None else target.id,
                str(base),
            ],
            order_by="id desc",
            limit=1,
        )
    )
    return rows[0] if rows else None


def _measure(
    ws: Workspace,
    watch: dict[str, Any],
    target: AdapterVersion | None,
    base: Path,
    task_set: TaskSet,
    out: Path,
    job_id: int | None,
) -> dict[str, Any]:
    """Run every task through the harness with `target` in the planner slot; records and
    returns the `e2e_results` row."""
    out.mkdir(parents=True, exist_ok=True)
    kind = BASE_MODEL[watch["stage"]]
    label = target_name(target)
    outcomes = []
    with _endpoint(ws, watch["backend"], kind, base, target, out) as (url, model):
        config = OpenAIPipelineConfig(
            base_url=f"{url}/v1",
            model=model,
            timeout_s=ws.config.evaluation.timeout_s,
            max_tokens=min(ws.config.harness.openai.max_tokens, ws.config.evaluation.max_tokens),
        )

        def propose(package: CorpusPackage, task: PlannerTask) -> PipelineResult:
            result = propose_openai(config, task)
            if result.output is None and not result.malformed:
                raise WatchError(
                    f"watch {watch['id']}: {label} gave no answer for task {task.task}: "
                    f"{result.error}"
                )
            return result

        for task in task_set.tasks:
            attempt = {
                "id": f"watch-{watch['id']}",
                "package_digest": task.package_digest,
                "sha": task.sha,
                "task": task.name,
                "pipeline": f"watch of {label}",
                "model": model,
                "temperature": 0.0,
                "seed": 0,
            }
            record = evaluate_attempt(ws, attempt, out / task.name, propose)
            outcomes.append({"task": task.name, "outcome": record.outcome, "reason": record.reason})
            print(f"watch {watch['id']}: {label} on {task.name}: {record.outcome}")
            if job_id is not None:
                heartbeat(ws, job_id)
    with ws.db.conn:
        result_id = inserted_id(
            ws.db.table("e2e_results").insert(
                {
                    "watch_id": watch["id"],
                    "target": label,
                    "adapter_id": None if target is None else target.id,
                    "stage": watch["stage"],
                    "base_path": str(base),
                    "backend": watch["backend"],
                    "tasks_sha256": watch["tasks_sha256"],
                    "n": len(outcomes),
                    "resolved": sum(o["outcome"] == "resolved" for o in outcomes),
                    "outcomes_json": json.dumps(outcomes),
                    "at": utc_now(),
                }
            )
        )
    return dict(ws.db.table("e2e_results").get(result_id))


def _evidence(
    watch: dict[str, Any], name: str, baseline: dict[str, Any], after: dict[str, Any]
) -> str:
    """The rollback's reason: both resolved rates, n, the drop, the tolerance, what flipped."""
    changed = flipped(baseline, after)
    shown = ", ".join(
        f"{c['task']} {c['before']}→{c['after']}" for c in changed[:FLIPPED_IN_REASON]
    )
    more = len(changed) - FLIPPED_IN_REASON
    drop = result_rate(baseline) - result_rate(after)
    return (
        f"watch {watch['id']}: end-to-end resolved rate {result_rate(baseline):.3f} "
        f"({baseline['resolved']}/{baseline['n']}) with {watch['baseline']}, "
        f"{result_rate(after):.3f} ({after['resolved']}/{after['n']}) with {name}: a drop of "
        f"{drop:.3f}, past the tolerance {watch['tolerance']:.3f}; {len(changed)} tasks flipped"
        + (f": {shown}" if shown else "")
        + (f" and {more} more" if more > 0 else "")
    )


def _decide(
    ws: Workspace, watch: dict[str, Any], baseline: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """The verdict: held, rolled_back, or regressed (a drop not rolled back, and why)."""
    drop = result_rate(baseline) - result_rate(after)
    if drop <= watch["tolerance"] + 1e-9:
        return {"verdict": "held", "reason": ""}
    version = version_by_id(ws, watch["adapter_id"])
    evidence = _evidence(watch, version.name, baseline, after)
    active = active_row(ws, watch["stage"])
    if active is None or active.id != version.id:
        return {
            "verdict": "regressed",
            "reason": f"not rolled back: {target_name(active)} serves {watch['stage']} now; "
            f"{evidence}",
        }
    try:
        switched = rollback_stage(
            ws, watch["stage"], version.name, operator=WATCH_OPERATOR, reason=evidence
        )
    except CraError as exc:
        return {"verdict": "regressed", "reason": f"the rollback was refused: {exc}; {evidence}"}
    return {"verdict": "rolled_back", "reason": evidence, "rollback_id": switched.record_id}


def run_watch(ws: Workspace, watch_id: int, job_id: int | None) -> tuple[str, str]:
    """Measure, decide and record watch `watch_id`; returns the job's end status and why."""
    watch = dict(ws.db.table("watch_runs").get(watch_id))
    _set(ws, watch_id, status="running")
    out = ws.root / watch["out_dir"]
    try:
        version = version_by_id(ws, watch["adapter_id"])
        tasks = task_set(ws, watch["eval_set_id"])
        if tasks.sha256 != watch["tasks_sha256"]:
            raise WatchError(
                f"watch {watch_id}: the held-out tasks of eval set {tasks.eval_set_id} changed "
                "since the watch was queued"
            )
        kind = BASE_MODEL[watch["stage"]]
        target = _version(ws, watch["baseline_adapter_id"])
        base = _base_path(ws, watch["backend"], kind, target)
        baseline = _reusable(ws, watch, target, base) or _measure(
            ws, watch, target, base, tasks, out / "baseline", job_id
        )
        after = _measure(
            ws,
            watch,
            version,
            _base_path(ws, watch["backend"], kind, version),
            tasks,
            out / "after",
            job_id,
        )
        decision = _decide(ws, watch, baseline, after)
    except CraError as exc:
        print(f"watch {watch_id}: failed: {exc}", file=sys.stderr)
        _set(ws, watch_id, status="failed", reason=str(exc), finished_at=utc_now())
        return "failed", f"watch {watch_id} failed"
    _set(
        ws,
        watch_id,
        status="done",
        baseline_result_id=baseline["id"],
        after_result_id=after["id"],
        finished_at=utc_now(),
        **decision,
    )
    print(f"watch {watch_id}: {decision['verdict']} {decision['reason']}".rstrip())
    return "exited", ""


def main(argv: Sequence[str] | None = None) -> int:
    """The job's entry point: 0 when the watch decided, 1 otherwise, 2 for bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m engine.runners.watch WATCH_ID", file=sys.stderr)
        return 2
    os.environ.update(OFFLINE_ENV)
    ws = Workspace.open(Path.cwd())
    job_env = os.environ.get(JOB_ID_ENV)
    job_id = int(job_env) if job_env else None
    status, reason = run_watch(ws, int(args[0]), job_id)
    if job_id is not None:
        finish_job(ws, job_id, status, reason)
    return 0 if status == "exited" else 1


if __name__ == "__main__":
    sys.exit(main())
