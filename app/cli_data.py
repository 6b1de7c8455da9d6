"""`cra data`: turn usable tasks and harness attempts into examples and pairs, and count them."""

from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli_common import open_workspace
from app.output import echo_json

if TYPE_CHECKING:
    from engine.training_data.derive import BuildReport


def report_lines(report: "BuildReport") -> list[str]:
    """The build report as the CLI prints it: a few lines per package."""
    if not report.packages:
        return ["no approved packages"]
    lines = []
    for package in report.packages:
        pairs = ", ".join(f"{stage} {n}" for stage, n in sorted(package.pairs_added.items()))
        lines += [
            f"{package.name} ({package.digest[:12]}): {package.tasks_derived} tasks derived, "
            f"{package.tasks_already_derived} derived before",
            f"  examples added: {package.examples_added}",
            f"  pairs added: {sum(package.pairs_added.values())}"
            + (f" ({pairs})" if pairs else ""),
            f"  already present: {package.already_present}",
        ]
        lines += [f"  skipped {label}: {n}" for label, n in sorted(package.skipped.items())]
    return lines


@click.group("data")
def data() -> None:
    """Training examples and preference pairs in the workspace database."""


@data.command("build")
@click.option(
    "--package",
    "packages",
    multiple=True,
    help="An approved package, by name or digest prefix (repeatable; default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def build(ctx: click.Context, packages: tuple[str, ...], as_json: bool) -> None:
    """Derive every usable task not yet derived (synthetic examples and CodeFavor pairs) and
    the harness attempts' preference pairs; what is already held is not added again."""
    from engine.training_data.derive import build_training_data

    ws = open_workspace(ctx)
    report = build_training_data(ws, list(packages) or None)
    if as_json:
        echo_json(report)
        return
    for line in report_lines(report):
        click.echo(line)


@data.command("stats")
@click.pass_context
def stats(ctx: click.Context) -> None:
    """How many examples and pairs the database holds, by stage, kind and source."""
    ws = open_workspace(ctx, write=False)
    rows = ws.db.execute(
        "SELECT stage, kind, source, COUNT(*) FROM examples GROUP BY stage, kind, source "
        "ORDER BY stage, kind, source"
    ).fetchall()
    if not rows:
        click.echo("no examples or pairs")
        return
    click.echo(f"{'stage':<14}  {'kind':<10}  {'source':<9}  {'count':>6}")
    for stage, kind, source, count in rows:
        click.echo(f"{stage:<14}  {kind:<10}  {source:<9}  {count:>6}")
    click.echo(f"{'total':<14}  {'':<10}  {'':<9}  {sum(row[3] for row in rows):>6}")


@data.command("export-base")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["reasoning", "coding"]),
    help="The base whose full fine-tune data to export.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="A new folder to write (its parent must exist).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the export's manifest as JSON.")
@click.pass_context
def export_base_command(ctx: click.Context, role: str, out: Path, as_json: bool) -> None:
    """Write the base's full fine-tune data (the reviewed planning examples, chat-format JSONL
    with a manifest and lineage) for the outsourced run, seed 004 §12.3."""
    from engine.training_data.base_export import export_base

    export = export_base(open_workspace(ctx), role, out)
    if as_json:
        echo_json(export)
        return
    manifest = export.manifest
    click.echo(
        f"exported {export.id} to {export.path}: {manifest.files['train.jsonl'].rows} train, "
        f"{manifest.files['eval.jsonl'].rows} eval rows"
    )
    for stage, counts in manifest.stages.items():
        click.echo(
            f"  {stage}: {counts.train} train, {counts.eval} eval (review round "
            f"{counts.review_round_id}; {counts.excluded_by_review} rejected, "
            f"{counts.exact_duplicates + counts.near_duplicates} duplicates left out)"
        )
