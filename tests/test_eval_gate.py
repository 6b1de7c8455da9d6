"""The eval gate: a candidate against the active version (or the base) on the same eval set,
tolerances and minimums from config, the recorded decision, and what promotion requires."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eval_fixtures import add_dataset, add_eval, add_version

from app.cli import cli
from engine.adapters.activation import ActivationError, history, promote, version_row
from engine.evaluation.gate import GateError, check_gate_passed, compare, decide
from engine.workspace import Workspace

STAGE = "scope"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text(
        '[gate]\ntolerance = 0.02\n[gate.tolerances]\n"scope.relevant_recall" = 0.0\n'
        '[gate.minimums]\n"scope.accuracy" = 0.5\n',
        encoding="utf-8",
    )
    ws = Workspace.open(root)
    add_dataset(ws, "scope-d1", STAGE)
    return ws


def _good(**changes: float) -> dict[str, float]:
    return {"accuracy": 0.7, "relevant_recall": 0.8, "valid_rate": 1.0, **changes}


def test_the_first_candidate_is_compared_with_the_base(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _good(accuracy=0.6))
    add_eval(ws, STAGE, v1, _good(accuracy=0.69, valid_rate=0.5))
    decision = decide(ws, "scope-v1", operator="ana")
    assert (decision["decision"], decision["baseline"], decision["operator"]) == (
        "pass",
        "base",
        "ana",
    )
    assert json.loads(decision["reasons_json"]) == []
    assert json.loads(decision["deltas_json"])["accuracy"] == [0.69, 0.6]
    assert version_row(ws, "scope-v1")["status"] == "candidate"
    check_gate_passed(ws, version_row(ws, "scope-v1"))


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (_good(accuracy=0.67), "accuracy fell from 0.700 to 0.670 (-0.030, tolerance 0.020)"),
        (_good(relevant_recall=0.79), "relevant_recall fell from 0.800 to 0.790"),
        (_good(accuracy=0.45), "accuracy 0.450 is below its minimum 0.500"),
        ({"accuracy": 0.9, "valid_rate": 1.0}, "relevant_recall: the candidate has no value"),
    ],
)
def test_a_primary_regression_rejects_with_the_reason_recorded(
    ws: Workspace, candidate: dict[str, float], reason: str
) -> None:
    v1, v2 = add_version(ws, STAGE, 1), add_version(ws, STAGE, 2)
    add_eval(ws, STAGE, v1, _good())
    add_eval(ws, STAGE, None, _good())
    decide(ws, "scope-v1")
    promote(ws, "scope-v1")
    add_eval(ws, STAGE, v2, candidate)
    decision = decide(ws, "scope-v2")
    assert (decision["decision"], decision["baseline"]) == ("reject", "scope-v1")
    assert any(reason in text for text in json.loads(decision["reasons_json"]))
    assert version_row(ws, "scope-v2")["status"] == "rejected"
    last = history(ws, STAGE)[-1]
    assert last["action"] == "reject" and reason in last["reason"]
    with pytest.raises(ActivationError, match="was rejected"):
        promote(ws, "scope-v2")


def test_a_secondary_metric_alone_never_rejects(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _good())
    add_eval(ws, STAGE, v1, _good(valid_rate=0.1))
    assert decide(ws, "scope-v1")["decision"] == "pass"


def test_only_evals_on_the_same_eval_set_are_compared(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _good(), eval_sha="b" * 64)
    add_eval(ws, STAGE, v1, _good())
    comparison = compare(ws, STAGE, v1, None)
    assert comparison.baseline_eval is None and not comparison.complete
    with pytest.raises(GateError, match="base has no finished eval run on scope-v1's eval set"):
        decide(ws, "scope-v1")
    add_eval(ws, STAGE, None, _good(accuracy=0.5), eval_sha="a" * 64)
    add_eval(ws, STAGE, None, _good(accuracy=0.9), eval_sha="a" * 64, status="failed")
    comparison = compare(ws, STAGE, v1, None)
    assert comparison.baseline_eval is not None
    delta = next(d for d in comparison.deltas if d.metric == "accuracy")
    assert delta.delta == pytest.approx(0.2)


def test_no_eval_and_not_a_candidate_are_refused(ws: Workspace) -> None:
    add_version(ws, STAGE, 1)
    with pytest.raises(GateError, match="scope-v1 has no finished eval run"):
        decide(ws, "scope-v1")
    assert ws.db["gate_decisions"].count == 0


def test_promotion_needs_a_pass_against_the_version_active_now(ws: Workspace) -> None:
    v1, v2 = add_version(ws, STAGE, 1), add_version(ws, STAGE, 2)
    with pytest.raises(ActivationError, match="has not been through the eval gate"):
        check_gate_passed(ws, v2)
    add_eval(ws, STAGE, None, _good())
    add_eval(ws, STAGE, v1, _good())
    add_eval(ws, STAGE, v2, _good())
    assert decide(ws, "scope-v2")["baseline"] == "base"
    decide(ws, "scope-v1")
    promote(ws, "scope-v1")
    record = ws.db.execute("SELECT metrics_json FROM adapter_activations").fetchone()[0]
    snapshot = json.loads(record)["to"]["eval"]
    assert (snapshot["dataset"], snapshot["metrics"]) == ("scope-d1", _good())
    with pytest.raises(ActivationError, match="passed the gate against base, but scope-v1 is"):
        check_gate_passed(ws, version_row(ws, "scope-v2"))
    assert decide(ws, "scope-v2")["baseline"] == "scope-v1"
    check_gate_passed(ws, version_row(ws, "scope-v2"))


def test_gate_decisions_are_append_only(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _good())
    add_eval(ws, STAGE, v1, _good())
    decide(ws, "scope-v1")
    with pytest.raises(Exception, match="append-only"):
        ws.db.execute("UPDATE gate_decisions SET decision = 'reject'")


def test_unknown_gate_keys_are_refused_naming_them(tmp_path: Path) -> None:
    root = Workspace.open(tmp_path / "bad").root
    (root / "cra.toml").write_text('[gate.tolerances]\n"scope.f1" = 0.1\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--workspace", str(root), "eval", "status"])
    assert result.exit_code == 1
    assert "'scope.f1' is not a primary metric" in result.output


def test_cli_gate_and_compare_print_the_deltas(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _good())
    add_eval(ws, STAGE, v1, _good(accuracy=0.6))
    runner = CliRunner()
    compared = runner.invoke(cli, ["--workspace", str(ws.root), "eval", "compare", "scope-v1"])
    assert compared.exit_code == 0, compared.output
    assert "* accuracy          0.600  vs  0.700  (-0.100)" in compared.output
    gated = runner.invoke(cli, ["--workspace", str(ws.root), "eval", "gate", "scope-v1"])
    assert gated.exit_code == 0, gated.output
    assert "gate: scope-v1 reject against base" in gated.output
    assert "accuracy fell from 0.700 to 0.600" in gated.output
