"""`cra eval set`: build and list the frozen eval set versions each LoRA stage is scored on."""

import click

from app.cli_common import open_workspace
from engine.core.stages import LORA_STAGES
from engine.evaluation.eval_set import build_eval_set, list_eval_sets


@click.group("set")
def eval_set_group() -> None:
    """Frozen eval sets: a stage's newest held-out tasks, versioned by content hash."""


@eval_set_group.command("build")
@click.option("--stage", required=True, type=click.Choice(LORA_STAGES))
@click.option("--operator", help="Who builds it (default: the config's operator).")
@click.pass_context
def eval_set_build(ctx: click.Context, stage: str, operator: str | None) -> None:
    """Freeze STAGE's newest held-out tasks as a new version (nothing new when unchanged)."""
    click.echo(build_eval_set(open_workspace(ctx), stage, operator).line())


@eval_set_group.command("list")
@click.option("--stage", type=click.Choice(LORA_STAGES), help="Only this stage's versions.")
@click.pass_context
def eval_set_list(ctx: click.Context, stage: str | None) -> None:
    """Every eval set version, oldest first; eval runs score each stage's newest."""
    sets = list_eval_sets(open_workspace(ctx, write=False), stage)
    if not sets:
        click.echo("no eval sets yet: `cra eval set build --stage STAGE` builds one")
        return
    for eval_set in sets:
        click.echo(f"{eval_set.created_at}  {eval_set.summary()}")
