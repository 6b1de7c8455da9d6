"""`cra eval`: score adapter versions on held-out eval sets, and put candidates through the gate."""

import time

import click

from app.cli_common import open_workspace
from app.cli_eval_set import eval_set_group
from engine.adapters.activation import version_row
from engine.core.stages import STAGES
from engine.core.terminal_text import neutralise
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalRun
from engine.evaluation.evidence import (
    Differences,
    EvidenceError,
    differences,
    run_evidence,
    shorten,
)
from engine.evaluation.example_scores import paired_metrics
from engine.evaluation.gate import (
    GateError,
    compare,
    decide,
    decision_lines,
    evidence_lines,
    latest_decision,
    metric_confidence,
    serving_row,
)
from engine.evaluation.runs import (
    BACKENDS,
    eval_jobs,
    eval_row,
    list_evals,
    reconcile_evals,
    start_eval,
    stop_eval,
)


def _workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    return open_workspace(ctx, write=write)


def _metrics_text(run: EvalRun) -> str:
    return "  ".join(f"{name} {value:.3f}" for name, value in sorted(run.metrics.items())) or "-"


def _line(run: EvalRun) -> str:
    return (
        f"{run.id:>4} {run.target:<18} {run.stage:<13} {run.dataset_id:<18} "
        f"{run.backend:<6} {run.state():<8} {_metrics_text(run)}"
    )


@click.group("eval")
def eval_group() -> None:
    """Eval runs and the eval gate (LoRA Training Strategy §9)."""


eval_group.add_command(eval_set_group)


@eval_group.command("run")
@click.option("--adapter", help="The version to evaluate (its stage's baseline is scored too).")
@click.option("--stage", type=click.Choice(STAGES), help="With no --adapter: score the base.")
@click.option("--backend", type=click.Choice(BACKENDS), help="Default: [evaluation] backend.")
@click.option("--wait", is_flag=True, help="Stay until the job ends, then show the gate.")
@click.pass_context
def eval_run(
    ctx: click.Context,
    adapter: str | None,
    stage: str | None,
    backend: str | None,
    wait: bool,
) -> None:
    """Score a version (and its baseline) on its stage's newest frozen eval set, in a job."""
    ws = _workspace(ctx)
    if adapter is not None and stage is not None:
        raise click.UsageError("give --adapter or --stage, not both: a version has its stage")
    ids = start_eval(ws, adapter, stage, backend)
    for eval_id in ids:
        run = eval_row(ws, eval_id)
        click.echo(
            f"eval run {eval_id}: {run.target} on eval set {run.eval_set_id} ({run.backend})"
        )
    if not wait:
        click.echo("started; `cra eval status` follows it, the Adapters pane shows the results")
        return
    while True:
        reconcile_evals(ws)
        # The job gates the candidate after its last run is done: wait for the job's end.
        job = next(job for job in eval_jobs(ws, ids[-1:]) if job.key == ids[-1])
        if not job.live:
            break
        time.sleep(1)
    for run in job.runs:
        reason = f": {run.reason}" if run.reason else ""
        click.echo(f"eval run {run.id} {run.status}{reason}  {_metrics_text(run)}")
    if adapter is not None:
        _show_gate(ws, adapter)


def _show_gate(ws: Workspace, name: str) -> None:
    decision = latest_decision(ws, version_row(ws, name).id)
    if decision is None:
        click.echo(f"gate: {name} has no decision")
        return
    for text in decision_lines(ws, decision):
        click.echo(text)


@eval_group.command("status")
@click.pass_context
def eval_status(ctx: click.Context) -> None:
    """Every eval run, newest first."""
    ws = _workspace(ctx, write=False)
    reconcile_evals(ws)
    runs = list_evals(ws)
    if not runs:
        click.echo("no eval runs yet: `cra eval run --adapter NAME` starts one")
        return
    for run in runs:
        click.echo(_line(run))


