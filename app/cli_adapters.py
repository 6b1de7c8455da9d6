"""`cra adapters`: list versions, promote, roll back, reject, and name what serves a stage.

Switching, watches and lineage are imported by the commands that use them: the watches load
evaluation and curation, which listing versions does not need.
"""

import json
from pathlib import Path

import click

from app.cli_common import PathArg, open_workspace
from engine.adapters.activation import (
    ActivationError,
    active_row,
    export_metadata,
    history,
    list_versions,
    reject,
    resolve_with_reason,
    trained_on,
    unservable,
)
from engine.core.stages import STAGES
from engine.core.workspace import Workspace


def _workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    return open_workspace(ctx, write=write)


@click.group()
def adapters() -> None:
    """Adapter versions: which one serves each stage, and switching it."""


@adapters.command("list")
@click.option("--stage", type=click.Choice(STAGES), help="Only this stage's versions.")
@click.pass_context
def adapters_list(ctx: click.Context, stage: str | None) -> None:
    """Every version with its status, base and rank."""
    rows = list_versions(_workspace(ctx, write=False), stage)
    if not rows:
        click.echo("no adapter versions yet: a finished training run registers one")
        return
    ws = _workspace(ctx, write=False)
    for row in rows:
        reason = unservable(ws, row)
        click.echo(
            f"{row.name:<20} {row.status:<9} {trained_on(ws, row):<22} "
            f"rank {row.rank}  {row.created_at}  {row.path}"
            + ("" if reason is None else f"\n{'':<20} unservable: {reason}")
        )


@adapters.command("promote")
@click.argument("name")
@click.option("--reason", default="", help="Why it goes live (required with --override).")
@click.option(
    "--override",
    is_flag=True,
    help="Promote over a 'no gain' or 'underpowered' gate decision (never a rejection).",
)
@click.option("--operator", help="Who promotes (default: the config's operator).")
@click.pass_context
def adapters_promote(
    ctx: click.Context, name: str, reason: str, override: bool, operator: str | None
) -> None:
    """Make version NAME its stage's active one: gate and files checked, loaded on the server.
    Only a gate pass is promoted unless --override is given with a --reason."""
    from engine.promotion.switch import promote_version

    result = promote_version(
        _workspace(ctx), name, operator=operator, reason=reason, override=override
    )
    click.echo(f"{name}: active for {result.stage}\nserver: {result.server}\nwatch: {result.watch}")


@adapters.command("rollback")
@click.argument("stage", type=click.Choice(STAGES))
@click.option(
    "--from",
    "withdraw",
    metavar="NAME",
    help="The active version you withdraw (required: refused if another serves now).",
)
@click.option("--reason", default="", help="Why the active version is withdrawn.")
@click.option("--operator", help="Who rolls back (default: the config's operator).")
@click.pass_context
def adapters_rollback(
    ctx: click.Context, stage: str, withdraw: str | None, reason: str, operator: str | None
) -> None:
    """Withdraw STAGE's active version (--from NAME): the one before it serves again (the base
    after the first)."""
    from engine.promotion.switch import rollback_stage

    ws = _workspace(ctx)
    if withdraw is None:
        active = active_row(ws, stage)
        now = "no version is active" if active is None else f"{active.name} is active now"
        raise ActivationError(
            f"{stage}: name the version you withdraw with --from NAME ({now}); a rollback "
            "never withdraws a version its operator did not name"
        )
    result = rollback_stage(ws, stage, withdraw, operator=operator, reason=reason)
    click.echo(f"{stage}: rolled back to {result.active}\nserver: {result.server}")


@adapters.command("watch")
@click.argument("watch_id", type=int, required=False)
@click.pass_context
def adapters_watch(ctx: click.Context, watch_id: int | None) -> None:
    """The end-to-end watches after promotions, newest first, one line each; with WATCH_ID,
    that watch and every task its two measurements disagree on."""
    from engine.promotion.watch import list_watches, reconcile_watches, watch_detail, watch_line

    ws = _workspace(ctx, write=False)
    reconcile_watches(ws)
    if watch_id is not None:
        for line in watch_detail(ws, watch_id):
            click.echo(line)
        return
    rows = list_watches(ws)
    if not rows:
        click.echo("no watches yet: promoting a planning_dpo or execute_code version starts one")
        return
    for row in rows:
        click.echo(watch_line(ws, row))


@adapters.command("trace")
@click.argument("name")
@click.pass_context
def adapters_trace(ctx: click.Context, name: str) -> None:
    """Version NAME's lineage: run, dataset, examples, attempts, commits, packages and hashes."""
    from engine.adapters.lineage import trace_lines

    for line in trace_lines(_workspace(ctx, write=False), name):
        click.echo(line)


@adapters.command("reconcile")
@click.pass_context
def adapters_reconcile(ctx: click.Context) -> None:
    """Settle promotions and rollbacks whose process died mid-way."""
    from engine.promotion.switch import reconcile_intents

    lines = reconcile_intents(_workspace(ctx))
    for line in lines or ["nothing to reconcile: no switch was interrupted"]:
        click.echo(line)


@adapters.command("reject")
@click.argument("name")
@click.option("--reason", required=True, help="Why the candidate is rejected.")
@click.option("--operator", help="Who rejects (default: the config's operator).")
@click.pass_context
def adapters_reject(ctx: click.Context, name: str, reason: str, operator: str | None) -> None:
    """Mark candidate NAME rejected; it is kept on disk and never promoted."""
    reject(_workspace(ctx), name, reason, operator=operator)
    click.echo(f"{name}: rejected ({reason})")


@adapters.command("resolve")
@click.argument("stage", type=click.Choice(STAGES))
@click.pass_context
def adapters_resolve(ctx: click.Context, stage: str) -> None:
    """The model name requests for STAGE use: the active version, else the base kind.

    An active version trained on an older base than its role's current one never serves: the
    base kind is printed, and why on stderr."""
    model, reason = resolve_with_reason(_workspace(ctx, write=False), stage)
    click.echo(model)
    if reason is not None:
        click.echo(f"note: {reason}", err=True)


@adapters.command("export")
@click.option("--out", type=PathArg(dir_okay=False), help="Write to FILE.")
@click.pass_context
def adapters_export(ctx: click.Context, out: Path | None) -> None:
    """Every version as the agent's `adapter_metadata` rows, in JSON."""
    text = json.dumps(export_metadata(_workspace(ctx, write=False)), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{out}: cannot write: {exc}") from exc
    click.echo(f"wrote {out}")


@adapters.command("history")
@click.argument("stage", type=click.Choice(STAGES))
@click.pass_context
def adapters_history(ctx: click.Context, stage: str) -> None:
    """STAGE's promotions, rollbacks and rejections, oldest first."""
    records = history(_workspace(ctx, write=False), stage)
    if not records:
        click.echo(f"{stage}: no activation records yet")
        return
    for rec in records:
        moved = f"{rec.from_name or '-'} -> {rec.to_name or '-'}"
        why = f"  ({rec.reason})" if rec.reason else ""
        if rec.override:
            why = f"  over its '{rec.override}' gate decision{why}"
        click.echo(f"{rec.at}  {rec.action:<8} {moved:<30} {rec.operator}{why}")
