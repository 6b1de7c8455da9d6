"""`cra train-plan` over a real workspace database filled with attempts, logged runs and items.

Attempts are rows as the harness leaves them (state, outcome, pipeline, model, alignment, plan);
logged runs and calls as `cra import-logs` records them; items through `add_items`.
"""

import json
from itertools import count
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.cli_train_plan import train_plan
from engine.core.stages import LORA_STAGES
from engine.core.workspace import Workspace
from engine.training_data.items import Message, TrainingItem
from engine.training_data.plan_model import StageAssessment, StageMetric
from engine.training_data.plans import load_plan
from engine.training_data.store import add_items
from engine.training_data.train_plan import assess, latest_plan, make_plan, verdict

if "train-plan" not in cli.commands:
    cli.add_command(train_plan)

PLAN = json.dumps({"summary": "s", "parts": [{"id": "p", "title": "t", "steps": []}]})
_sha = count(1)


def open_workspace(root: Path, config: str = "") -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cra.toml").write_text(config, encoding="utf-8")
    return Workspace.open(root)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """Base model `qwen3-4b`; metrics judged from 4 samples."""
    config = '[harness.openai]\nmodel = "qwen3-4b"\n[training_data]\nplan_min_samples = 4\n'
    return open_workspace(tmp_path / "workspace", config)


def campaign(ws: Workspace) -> int:
    with ws.db.conn:
        return int(
            ws.db["campaigns"]
            .insert({"created_at": "2026-01-01T00:00:00Z", "spec_json": "{}", "status": "done"})
            .last_pk
        )


def attempts(
    ws: Workspace,
    model: str,
    outcomes: list[str],
    *,
    pipeline: str = "openai",
    state: str = "done",
    plan: str | None = PLAN,
    **alignment: float | None,
) -> None:
    """One attempt per outcome, each with the same alignment figures."""
    campaign_id = campaign(ws)
    rows = [
        {
            "campaign_id": campaign_id,
            "package_digest": "d" * 64,
            "sha": f"{next(_sha):040x}",
            "pipeline": pipeline,
            "model": model,
            "temperature": 0.3,
            "seed": 1,
            "state": state,
            "outcome": outcome,
            "plan_json": plan,
            **alignment,
        }
        for outcome in outcomes
    ]
    with ws.db.conn:
        ws.db["attempts"].insert_all(rows)


def logged(ws: Workspace, runs: dict[str, tuple[int | None, list[str]]]) -> None:
    """Logged runs by task id: (success, call types made)."""
    with ws.db.conn:
        import_id = (
            ws.db["log_imports"]
            .insert({"path": "raw.sqlite", "sha256": "0" * 64, "imported_at": "2026-01-01"})
            .last_pk
        )
        for task_id, (success, calls) in runs.items():
            ws.db["logged_runs"].insert(
                {"task_id": task_id, "import_id": import_id, "success": success}
            )
            for call_type in calls:
                ws.db["logged_calls"].insert(
                    {"task_id": task_id, "import_id": import_id, "call_type": call_type}
                )


def item(stage: str, kind: str, source: str, key: str) -> TrainingItem:
    return TrainingItem(
        stage=stage,
        kind=kind,
        source=source,
        origin={"synthetic": "commit", "harness": "harness_code", "logged": "logged_call"}[source],
        repo="textkit",
        domain="text",
        task_key=key,
        task_date="2026-01-02T03:04:05Z",
        prompt=[Message(role="user", content=f"task {key}")],
        chosen=[Message(role="assistant", content=f"answer {key}")],
        rejected=[Message(role="assistant", content="worse")] if kind == "preference" else None,
    )


def by_stage(assessed: list[StageAssessment]) -> dict[str, StageAssessment]:
    return {a.stage: a for a in assessed}


def metric(assessment: StageAssessment, name: str) -> StageMetric:
    return next(m for m in assessment.metrics if m.name == name)


def test_retrieval_stages_are_judged_on_alignment_and_ranked_by_gap(ws: Workspace) -> None:
    attempts(
        ws,
        "scope-v1",
        ["resolved", "failed", "partial", "error"],
        file_recall=0.5,
        file_precision=0.9,
        symbol_recall=0.7,
        order_agreement=1.0,
    )
    # Left out: gold attempts, attempts without a plan, attempts still running.
    perfect = dict(file_recall=1.0, file_precision=1.0, symbol_recall=1.0)
    attempts(ws, "gold", ["resolved"] * 6, pipeline="gold", **perfect)
    attempts(ws, "scope-v1", ["failed"] * 6, plan=None)
    attempts(ws, "scope-v1", [None] * 6, state="running", **perfect)

    stages = by_stage(assess(ws))

    recall = metric(stages["task_analysis"], "file_recall")
    assert (recall.value, recall.threshold, recall.samples) == (0.5, 0.8, 4)
    assert verdict(recall, 4) == "weak"
    assert verdict(metric(stages["task_analysis"], "file_precision"), 4) == "ok"
    assert metric(stages["scope"], "relevant_recall").threshold == 0.85
    assert metric(stages["precision"], "primary_recall").value == pytest.approx(0.7)
    accuracy = metric(stages["scope"], "accuracy")
    assert (accuracy.value, accuracy.threshold, verdict(accuracy, 4)) == (
        None,
        0.75,
        "not measured",
    )
    assert [a.stage for a in stages.values() if a.weak] == ["task_analysis", "scope", "precision"]
    assert stages["task_analysis"].reason.startswith("file_recall 0.50 over 4 attempts, below 0.80")

    plan = make_plan(ws)[2]
    # Gaps: scope 0.35, task_analysis 0.30, precision 0.10.
    assert [p.stage for p in plan.stages] == ["scope", "task_analysis", "precision"]


