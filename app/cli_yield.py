"""`cra harness yield PACKAGE`: the package's kept commits → validated → usable, by planning type
and by how each was validated (the Harness pane shows the same totals). Engine modules are
imported on use, so `cra --help` does not load them.
"""

import click

from app.cli_common import open_workspace


@click.command("yield")
@click.argument("package")
@click.option("--json", "as_json", is_flag=True, help="Print the yield as JSON.")
@click.pass_context
def harness_yield(ctx: click.Context, package: str, as_json: bool) -> None:
    """The yield of the approved PACKAGE (a name or a digest prefix)."""
    from app.output import echo_json
    from engine.harness.package import find_package
    from engine.harness.task_yield import package_yield, reasons_line, yield_lines, yield_summary

    ws = open_workspace(ctx, write=False)
    found = package_yield(ws, find_package(ws, package).digest)
    if as_json:
        echo_json(found.model_dump(mode="json"))
        return
    click.echo(f"{found.name} {found.digest[:12]}: {yield_summary(found)}")
    for line in yield_lines(found):
        click.echo(f"  {line}")
    if (reasons := reasons_line(found)) is not None:
        click.echo(f"  {reasons}")