@eval_group.command("show")
@click.argument("eval_id", type=int)
@click.option(
    "--differences",
    "show_differences",
    is_flag=True,
    help="List the examples where the run and its baseline disagree.",
)
@click.option("--metric", help="With --differences: the metric (default: the first primary).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="With --differences: at most this many examples of each side.",
)
@click.pass_context
def eval_show(
    ctx: click.Context, eval_id: int, show_differences: bool, metric: str | None, limit: int
) -> None:
    """One eval run: what it scored, its metrics, where its answers are, and beside its
    baseline's run on the same eval set the paired difference of each metric."""
    ws = _workspace(ctx, write=False)
    reconcile_evals(ws)
    run = eval_row(ws, eval_id)
    click.echo(_line(run))
    if run.reason:
        click.echo(f"reason: {run.reason}")
    where = (
        f"eval set {run.eval_set_id}"
        if run.eval_set_id is not None
        else f"dataset {run.dataset_id}'s eval.jsonl"
    )
    click.echo(f"eval set: {where}, sha256 {run.eval_sha256}")
    click.echo(f"answers: {ws.root / run.out_dir}")
    if run.status != "done" and not show_differences:
        return
    evidence = run_evidence(ws, eval_id)
    if evidence is None:
        click.echo("a run of the base: it is the baseline, compared with nothing")
        if show_differences:
            raise EvidenceError(
                f"eval run {eval_id} is the base's: it has no baseline to differ from"
            )
        return
    click.echo("")
    for text in evidence.lines():
        click.echo(text)
    if show_differences:
        _show_differences(differences(ws, evidence, metric), limit)


def _examples(count: int) -> str:
    return f"{count} example" + ("" if count == 1 else "s")


def _show_differences(found: Differences, limit: int) -> None:
    """Each side's disagreeing examples: scores, then the task, reference and both answers on
    one shortened line each, their control characters shown as escapes."""
    groups = (
        (f"{found.candidate} better", found.better),
        (f"{found.baseline} better", found.worse),
    )
    for title, examples in groups:
        click.echo(f"\n{title} on {found.metric}: {_examples(len(examples))}")
        for example in examples[:limit]:
            click.echo(f"  {neutralise(example.title())}")
            texts = [
                ("task", example.prompt, None),
                ("reference", example.reference, None),
                ("baseline", example.baseline.answer, example.baseline.note),
                ("candidate", example.candidate.answer, example.candidate.note),
            ]
            for label, text, note in texts:
                extra = f" [{shorten(note, 60)}]" if note else ""
                click.echo(neutralise(f"    {label + ':':<10} {shorten(text, 100)}{extra}"))
        if len(examples) > limit:
            click.echo(f"  … {len(examples) - limit} more (--limit)")


@eval_group.command("gate")
@click.argument("name")
@click.option("--operator", help="Who decides (default: the config's operator).")
@click.pass_context
def eval_gate(ctx: click.Context, name: str, operator: str | None) -> None:
    """Put candidate NAME through the gate against its stage's active version (or the base):
    the verdict, each metric's paired difference with its interval, and every reason."""
    ws = _workspace(ctx)
    for text in decision_lines(ws, decide(ws, name, operator=operator)):
        click.echo(text)


@eval_group.command("compare")
@click.argument("name")
@click.pass_context
def eval_compare(ctx: click.Context, name: str) -> None:
    """Version NAME's metrics beside its stage's active version's (or the base's), example by
    example on their newest shared eval set: each difference with its interval; decides
    nothing."""
    ws = _workspace(ctx, write=False)
    row = version_row(ws, name)
    comparison = compare(ws, row.stage, row, serving_row(ws, row.stage))
    if comparison.candidate_eval is None or comparison.baseline_eval is None:
        raise GateError(
            f"{name} and {comparison.baseline} have no finished eval runs on one eval set; "
            f"run `cra eval run --adapter {name}`"
        )
    evidence = paired_metrics(
        ws,
        row.stage,
        comparison.candidate_eval,
        comparison.baseline_eval,
        confidence=metric_confidence(row.stage, ws.config.gate.confidence),
    )
    click.echo(
        f"{name} against {comparison.baseline} (eval runs {comparison.candidate_eval.id} "
        f"and {comparison.baseline_eval.id}):"
    )
    for text in evidence_lines(row.stage, evidence):
        click.echo(text)


@eval_group.command("stop")
@click.pass_context
def eval_stop(ctx: click.Context) -> None:
    """Stop the eval job under way; its unfinished runs are marked stopped."""
    eval_id = stop_eval(_workspace(ctx))
    click.echo(f"eval run {eval_id}: asked to stop")
