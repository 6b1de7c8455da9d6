"""`cra doctor`: whether this machine is ready for a night, one line per check."""

import click

from app.cli_common import open_workspace


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the machine before a night: sandbox, GPU, the GPU set's pins, disk, database, bases.

    Each check prints ok, warn or fail; the exit status is 1 when any check fails. Nothing is
    changed."""
    from engine.core.errors import CraError
    from engine.core.terminal_text import neutralise
    from engine.reports.doctor import checks_json, run_checks

    checks = run_checks(open_workspace(ctx, write=False))
    if as_json:
        click.echo(checks_json(checks))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            click.echo(f"{check.status:<5} {check.name:<{width}}  {neutralise(check.detail)}")
    failed = [check.name for check in checks if check.status == "fail"]
    if failed:
        raise CraError(f"not ready: {', '.join(failed)} failed")
