"""`cra import-logs`: the agent's raw DB into the workspace, as logged runs, calls and examples."""

from pathlib import Path

import click

from app.cli_common import PathArg, open_workspace
from app.output import echo_json


@click.command("import-logs")
@click.argument("raw_db", type=PathArg())
@click.option("--operator", help="Who imports (default: the config's operator).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def import_logs_command(
    ctx: click.Context, raw_db: Path, operator: str | None, as_json: bool
) -> None:
    """Import RAW_DB, the agent's raw.sqlite (read-only): every run and call, and an SFT
    example for each stage call of a successful run."""
    from engine.training_data.logged import import_logs

    report = import_logs(open_workspace(ctx), raw_db, operator=operator)
    if as_json:
        echo_json(report)
        return
    click.echo(f"import {report.import_id}: {report.path} (sha256 {report.sha256[:12]})")
    click.echo(
        f"  {report.runs} runs ({report.successful_runs} successful, {report.decisions} "
        f"retrieval decisions in those), {report.calls} calls"
    )
    by_stage = ", ".join(f"{stage} {n}" for stage, n in report.added_by_stage.items())
    click.echo(
        f"  examples: {report.added} new{f' ({by_stage})' if by_stage else ''}, "
        f"{report.already} already held"
    )
    for reason, count in report.skipped.items():
        click.echo(f"  skipped {reason}: {count}")
