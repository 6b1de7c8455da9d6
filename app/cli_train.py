"""`cra train`: start, stop and resume training runs, and follow them to their adapters."""

import json
import textwrap

import click

from app.cli_common import open_workspace
from engine.core.stages import LORA_STAGES, STAGES, LoraStage
from engine.core.workspace import Workspace
from engine.training.registry import last_step, read_result
from engine.training.run_view import TrainingRun
from engine.training.runs import (
    list_runs,
    reconcile_runs,
    resume_run,
    run_row,
    start_run,
    stop_run,
)
from engine.training.start_options import (
    UNSET_MEANS,
    TrainingRunError,
    parse_settings,
    stage_settings,
)


def _workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    return open_workspace(ctx, write=write)


def _progress(run: TrainingRun) -> str:
    step = "-" if run.step is None else str(run.step)
    total = "-" if run.max_steps is None else str(run.max_steps)
    loss = "-" if run.loss is None else f"{run.loss:.4f}"
    return f"step {step}/{total}  loss {loss}"


@click.group()
def train() -> None:
    """Training runs: start one on a curated dataset, stop, resume, follow it."""


@train.command("start")
@click.option("--dataset", "dataset_id", required=True, help="The curated dataset to train on.")
@click.option("--stage", required=True, type=click.Choice(STAGES), help="The adapter's stage.")
@click.option(
    "--method",
    type=click.Choice(["sft", "dpo"]),
    help="sft or dpo (default: what the dataset's format trains with).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a hyperparameter, e.g. --set max_steps=3 (repeatable).",
)
@click.option(
    "--force", is_flag=True, help="Start despite a running inference server, or outside the window."
)
@click.option(
    "--from-version",
    help="execute_code DPO: the SFT version to continue (default: the newest not rejected).",
)
@click.pass_context
def train_start(
    ctx: click.Context,
    dataset_id: str,
    stage: str,
    method: str | None,
    settings: tuple[str, ...],
    force: bool,
    from_version: str | None,
) -> None:
    """Start a run in a background worker; it goes on when the console closes."""
    ws = _workspace(ctx)
    run_id = start_run(
        ws,
        dataset_id,
        stage,
        method,
        parse_settings(settings),
        force=force,
        from_version=from_version,
    )
    run = run_row(ws, run_id)
    spec = run.spec
    continues = f" (continues {spec.continues})" if spec.continues else ""
    click.echo(
        f"started run {run_id}: {stage} {run.method} on {dataset_id}{continues} -> {run.run_dir}"
    )


@train.command("settings")
@click.option("--stage", required=True, type=click.Choice(LORA_STAGES), help="The adapter's stage.")
@click.pass_context
def train_settings(ctx: click.Context, stage: LoraStage) -> None:
    """The settings a run of a stage takes unless --set says otherwise, as --set writes them."""
    ws = _workspace(ctx, write=False)
    settings = stage_settings(ws.config.training, stage)
    if settings.error is not None:
        raise TrainingRunError(settings.error)
    for name, value in settings.values.items():
        if name in settings.configured:
            source = f"cra.toml [training.hyper.{stage}]"
        else:
            source = "default" + (f": {UNSET_MEANS[name]}" if name in UNSET_MEANS else "")
        click.echo(f"{name}={value or 'null'}".ljust(40) + f"  # {source}")


@train.command("stop")
@click.argument("run_id", type=int)
@click.pass_context
def train_stop(ctx: click.Context, run_id: int) -> None:
    """Ask a run to checkpoint and stop at its next step."""
    stop_run(_workspace(ctx), run_id)
    click.echo(f"run {run_id}: stopping at the next step (`cra train status` shows when)")


@train.command("resume")
@click.argument("run_id", type=int)
@click.option(
    "--force",
    is_flag=True,
    help="Resume despite a running inference server, or outside the window.",
)
@click.pass_context
def train_resume(ctx: click.Context, run_id: int, force: bool) -> None:
    """Resume a stopped or failed run from its newest checkpoint."""
    ws = _workspace(ctx)
    if resume_run(ws, run_id, force=force) is None:
        click.echo(f"run {run_id}: {run_row(ws, run_id).status} (its adapter was registered)")
    else:
        click.echo(f"run {run_id}: resumed from its newest checkpoint")


@train.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def train_status(ctx: click.Context, as_json: bool) -> None:
    """Every run, newest first: status, progress, loss and the adapter it made."""
    ws = _workspace(ctx, write=False)
    reconcile_runs(ws)
    runs = list_runs(ws)
    if as_json:
        fields = ("id", "stage", "method", "dataset_id", "status", "step", "max_steps", "loss")
        version = ("adapter_name", "adapter_status", "gate")
        click.echo(json.dumps([run.model_dump(include={*fields, *version}) for run in runs]))
        return
    if not runs:
        click.echo("no training runs yet: `cra train start` starts one")
        return
    for run in runs:
        click.echo(
            f"{run.id:>4}  {run.stage:<13} {run.method:<4} {run.dataset_id:<20} "
            f"{run.status:<9} {_progress(run)}  {run.adapter_name or ''}"
        )


@train.command("show")
@click.argument("run_id", type=int)
@click.pass_context
def train_show(ctx: click.Context, run_id: int) -> None:
    """One run: its spec, progress, outcome and adapter."""
    ws = _workspace(ctx, write=False)
    reconcile_runs(ws)
    run = run_row(ws, run_id)
    spec = run.spec
    hyper = spec.hyper
    settings = {
        **hyper.model_dump(),
        "alpha": hyper.lora_alpha,
        "target_modules": ",".join(hyper.target_modules),
    }
    run_dir = ws.root / run.run_dir
    lines = [
        f"run {run_id}: {run.stage} {run.method} on {run.dataset_id} -- {run.status}",
        f"  folder:   {run_dir}",
        f"  base:     {spec.base_model} at {spec.base_model_path}",
        f"  made:     {run.created_at} by {run.created_by}; started {run.started_at}"
        + (f", ended {run.finished_at}" if run.finished_at else ""),
        textwrap.fill(
            ", ".join(f"{key}={value}" for key, value in settings.items()),
            width=100,
            initial_indent="  settings: ",
            subsequent_indent=" " * 12,
        ),
        f"  progress: {_progress(run)}" + (f"  backend {run.backend}" if run.backend else ""),
    ]
    step = last_step(run_dir)
    if step is not None:
        lines.append(f"  last log: {step.model_dump_json(exclude_none=True)}")
    result = read_result(run_dir)
    if result is not None and result.effective:
        replaced = ", ".join(f"{key}: {value}" for key, value in result.effective.items())
        lines.append(f"  replaced: {replaced}")
    if run.adapter_name:
        gate = f"gate {run.gate}" if run.gate else "not gated"
        lines.append(f"  adapter:  {run.adapter_name} ({run.adapter_status}, {gate})")
    if run.reason:
        lines.append("  reason:   " + run.reason.replace("\n", "\n            "))
    click.echo("\n".join(lines))
