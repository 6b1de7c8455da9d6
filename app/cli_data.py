"""`cra data`: turn usable tasks and harness attempts into examples and pairs, and count them."""

from pathlib import Path
from typing import TYPE_CHECKING

import click

from app.cli_common import open_workspace
from app.output import echo_json

if TYPE_CHECKING:
    from engine.training_data.audit import AuditReport, StageAudit
    from engine.training_data.derive import BuildReport


def report_lines(report: "BuildReport") -> list[str]:
    """The build report as the CLI prints it: a few lines per package."""
    if not report.packages:
        return ["no approved packages"]
    lines = []
    for package in report.packages:
        pairs = ", ".join(f"{stage} {n}" for stage, n in sorted(package.pairs_added.items()))
        lines += [
            f"{package.label}: {package.tasks_derived} tasks derived, "
            f"{package.tasks_already_derived} derived before",
            f"  examples added: {package.examples_added}",
            f"  pairs added: {sum(package.pairs_added.values())}"
            + (f" ({pairs})" if pairs else ""),
            f"  already present: {package.already_present}",
        ]
        lines += [f"  skipped {label}: {n}" for label, n in sorted(package.skipped.items())]
    return lines


def audit_lines(report: "AuditReport") -> list[str]:
    """The audit as the CLI prints it: one block per stage."""
    if not report.stages:
        return ["no examples or pairs, and no derivation dropped any"]
    lines: list[str] = []
    for stage in report.stages:
        if lines:
            lines.append("")
        lines += _stage_lines(stage)
    return lines


def _stage_lines(stage: "StageAudit") -> list[str]:
    if not stage.items:
        head = [f"{stage.stage}: no items"]
        if stage.tokens.dropped_by_budget:
            head.append(f"  {stage.tokens.dropped_by_budget} dropped by the token budget")
        return head
    lines = [
        f"{stage.stage}: {stage.items} items, {stage.degenerate} degenerate "
        f"({_percent(stage.degenerate_rate)})",
        f"  sources: {_tally(stage.by_source)} · origins: {_tally(stage.by_origin)}",
        f"  repositories: {_tally(stage.by_repo)}",
    ]
    for name, counts in stage.shapes.items():
        spread = " ".join(f"{value}:{n}" for value, n in counts.items()) or "—"
        lines.append(f"  answers, {name} (value:items): {spread}")
    width = max(len(tally.rule) for tally in stage.rules)
    lines.append("  rules:")
    for tally in stage.rules:
        shown = f"  e.g. {', '.join(map(str, tally.examples))}" if tally.examples else ""
        lines.append(
            f"    {tally.rule:<{width}}  {tally.items:>6}  {_percent(tally.rate):>7}  "
            f"{tally.reason}{shown}"
        )
    tokens = stage.tokens
    lines.append(
        f"  tokens (prompt and answer): min {tokens.min} · median {tokens.median:g} · "
        f"p95 {tokens.p95} · max {tokens.max} · budget {tokens.budget} · "
        f"{tokens.over_budget} over it · {tokens.dropped_by_budget} dropped by derivation"
    )
    dups = stage.duplicates
    shown = f" (e.g. {', '.join(map(str, dups.examples))})" if dups.examples else ""
    lines.append(
        f"  duplicates: {dups.within_package} within a package, {dups.across_packages} across "
        f"packages{shown}; {dups.commits_in_several_packages} commits in several packages"
    )
    data = stage.personal_data
    found = [f"{name} {n}" for name, n in data.trailer_keys.items()]
    lines.append(
        f"  personal data: {data.items} items"
        + (f" (trailers: {', '.join(found)})" if found else "")
        + (f"; e-mail e.g. {', '.join(map(str, data.with_email))}" if data.with_email else "")
        + (f"; trailer e.g. {', '.join(map(str, data.with_trailer))}" if data.with_trailer else "")
    )
    return lines


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "—"


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
    with a manifest and lineage) for the outsourced run, LoRA Training Strategy §12.3."""
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


@data.command("audit")
@click.option("--stage", help="Audit this stage only (default: every stage with items).")
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
@click.pass_context
def audit(ctx: click.Context, stage: str | None, as_json: bool) -> None:
    """Per stage: counts by source and repository, answer shapes, the contract's degenerate
    rates, token lengths against the budget, duplicates and personal data in prompts."""
    from engine.training_data.audit import audit as audit_stages

    ws = open_workspace(ctx, write=False)
    report = audit_stages(ws, stage)
    if as_json:
        echo_json(report)
        return
    for line in audit_lines(report):
        click.echo(line)
