"""`cra curate-data` and `cra datasets`: make datasets from reviewed data, list and show them."""

import json
import sys

import click

from app.cli_common import open_workspace
from app.output import echo_json
from engine.core.stages import STAGES
from engine.core.workspace import Workspace
from engine.training_data.curate import KINDS, CurateReport, curate
from engine.training_data.dataset_files import (
    LINEAGE,
    ROW_FILES,
    list_datasets,
    open_dataset,
    read_verified,
)


def _workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    return open_workspace(ctx, write=write)


def _print_report(report: CurateReport) -> None:
    for done in report.curated:
        counts, replay = done.manifest.counts, done.manifest.replay
        click.echo(
            f"curated {done.id}: {counts.train} train ({counts.replay} replayed, "
            f"{replay.share:.0%} of train, target {replay.target_share:.0%}), "
            f"{counts.eval} eval -> {done.path}"
        )
        if done.target_examples is not None and counts.train < done.target_examples:
            click.echo(
                f"  note: below the plan's target of {done.target_examples:,} train rows "
                "(LoRA Training Strategy §7.2); a run on it is a small round"
            )
        click.echo(
            f"  {counts.candidates} candidates: {counts.excluded_by_review} rejected in review, "
            f"{counts.flipped_by_review} flipped, {counts.exact_duplicates} exact and "
            f"{counts.near_duplicates} near duplicates, {counts.dropped_for_balance} cut for "
            "domain balance"
        )
    for blocked in report.blocked:
        click.echo(f"blocked {blocked.stage} ({blocked.format}): {blocked.reason}")


@click.command("curate-data")
@click.option("--stage", type=click.Choice(STAGES), help="Curate this stage only.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(KINDS),
    help="sft or preference (default: preference for planning_dpo, sft otherwise).",
)
@click.option("--plan", "plan_ref", help="Follow this training plan (its id or file).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def curate_data(
    ctx: click.Context,
    stage: str | None,
    format_: str | None,
    plan_ref: str | None,
    as_json: bool,
) -> None:
    """Turn reviewed examples and pairs into datasets: dedup, holdout, balance, replay.

    Exits 1 when no dataset was made.
    """
    report = curate(_workspace(ctx), stage=stage, format=format_, plan_ref=plan_ref)
    if as_json:
        echo_json(report)
    else:
        _print_report(report)
    if not report.curated:
        sys.exit(1)


@click.group()
def datasets() -> None:
    """Curated datasets: list them, show one."""


@datasets.command("list")
@click.option("--stage", type=click.Choice(STAGES), help="Only this stage's datasets.")
@click.option("--json", "as_json", is_flag=True, help="Print the datasets as JSON.")
@click.pass_context
def datasets_list(ctx: click.Context, stage: str | None, as_json: bool) -> None:
    """List the datasets in the order they were made."""
    records = list_datasets(_workspace(ctx, write=False).db, stage)
    if as_json:
        click.echo(json.dumps([record.model_dump(mode="json") for record in records]))
        return
    if not records:
        click.echo("no datasets yet: `cra curate-data` makes them")
        return
    for record in records:
        click.echo(
            f"{record.id:<22} {record.format:<10} train {record.train_count:>6} "
            f"(replay {record.replay_count:>5})  eval {record.eval_count:>5}  "
            f"{record.created_at}  {record.created_by or ''}"
        )


@datasets.command("show")
@click.argument("dataset_id")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def datasets_show(ctx: click.Context, dataset_id: str, as_json: bool) -> None:
    """Show a dataset's manifest, after checking its files against it."""
    stored = open_dataset(_workspace(ctx, write=False), dataset_id)
    for name in (*ROW_FILES, LINEAGE):
        read_verified(stored, name)
    manifest = stored.manifest
    if as_json:
        echo_json(manifest)
        return
    counts, split, replay = manifest.counts, manifest.split, manifest.replay
    lines = [
        f"{manifest.id}: {manifest.stage} ({manifest.base_model} base), {manifest.format}",
        f"  folder:   {stored.path} (files match the manifest)",
        f"  made:     {manifest.created_at} by {manifest.created_by}"
        + (f", plan {manifest.plan_id}" if manifest.plan_id is not None else ""),
        f"  review:   round {manifest.review.round_id}: {manifest.review.reviewed} reviewed, "
        f"{manifest.review.rejected} rejected, {manifest.review.flipped} flipped",
        f"  rows:     {counts.train} train ({counts.replay} replayed), {counts.eval} eval, "
        f"from {counts.candidates} candidates",
        f"  dropped:  {counts.excluded_by_review} rejected, {counts.exact_duplicates} exact and "
        f"{counts.near_duplicates} near duplicates, {counts.dropped_for_balance} for balance",
        f"  split:    {split.rule}, eval share {split.eval_share:g}, cutoff {split.cutoff}, "
        f"eval repos {', '.join(split.eval_repos) or 'none'}; "
        f"{split.train_tasks} train tasks, {split.eval_tasks} eval tasks",
        f"  replay:   {replay.share:.1%} (target {replay.target_share:.0%}) from "
        f"{', '.join(replay.parents) or 'no earlier dataset'}",
    ]
    for side in ("train", "eval"):
        domains = ", ".join(f"{name} {n}" for name, n in manifest.domains[side].items())
        lines.append(f"  {side + ' domains:':<15} {domains or 'none'}")
    click.echo("\n".join(lines))
