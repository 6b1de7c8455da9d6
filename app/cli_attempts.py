"""`cra harness attempts` and `cra harness attempt ID`: what the Harness pane shows of attempts.

The list has the pane's columns (id, package, commit, temperature, seed, state, outcome, F2P,
time, file recall, reason); one attempt prints the drill-down's heading, its plan and each
artifact (the diff, the test output, the raw response, report.json), or why one is missing.
Engine modules are imported on use, so `cra --help` does not load them.
"""

import click

from app.cli_common import open_workspace

HEADER = ("id", "package", "commit", "temp", "seed", "state", "outcome", "f2p", "time", "recall")


def _num(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{format(value, spec)}{unit}"


def _count(passed: int | None, total: int | None) -> str:
    return "—" if total is None else f"{passed}/{total}"


@click.command("attempts")
@click.option("--campaign", "campaign_id", type=int, help="The campaign (default: the newest).")
@click.option("--json", "as_json", is_flag=True, help="Print the attempts as JSON.")
@click.pass_context
def attempts(ctx: click.Context, campaign_id: int | None, as_json: bool) -> None:
    """A campaign's attempts, in id order, with the Harness pane's columns."""
    from app.output import echo_json
    from engine.core.timestamps import duration_text
    from engine.harness.campaigns import campaign_row
    from engine.harness.package import HarnessError
    from engine.harness.progress import attempt_count, attempt_page

    ws = open_workspace(ctx, write=False)
    if campaign_id is None:
        newest = ws.db.execute("SELECT MAX(id) FROM campaigns").fetchone()[0]
        if newest is None:
            raise HarnessError("there is no campaign yet: `cra harness run PACKAGE` starts one")
        campaign_id = newest
    campaign_row(ws, campaign_id)
    count = attempt_count(ws, campaign_id)
    rows = attempt_page(ws, campaign_id, 0, count) if count else []
    if as_json:
        echo_json([row.model_dump() for row in rows])
        return
    click.echo(f"campaign {campaign_id}: {count} attempts")
    widths = (7, 14, 12, 4, 4, 7, 8, 7, 7, 6)
    click.echo(" ".join(title.ljust(width) for title, width in zip(HEADER, widths, strict=True)))
    for row in rows:
        values = (
            str(row.id),
            row.package_name or "?",
            row.sha[:12],
            _num(row.temperature, "g"),
            _num(row.seed, "d"),
            row.state,
            row.outcome or "",
            _count(row.f2p_passed, row.f2p_total),
            duration_text(row.duration_s),
            _num(row.file_recall, ".2f"),
        )
        cells = " ".join(value.ljust(width) for value, width in zip(values, widths, strict=True))
        click.echo(f"{cells} {(row.reason or '').replace(chr(10), ' ')}".rstrip())


@click.command("attempt")
@click.argument("attempt_id", type=int)
@click.pass_context
def attempt(ctx: click.Context, attempt_id: int) -> None:
    """One attempt: its task, outcome and scores, its plan, and its artifacts."""
    from engine.harness.progress import ALIGNMENT_KEYS, attempt_detail

    detail = attempt_detail(open_workspace(ctx, write=False), attempt_id)
    row = detail.row
    package = row["package_name"] or row["package_digest"][:12]
    click.echo(
        f"Attempt {row['id']} · task {row['task']} · {package} @ {row['sha'][:12]} · "
        f"{row['pipeline']} / {row['model']}"
    )
    click.echo(f"{row['outcome'] or row['state']} — {row['reason'] or 'no reason recorded'}")
    tokens = (
        "—"
        if row["prompt_tokens"] is None or row["completion_tokens"] is None
        else f"{row['prompt_tokens']:,} prompt + {row['completion_tokens']:,} completion"
    )
    f2p = _count(row["f2p_passed"], row["f2p_total"])
    p2p = _count(row["p2p_passed"], row["p2p_total"])
    click.echo(
        f"temperature {_num(row['temperature'], 'g')} · seed {row['seed']} · tokens {tokens} · "
        f"{_num(row['duration_s'], '.1f', 's')} total, "
        f"{_num(row['test_duration_s'], '.1f', 's')} tests · F2P {f2p} · P2P {p2p}"
    )
    scores = detail.alignment
    click.echo(
        "alignment "
        + " · ".join(
            f"{key.replace('_', ' ')} {_num(scores[key], '.2f')}" for key in ALIGNMENT_KEYS
        )
    )
    click.echo("\n── plan")
    if detail.plan is not None:
        click.echo(detail.plan.summary)
        for part in detail.plan.parts:
            after = f"  after {', '.join(part.depends_on)}" if part.depends_on else ""
            click.echo(f"\n[{part.id}] {part.title}{after}")
            for number, step in enumerate(part.steps, start=1):
                symbols = f"  {', '.join(step.symbols)}" if step.symbols else ""
                click.echo(f"  {number}. {step.description}\n     {step.file}{symbols}")
    else:
        click.echo(detail.plan_error or "No plan recorded for this attempt.")
    for name, artifact in detail.artifacts.items():
        click.echo(f"\n── {name}" + (f" ({artifact.path})" if artifact.path else ""))
        if artifact.text is None:
            click.echo(artifact.missing or f"{name}: nothing to show")
            continue
        click.echo(artifact.text.rstrip("\n"))
        if artifact.truncated:
            click.echo(f"… cut at the first part of {artifact.size:,} bytes")