def test_a_metric_with_too_few_samples_is_not_judged(ws: Workspace) -> None:
    attempts(ws, "scope-v1", ["failed"] * 3, file_recall=0.1, file_precision=0.1)
    stages = by_stage(assess(ws))
    recall = metric(stages["task_analysis"], "file_recall")
    assert (recall.samples, verdict(recall, 4)) == (3, "few samples")
    assert not stages["task_analysis"].weak
    assert "fewer than 4: not judged" in stages["task_analysis"].reason
    assert make_plan(ws)[2].stages == []

    attempts(ws, "scope-v1", ["failed"], file_recall=0.1, file_precision=0.1)
    assert by_stage(assess(ws))["task_analysis"].weak


def test_outcome_metrics_are_judged_against_the_base_models(ws: Workspace) -> None:
    attempts(ws, "qwen3-4b", ["resolved"] * 3 + ["failed"] * 2, order_agreement=0.5)
    attempts(ws, "student", ["resolved"] + ["failed"] * 3 + ["error"], order_agreement=0.75)

    stages = by_stage(assess(ws))

    pass1 = metric(stages["execute_code"], "pass@1")
    assert (pass1.value, pass1.threshold, pass1.samples) == (0.2, 0.6, 5)
    assert pass1.gap == pytest.approx(0.4)
    assert metric(stages["planning_dpo"], "resolved_rate").threshold == 0.6
    assert stages["planning_dpo"].weak
    assert "below the base model's 0.60" in stages["execute_code"].reason
    assert set(stages) == set(LORA_STAGES)


def test_without_enough_base_attempts_an_outcome_metric_has_no_threshold(ws: Workspace) -> None:
    attempts(ws, "qwen3-4b", ["resolved"] * 6)
    only_base = metric(by_stage(assess(ws))["execute_code"], "pass@1")
    assert (only_base.value, only_base.threshold, verdict(only_base, 4)) == (1.0, None, "no bar")

    attempts(ws, "student", ["failed"] * 5)
    stages = by_stage(assess(ws))
    assert metric(stages["execute_code"], "pass@1").threshold == 1.0
    assert stages["execute_code"].weak


def test_few_base_attempts_are_no_threshold(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "w", '[harness.openai]\nmodel = "qwen3-4b"\n')
    attempts(ws, "qwen3-4b", ["resolved"] * 9)
    attempts(ws, "student", ["failed"] * 10)
    stage = by_stage(assess(ws))["execute_code"]
    assert metric(stage, "pass@1").threshold is None
    assert not stage.weak
    assert "the base model (qwen3-4b) has 9 attempts, fewer than 10" in stage.reason


def test_logged_run_success_per_stage_is_information(ws: Workspace) -> None:
    logged(
        ws,
        {
            "t1:meta_plan": (1, ["task_analysis", "scope", "execute_plan"]),
            "t2:meta_plan": (0, ["execute_plan"]),
            "t1:part_plan:p1": (0, ["execute_plan"]),
            "t1:test_plan:p1": (1, ["execute_plan"]),
            "t1:impl:p1:s1": (0, ["execute_implement"]),
            "t3:meta_plan": (None, ["execute_plan"]),  # not finalised
            "t4": (1, ["assembly_refilter"]),  # no call of any stage
        },
    )
    stages = by_stage(assess(ws))

    def success(stage: str) -> tuple[float | None, int]:
        found = metric(stages[stage], "run_success")
        assert (found.source, found.threshold) == ("logged", None)
        return found.value, found.samples

    assert success("task_analysis") == (1.0, 1)
    assert success("execute_code") == (0.0, 1)
    assert success("precision") == (None, 0)
    assert "run_success" not in [m.name for m in stages["planning_dpo"].metrics]
    assert not any(a.weak for a in stages.values())


