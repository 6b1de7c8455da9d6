"""`cra train-plan`: assess every stage on the recorded outcomes and write a training plan."""

import json

import click

from app.cli_common import open_workspace
from engine.training_data.plan_model import DataCriteria, PlannedStage, TrainingPlan
from engine.training_data.train_plan import make_plan, verdict

# title, width, right-aligned
_COLUMNS = (
    ("stage", 14, False),
    ("metric", 16, False),
    ("value", 6, True),
    ("threshold", 9, True),
    ("samples", 7, True),
    ("verdict", 0, False),
)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _line(cells: list[str]) -> str:
    return "  ".join(
        cell.rjust(width) if right else cell.ljust(width)
        for cell, (_, width, right) in zip(cells, _COLUMNS, strict=True)
    ).rstrip()


def _assessment_lines(plan: TrainingPlan, min_samples: int) -> list[str]:
    """The assessment as a table: one line per metric of each stage."""
    lines = [_line([title for title, _, _ in _COLUMNS])]
    for assessment in plan.assessed:
        for metric in assessment.metrics:
            cells = [
                assessment.stage,
                metric.name,
                _number(metric.value),
                _number(metric.threshold),
                str(metric.samples),
                verdict(metric, min_samples),
            ]
            lines.append(_line(cells))
    return lines


def _target(data: DataCriteria) -> str:
    items = "pairs" if data.format == "preference" else "examples"
    if data.target_examples is None:
        return f"at least {data.min_examples:,} {items}"
    return f"{data.target_examples:,} {items} wanted"


def _planned_lines(position: int, planned: PlannedStage) -> list[str]:
    data, hp = planned.data, planned.hyperparameters
    return [
        f"  {position}. {planned.stage} ({planned.base_model} base): {hp.method.upper()} from "
        f"{', '.join(data.sources)}, {_target(data)}",
        f"     LoRA rank {hp.rank}, alpha {hp.alpha}, lr {hp.learning_rate:g} {hp.scheduler}, "
        f"{hp.epochs} epoch{'s' if hp.epochs > 1 else ''}, max length {hp.max_length:,}, "
        f"dropout {hp.dropout:g}",
        f"     {planned.expected_improvement}",
    ]


@click.command("train-plan")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and verdicts as JSON.")
@click.option("--operator", help="Who makes the plan (default: the config's operator).")
@click.pass_context
def train_plan(ctx: click.Context, as_json: bool, operator: str | None) -> None:
    """Judge every stage on harness attempts and logged runs; plan training for the weak ones."""
    ws = open_workspace(ctx)
    min_samples = ws.config.training_data.plan_min_samples
    plan_id, path, plan = make_plan(ws, operator)
    if as_json:
        verdicts = [
            {"stage": a.stage, "metric": m.name, "verdict": verdict(m, min_samples)}
            for a in plan.assessed
            for m in a.metrics
        ]
        document = {
            "id": plan_id,
            "path": str(path),
            "min_samples": min_samples,
            "base_model_name": ws.config.harness.openai.model,
            "verdicts": verdicts,
            "plan": plan.model_dump(mode="json"),
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(
        f"Base model: {ws.config.harness.openai.model} ([harness.openai] model); "
        f"a metric is judged from {min_samples} samples ([training_data] plan_min_samples)."
    )
    click.echo("\n".join(_assessment_lines(plan, min_samples)))
    click.echo("")
    if plan.stages:
        click.echo("Weak stages, largest gap first:")
        for position, planned in enumerate(plan.stages, 1):
            click.echo("\n".join(_planned_lines(position, planned)))
    elif any(verdict(m, min_samples) == "ok" for a in plan.assessed for m in a.metrics):
        click.echo("No stage is weak: every judged metric meets its threshold; nothing to train.")
    else:
        click.echo(
            "No stage is weak, but no metric could be judged yet: run a harness campaign with a "
            "planning pipeline (openai or command) to measure the stages."
        )
    if plan.retrain:
        click.echo("")
        click.echo("Trained on an older base than their role's current one, to retrain:")
        for item in plan.retrain:
            click.echo(f"  {item.name} ({item.status}): {item.reason}")
    click.echo(f"plan {plan_id}: {path}")
