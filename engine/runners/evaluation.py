"""The eval job: `python -m engine.runners.evaluation EVAL_ID [EVAL_ID ...]`, in the workspace.

Each eval run asks its model every eval row's prompt (temperature 0) and scores the answer
against the reference (`engine.evaluation.metrics`). execute_code answers are also applied to
their task's parent commit and the task's tests decide (pass@1); the planning DPO runs each
eval task through the harness with the model in the planner slot (resolved rate), LoRA Training
Strategy §9.1. The model answers from the configured vLLM server (`server`: an adapter is loaded
under its own name first) or from the CPU stand-in started for the run (`local`). Answers go to
`evals/<id>/answers.jsonl`, harness attempts under `evals/<id>/tasks/`. After the last run, a
candidate goes through the gate. SIGTERM stops the job: the run under way is marked stopped.

As it goes the job records each run's progress (`eval_runs.progress_json`: rows answered, then
answers tested or harness tasks run), and every write it makes to a run, from taking it to
recording it done, holds only while the run is still its own: queued when taken, running after.
A run that a reconcile settled meanwhile (it judged the job dead) keeps that end; the job stops
there, records none of its results, and ends failed saying so.
"""

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from engine.adapters.activation import AdapterVersion, version_by_id, version_row
from engine.bases.registry import base_folder_of
from engine.core.config import OpenAIPipelineConfig
from engine.core.errors import CraError
from engine.core.jobs import JOB_ID_ENV, finish_job, heartbeat
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalProgress, EvalRun, Phase
from engine.evaluation.eval_set import EvalRow, EvalSet, HarnessTask, load_eval_set
from engine.evaluation.example_scores import ExampleScore, line_key
from engine.evaluation.gate import decide, decision_lines
from engine.evaluation.metrics import RowScore, aggregate, parse_edits, score_row
from engine.evaluation.runs import end_run, eval_row
from engine.harness.attempts import Proposer, evaluate_attempt
from engine.harness.openai_pipeline import propose_openai
from engine.harness.package import CorpusPackage
from engine.harness.pipeline import PipelineResult, PlannerTask
from engine.harness.plan import Edit, Plan, PlannerOutput, PlanPart, PlanStep
from engine.serving.chat import chat
from engine.serving.command import server_url
from engine.serving.cpu_server import cpu_server
from engine.serving.vllm_client import ServingError, VllmClient, base_folder, load_version
from engine.training.registry import resolve_base
from engine.training.runs import frozen_base
from engine.training.worker import OFFLINE_ENV

ANSWERS_FILE = "answers.jsonl"
LOG_FILE = "eval.log"


class _Stop(Exception):
    """SIGTERM arrived: stop after recording the run under way as stopped."""


class _Settled(Exception):
    """Another process ended the run while this job ran it (a reconcile that judged the job
    dead): that end stands, and the job records nothing more of the run."""

    def __init__(self, run: EvalRun) -> None:
        super().__init__(
            f"eval run {run.id} was settled {run.status} by another process while this job "
            f"ran it ({run.reason or 'no reason given'}); its results are not recorded"
        )


Tick = Callable[[int, int], None]
"""Told `done, total`: how many of a phase's steps are done, as the phase goes."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _take(ws: Workspace, eval_id: int) -> None:
    """Mark the queued run `eval_id` running; refused (`_Settled`) when it is not queued."""
    cursor = ws.db.execute(
        "UPDATE eval_runs SET status = 'running', reason = '' WHERE id = ? AND status = 'queued'",
        [eval_id],
    )
    if cursor.rowcount != 1:
        raise _Settled(eval_row(ws, eval_id))


def _progress(ws: Workspace, eval_id: int, job_id: int | None, phase: Phase) -> Tick:
    """Records `done` of `total` in `phase` on the run while it is still running (`_Settled`
    when not), with the job's heartbeat."""

    def tick(done: int, total: int) -> None:
        progress = EvalProgress(phase=phase, done=done, total=total).model_dump_json()
        cursor = ws.db.execute(
            "UPDATE eval_runs SET progress_json = ? WHERE id = ? AND status = 'running'",
            [progress, eval_id],
        )
        if cursor.rowcount != 1:
            raise _Settled(eval_row(ws, eval_id))
        if job_id is not None:
            heartbeat(ws, job_id)

    return tick