def test_planned_stages_name_data_and_hyperparameters(ws: Workspace) -> None:
    attempts(ws, "qwen3-4b", ["resolved"] * 4)
    attempts(ws, "student", ["failed"] * 4, file_recall=0.9, file_precision=0.2)
    add_items(
        ws.db,
        [
            item("task_analysis", "sft", "synthetic", "a"),
            item("task_analysis", "sft", "synthetic", "b"),
            item("task_analysis", "sft", "logged", "c"),
            item("execute_code", "sft", "synthetic", "d"),
            item("execute_code", "preference", "harness", "e"),
            item("planning_dpo", "preference", "harness", "f"),
            item("planning_dpo", "sft", "synthetic", "g"),  # wrong format for the stage
        ],
    )

    plan_id, path, plan = make_plan(ws, operator="night-shift")

    planned = {(p.stage, p.data.format): p for p in plan.stages}
    assert set(planned) == {
        ("task_analysis", "sft"),
        ("execute_code", "sft"),
        ("execute_code", "preference"),
        ("planning_dpo", "preference"),
    }
    analysis = planned[("task_analysis", "sft")]
    assert analysis.base_model == "reasoning"
    assert analysis.data.sources == ["synthetic", "logged"]
    assert analysis.data.target_examples == 3000
    hp = analysis.hyperparameters
    assert (hp.method, hp.rank, hp.alpha, hp.learning_rate, hp.scheduler, hp.dropout) == (
        "sft",
        16,
        32,
        2e-4,
        "cosine",
        0.0,
    )
    assert (hp.epochs, hp.max_length) == (2, 8192)
    assert analysis.expected_improvement == (
        "file_precision 0.20 → 0.60 (gap 0.40); 3 examples available (synthetic 2, logged 1), "
        "2,997 short of 3,000"
    )
    code_dpo = planned[("execute_code", "preference")]
    assert code_dpo.base_model == "coding"
    assert (code_dpo.hyperparameters.method, code_dpo.hyperparameters.rank) == ("dpo", 32)
    assert code_dpo.hyperparameters.alpha == 64 and code_dpo.hyperparameters.epochs == 1
    assert code_dpo.data.sources == ["harness"] and code_dpo.data.target_examples == 1000
    assert planned[("execute_code", "sft")].data.target_examples == 10000
    dpo = planned[("planning_dpo", "preference")]
    assert dpo.data.sources == ["harness"] and dpo.hyperparameters.max_length == 32768
    # Outcome gaps (1.0) before task_analysis's (0.40); the DPO run right after the SFT run.
    assert [p.stage for p in plan.stages][0] == "planning_dpo"
    assert [p.stage for p in plan.stages][-1] == "task_analysis"
    codes = [i for i, p in enumerate(plan.stages) if p.stage == "execute_code"]
    assert plan.stages[codes[0]].data.format == "sft" and codes[1] == codes[0] + 1

    assert plan.created_by == "night-shift"
    assert path == ws.plans_dir / f"plan-{plan_id}.json"
    assert load_plan(ws, str(plan_id)) == (plan_id, plan)
    assert load_plan(ws, str(path)) == (plan_id, plan)
    assert latest_plan(ws) == (plan_id, plan)


def test_no_weak_stage_is_an_empty_plan_not_an_error(ws: Workspace) -> None:
    assert latest_plan(ws) is None
    attempts(ws, "student", ["resolved"] * 4, file_recall=0.9, file_precision=0.9)
    plan_id, _, plan = make_plan(ws)
    assert plan.stages == [] and len(plan.assessed) == len(LORA_STAGES)
    assert latest_plan(ws) == (plan_id, plan)


def invoke(ws: Workspace, *args: str):
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "train-plan", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_prints_the_assessment_the_plan_and_its_file(ws: Workspace) -> None:
    attempts(ws, "student", ["failed"] * 4, file_recall=0.25, file_precision=0.9)
    output = invoke(ws)
    lines = output.splitlines()
    assert lines[1].split() == ["stage", "metric", "value", "threshold", "samples", "verdict"]
    assert "task_analysis   file_recall         0.25       0.80        4  weak" in lines
    assert "scope           accuracy               —       0.75        0  not measured" in lines
    assert "Weak stages, largest gap first:" in lines
    assert lines[lines.index("Weak stages, largest gap first:") + 1].startswith(
        "  1. scope (reasoning base): SFT from synthetic, harness, logged, 2,000 examples wanted"
    )
    assert lines[-1] == f"plan 1: {ws.plans_dir / 'plan-1.json'}"
    assert load_plan(ws, "1")[1].stages[0].stage == "scope"


def test_cli_json(ws: Workspace) -> None:
    attempts(ws, "student", ["failed"] * 4, file_recall=0.25, file_precision=0.9)
    document = json.loads(invoke(ws, "--json"))
    assert document["id"] == 1 and document["min_samples"] == 4
    assert document["base_model_name"] == "qwen3-4b"
    assert {"stage": "scope", "metric": "relevant_recall", "verdict": "weak"} in document[
        "verdicts"
    ]
    assert [s["stage"] for s in document["plan"]["stages"]] == ["scope", "task_analysis"]
    assert load_plan(ws, document["path"])[1].model_dump(mode="json") == document["plan"]


def test_cli_without_weak_stages_says_so(ws: Workspace) -> None:
    assert "no metric could be judged yet" in invoke(ws)
    attempts(ws, "student", ["resolved"] * 4, file_recall=1.0, file_precision=1.0)
    output = invoke(ws)
    assert "No stage is weak: every judged metric meets its threshold" in output
    assert output.splitlines()[-1] == f"plan 2: {ws.plans_dir / 'plan-2.json'}"
