"""`cra review`: the spot-check of training items from the terminal (LoRA Training Strategy §7.2,
§9.3).

`sample` draws a seeded round of a stage's unreviewed items, `status` shows where each stage
stands and whether it may be curated, `show` lists a round's items and their decisions, `decide`
records a decision (and a note), `note` writes a note alone, `guidelines` prints what to accept,
reject and flip. The Review pane (key 3) does the same through the same engine calls.
"""

import json
import secrets

import click

from app.cli_common import open_workspace
from engine.core.stages import STAGES
from engine.core.workspace import Workspace
from engine.training_data.guidelines import guideline_text
from engine.training_data.review import DECISIONS, decide, draw_sample, round_summary, set_note
from engine.training_data.review_status import RoundItem, round_items, stage_statuses

DECISION_MARK = {"accept": "accept", "reject": "REJECT", "flip": "flip", "skip": "skip"}


def _workspace(ctx: click.Context, *, write: bool = True) -> Workspace:
    return open_workspace(ctx, write=write)


def fresh_seed() -> int:
    """A seed for a sample drawn without one; it is recorded with the round and printed."""
    return secrets.randbelow(2**31)


@click.group()
def review() -> None:
    """Spot-check training items per stage before a dataset is curated."""


@review.command("sample")
@click.option("--stage", required=True, type=click.Choice(STAGES), help="The stage to sample.")
@click.option(
    "--n", "n", type=int, help="Items to draw (default: [training_data] review_sample_size)."
)
@click.option("--seed", type=int, help="Seed of the draw (default: a fresh one, printed).")
@click.option("--operator", help="Who draws (default: the config's operator).")
@click.pass_context
def review_sample(
    ctx: click.Context, stage: str, n: int | None, seed: int | None, operator: str | None
) -> None:
    """Draw a new round of STAGE's unreviewed items, stratified by source and repo."""
    ws = _workspace(ctx)
    n = ws.config.training_data.review_sample_size if n is None else n
    seed = fresh_seed() if seed is None else seed
    round_id = draw_sample(ws, stage, n, seed, operator)
    summary = round_summary(ws.db, round_id)
    click.echo(
        f"round {round_id} of {stage}: {summary.total} items drawn with seed {seed}\n"
        f"decide them in the console (key 3) or with "
        f"`cra review decide {round_id} POSITION {'|'.join(DECISIONS)}`"
    )


@review.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON.")
@click.pass_context
def review_status(ctx: click.Context, as_json: bool) -> None:
    """Each stage's items, its newest round's progress and reject rate, and its gate."""
    statuses = stage_statuses(_workspace(ctx, write=False))
    if as_json:
        click.echo(json.dumps([s.model_dump() for s in statuses], indent=2))
        return
    click.echo(
        f"{'stage':<14} {'items':>9} {'pairs':>9} {'unreviewed':>10} {'round':>5} "
        f"{'decided':>9} {'rejected':>8}  gate"
    )
    for status in statuses:
        count, latest = status.count, status.latest
        progress = "—" if latest is None else f"{latest.decided}/{latest.total}"
        rate = "—" if latest is None or not latest.decided else f"{latest.reject_rate:.0%}"
        gate = "ok" if status.gate.ok else "blocked"
        click.echo(
            f"{status.stage:<14} {count.items:>9,} {count.pairs:>9,} {count.unreviewed:>10,} "
            f"{'—' if latest is None else latest.round_id:>5} {progress:>9} {rate:>8}  "
            f"{gate}: {status.gate.reason}"
        )


def _item_line(item: RoundItem) -> str:
    kind = "pair" if item.kind == "preference" else "sft"
    decision = DECISION_MARK[item.decision] if item.decision else "-"
    line = (
        f"{item.position:>4}  #{item.example_id:<8} {kind:<4}  {item.source}/{item.origin:<13} "
        f"{item.repo:<16} {item.task_key:<24} {decision}"
    )
    return f"{line}  note: {item.note}" if item.note else line


@review.command("show")
@click.argument("round_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the round as JSON.")
@click.pass_context
def review_show(ctx: click.Context, round_id: int, as_json: bool) -> None:
    """Round ROUND_ID's items, in drawing order, with their decisions."""
    summary, items = round_items(_workspace(ctx, write=False).db, round_id)
    if as_json:
        data = {"round": summary.model_dump(), "items": [item.model_dump() for item in items]}
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(
        f"round {summary.round_id} of {summary.stage}: seed {summary.seed}, drawn "
        f"{summary.drawn_at}; {summary.decided}/{summary.total} decided "
        f"({summary.accepted} accepted, {summary.rejected} rejected, {summary.flipped} flipped, "
        f"{summary.skipped} skipped)"
    )
    for item in items:
        click.echo(_item_line(item))


@review.command("decide")
@click.argument("round_id", type=int)
@click.argument("position", type=int)
@click.argument("decision", type=click.Choice(DECISIONS))
@click.option("--note", help="A note on the item (an empty one clears it).")
@click.option("--operator", help="Who decides (default: the config's operator).")
@click.pass_context
def review_decide(
    ctx: click.Context,
    round_id: int,
    position: int,
    decision: str,
    note: str | None,
    operator: str | None,
) -> None:
    """Record DECISION on item POSITION of round ROUND_ID."""
    ws = _workspace(ctx)
    decide(ws, round_id, position, decision, operator)
    if note is not None:
        set_note(ws, round_id, position, note)
    summary = round_summary(ws.db, round_id)
    click.echo(
        f"round {round_id}, item {position}: {decision} ({summary.decided}/{summary.total} decided)"
    )


@review.command("note")
@click.argument("round_id", type=int)
@click.argument("position", type=int)
@click.argument("text")
@click.pass_context
def review_note(ctx: click.Context, round_id: int, position: int, text: str) -> None:
    """Write TEXT as the note on item POSITION of round ROUND_ID (an empty TEXT clears it)."""
    set_note(_workspace(ctx), round_id, position, text)
    click.echo(f"round {round_id}, item {position}: note {'saved' if text.strip() else 'cleared'}")


@review.command("guidelines")
@click.option("--stage", required=True, type=click.Choice(STAGES), help="The stage.")
def review_guidelines(stage: str) -> None:
    """What to accept, reject, flip and skip when reviewing STAGE's items."""
    click.echo(guideline_text(stage))  # type: ignore[arg-type]