def _record_done(
    ws: Workspace, eval_id: int, rows: int, metrics: dict[str, float], examples: list[ExampleScore]
) -> None:
    """Record the run done with its metrics and per-example scores, in one transaction, if it
    is still running; otherwise record nothing (`_Settled`)."""
    records = [example.record(eval_id) for example in examples]
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        cursor = ws.db.execute(
            "UPDATE eval_runs SET status = 'done', rows = ?, metrics_json = ?, finished_at = ? "
            "WHERE id = ? AND status = 'running'",
            [rows, json.dumps(metrics, sort_keys=True), utc_now(), eval_id],
        )
        taken = cursor.rowcount == 1
        if taken and records:
            columns = list(records[0])
            ws.db.conn.executemany(
                f"INSERT INTO eval_scores ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [[record[column] for column in columns] for record in records],
            )
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    if not taken:
        ws.db.execute("ROLLBACK")
        raise _Settled(eval_row(ws, eval_id))
    ws.db.execute("COMMIT")


def _version(ws: Workspace, run: EvalRun) -> AdapterVersion | None:
    return None if run.adapter_id is None else version_by_id(ws, run.adapter_id)


@contextmanager
def _endpoint(ws: Workspace, run: EvalRun, out: Path) -> Iterator[tuple[str, str]]:
    """The base URL to ask and the model name to ask for, for the run's model."""
    version = _version(ws, run)
    kind = run.base_model
    if run.backend == "local":
        base = (
            resolve_base(ws, version)
            if version is not None
            else base_folder_of(ws, frozen_base(ws, kind))
        )
        adapters = {} if version is None else {version.name: ws.root / version.path}
        with cpu_server(base.resolve(), out / "server.log", adapters) as url:
            yield url, version.name if version is not None else str(base.resolve())
        return
    url = server_url(ws, kind)
    if version is None:
        yield url, str(base_folder(ws, kind))
        return
    client = VllmClient(url, ws.config.serving.timeout_s)
    loaded_before = version.name in client.loaded_adapters()
    load_version(client, ws, version)
    try:
        yield url, version.name
    finally:
        if not loaded_before:
            _unload_unless_active(ws, client, version.name)


def _unload_unless_active(ws: Workspace, client: VllmClient, name: str) -> None:
    """Unload a version this run loaded, unless it is active by now: a candidate left loaded
    keeps one of the server's `--max-loras` slots (and its memory) until the server restarts."""
    if version_row(ws, name).status == "active":
        return
    try:
        client.unload_adapter(name)
    except ServingError as exc:
        print(
            f"{name} stays loaded: {exc}; it keeps a LoRA slot until the server restarts",
            file=sys.stderr,
        )
        return
    print(f"unloaded {name} from {client.base_url}: it was loaded for this run only")


def _ask(ws: Workspace, url: str, model: str, row: EvalRow) -> tuple[str, str | None]:
    """The model's answer to the row's prompt, or the reason there is none."""
    config = ws.config.evaluation
    try:
        answer = chat(url, model, row.messages, config.max_tokens, config.timeout_s)
    except CraError as exc:
        return "", str(exc)
    return answer.text, None


def _example(row: EvalRow, score: RowScore) -> ExampleScore:
    """A scored row as its per-example record: the stage's counts and valid_rate's."""
    return ExampleScore(
        key=line_key(row.line),
        line=row.line,
        example_id=row.example_id,
        task=None if row.task is None else row.task.name,
        valid=score.valid,
        counts={**score.counts, "valid_rate": (int(score.valid), 1)},
    )


def _edits_plan(edits: list[Edit]) -> Plan:
    """A one-part plan naming the files the edits touch: execute_code answers carry no plan,
    and the harness wants one beside the edits."""
    files = list(dict.fromkeys(edit.path for edit in edits))
    steps = [PlanStep(description=f"edit {path}", file=path) for path in files]
    return Plan(
        summary="the answer's edits",
        parts=[PlanPart(id="edits", title="the answer's edits", steps=steps)],
    )


def _attempt(run: EvalRun, model: str, task: HarnessTask) -> dict[str, Any]:
    return {
        "id": f"eval-{run.id}",
        "package_digest": task.package_digest,
        "sha": task.sha,
        "task": task.name,
        "pipeline": f"eval of {run.target}",
        "model": model,
        "temperature": 0.0,
        "seed": 0,
    }


def _answered(result: PipelineResult) -> Proposer:
    """A planner slot that gives `result`, the answer the served model already wrote."""
    return lambda package, task: result


def pass_at_1(
    ws: Workspace,
    run: EvalRun,
    model: str,
    out: Path,
    answered: list[tuple[EvalRow, str]],
    tick: Tick | None = None,
) -> tuple[float | None, list[dict[str, Any]]]:
    """The share of task rows whose edits resolve their task, and one record per row tried;
    `tick` is told how many are done before each row is tried."""
    outcomes: list[dict[str, Any]] = []
    tasks = sum(row.task is not None for row, _ in answered)
    for row, answer in answered:
        if row.task is None:
            continue
        if tick is not None:
            tick(len(outcomes), tasks)
        edits = parse_edits(answer)
        if not edits:
            outcomes.append({"line": row.line, "task": row.task.name, "outcome": "invalid"})
            continue
        result = PipelineResult(
            output=PlannerOutput(plan=_edits_plan(edits), edits=edits), raw=answer
        )
        record = evaluate_attempt(
            ws,
            _attempt(run, model, row.task),
            out / "tasks" / f"line-{row.line}",
            _answered(result),
        )
        outcomes.append(
            {
                "line": row.line,
                "task": row.task.name,
                "outcome": record.outcome,
                "reason": record.reason,
            }
        )
    if not outcomes:
        return None, outcomes
    return sum(o["outcome"] == "resolved" for o in outcomes) / len(outcomes), outcomes


def resolved_rate(
    ws: Workspace,
    run: EvalRun,
    url: str,
    model: str,
    out: Path,
    eval_set: EvalSet,
    tick: Tick | None = None,
) -> tuple[float | None, list[dict[str, Any]]]:
    """The share of the eval tasks the harness resolves with the model as the planner; `tick`
    is told how many are done before each task runs."""
    harness = ws.config.harness.openai
    config = OpenAIPipelineConfig(
        base_url=f"{url}/v1",
        model=model,
        timeout_s=ws.config.evaluation.timeout_s,
        max_tokens=min(harness.max_tokens, ws.config.evaluation.max_tokens),
    )

    def propose(package: CorpusPackage, task: PlannerTask) -> PipelineResult:
        return propose_openai(config, task)

    outcomes: list[dict[str, Any]] = []
    tasks = eval_set.tasks()
    for task in tasks:
        if tick is not None:
            tick(len(outcomes), len(tasks))
        record = evaluate_attempt(
            ws, _attempt(run, model, task), out / "tasks" / task.name, propose
        )
        outcomes.append({"task": task.name, "outcome": record.outcome, "reason": record.reason})
    if not outcomes:
        return None, outcomes
    return sum(o["outcome"] == "resolved" for o in outcomes) / len(outcomes), outcomes


def evaluate(ws: Workspace, eval_id: int, job_id: int | None) -> dict[str, float]:
    """Score eval run `eval_id` and record its metrics; returns them."""
    _take(ws, eval_id)
    run = eval_row(ws, eval_id)
    out = ws.root / run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if run.eval_set_id is None:
        raise CraError(f"eval run {eval_id} names no frozen eval set; run `cra eval run` again")
    eval_set = load_eval_set(ws, run.eval_set_id)
    if eval_set.sha256 != run.eval_sha256:
        raise CraError(
            f"eval run {eval_id}: eval set {eval_set.id} is not the one queued "
            f"(sha256 {eval_set.sha256[:12]}, queued {run.eval_sha256[:12]})"
        )
    stage = run.stage
    print(f"eval {eval_id}: {run.target} on {len(eval_set.rows)} rows of eval set {eval_set.id}")
    scores: list[RowScore] = []
    examples: dict[str, ExampleScore] = {}
    answered: list[tuple[EvalRow, str]] = []
    metrics: dict[str, float] = {}
    answering = _progress(ws, eval_id, job_id, "answering")
    answering(0, len(eval_set.rows))
    with _endpoint(ws, run, out) as (url, model), (out / ANSWERS_FILE).open("w") as answers:
        for row in eval_set.rows:
            answer, error = _ask(ws, url, model, row)
            if error is not None and not answered and not scores:
                raise CraError(f"eval run {eval_id}: the model gives no answers: {error}")
            answered.append((row, answer))
            record: dict[str, Any] = {
                "line": row.line,
                "example_id": row.example_id,
                "answer": answer,
            }
            if error is not None:
                record["error"] = error
            if stage != "planning_dpo":
                score = score_row(stage, answer, row.reference)
                scores.append(score)
                record["valid"] = score.valid
                examples[line_key(row.line)] = _example(row, score)
            answers.write(json.dumps(record) + "\n")
            answers.flush()
            answering(len(answered), len(eval_set.rows))
        if scores:
            metrics.update(aggregate(stage, scores))
        outcomes: list[dict[str, Any]] = []
        if stage == "execute_code":
            testing = _progress(ws, eval_id, job_id, "testing")
            value, outcomes = pass_at_1(ws, run, model, out, answered, testing)
            if value is not None:
                metrics["pass_at_1"] = value
            for outcome in outcomes:
                example = examples[line_key(outcome["line"])]
                example.counts["pass_at_1"] = (int(outcome["outcome"] == "resolved"), 1)
        elif stage == "planning_dpo":
            harness = _progress(ws, eval_id, job_id, "harness")
            value, outcomes = resolved_rate(ws, run, url, model, out, eval_set, harness)
            if value is not None:
                metrics["resolved_rate"] = value
            for outcome in outcomes:
                examples[outcome["task"]] = ExampleScore(
                    key=outcome["task"],
                    line=None,
                    example_id=None,
                    task=outcome["task"],
                    valid=None,
                    counts={"resolved_rate": (int(outcome["outcome"] == "resolved"), 1)},
                )
    (out / "harness.json").write_text(json.dumps(outcomes, indent=2) + "\n", encoding="utf-8")
    _record_done(ws, eval_id, len(eval_set.rows), metrics, list(examples.values()))
    print(f"eval {eval_id}: done: {json.dumps(metrics, sort_keys=True)}")
    return metrics


def run_job(ws: Workspace, eval_ids: Sequence[int], job_id: int | None) -> tuple[str, str]:
    """Run each eval in turn, then gate the last one's candidate; returns the job's end
    status (`exited`, `failed`, `killed`) and why."""
    for number, eval_id in enumerate(eval_ids):
        try:
            evaluate(ws, eval_id, job_id)
        except _Stop:
            for left in eval_ids[number:]:
                end_run(ws, left, "stopped", "stopped by the operator")
            return "killed", "stopped by the operator"
        except _Settled as exc:
            print(f"eval {eval_id}: {exc}", file=sys.stderr)
            for left in eval_ids[number + 1 :]:
                end_run(ws, left, "failed", f"eval run {eval_id} was settled before it")
            return "failed", str(exc)
        except CraError as exc:
            print(f"eval {eval_id}: failed: {exc}", file=sys.stderr)
            for left in eval_ids[number:]:
                why = str(exc) if left == eval_id else f"eval run {eval_id} failed before it"
                end_run(ws, left, "failed", why)
            return "failed", f"eval run {eval_id} failed"
    _gate(ws, eval_row(ws, eval_ids[-1]))
    return "exited", ""


def _gate(ws: Workspace, run: EvalRun) -> None:
    version = _version(ws, run)
    if version is None or version.status != "candidate":
        return
    try:
        decision = decide(ws, version.name, operator=run.created_by)
    except CraError as exc:
        print(f"gate: {version.name}: not decided: {exc}")
        return
    print("\n".join(decision_lines(ws, decision)))


def main(argv: Sequence[str] | None = None) -> int:
    """The job's entry point: 0 when every eval run finished, 1 otherwise, 2 for bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not all(arg.isdigit() for arg in args):
        print("usage: python -m engine.runners.evaluation EVAL_ID [EVAL_ID ...]", file=sys.stderr)
        return 2
    os.environ.update(OFFLINE_ENV)
    signal.signal(signal.SIGTERM, _on_term)
    ws = Workspace.open(Path.cwd())
    job_env = os.environ.get(JOB_ID_ENV)
    job_id = int(job_env) if job_env else None
    status, reason = run_job(ws, [int(arg) for arg in args], job_id)
    if job_id is not None:
        finish_job(ws, job_id, status, reason)
    return 0 if status == "exited" else 1


if __name__ == "__main__":
    sys.exit(main())
