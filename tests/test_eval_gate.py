"""The eval gate: a candidate against the active version (or the base) on the same eval set,
example by example; its verdicts (pass, regression, below minimum, underpowered, no gain), the
recorded evidence, and what promotion requires (a pass, or an override with a reason)."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from eval_fixtures import add_dataset, add_eval, add_version, examples

from app.cli import cli
from engine.adapters.activation import ActivationError, history, promote, version_row
from engine.core.config import DEFAULT_MINIMUMS, GateConfig
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.example_scores import paired_metrics
from engine.evaluation.gate import (
    GateError,
    check_gate_passed,
    compare,
    decide,
    decision_evidence,
    latest_decision,
)
from engine.evaluation.runs import eval_row

STAGE = "scope"
N = 40
CONFIG = (
    "[evaluation.eval_sizes]\nscope = 20\n"
    '[gate]\ntolerance = 0.02\n[gate.tolerances]\n"scope.relevant_recall" = 0.0\n'
    '[gate.minimums]\n"scope.accuracy" = 0.5\n"scope.relevant_recall" = 0.5\n'
)


def _workspace(root: Path, config: str = CONFIG) -> Workspace:
    root.mkdir()
    (root / "cra.toml").write_text(config, encoding="utf-8")
    ws = Workspace.open(root)
    add_dataset(ws, "scope-d1", STAGE)
    return ws


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return _workspace(tmp_path / "ws")


def _scores(n: int = N, **changes: float) -> dict[str, list[tuple[int, int]]]:
    return examples(n, **({"accuracy": 0.7, "relevant_recall": 0.8, "valid_rate": 1.0} | changes))


def _cli(ws: Workspace, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), *args])
    return result.exit_code, result.output


def test_a_true_gain_passes_with_its_evidence_recorded(ws: Workspace) -> None:
    """A candidate right on 12 more of 40 examples than the base, wrong on none it got right,
    passes: its accuracy interval is above 0. The decision records each metric's paired
    evidence, which reads back as the comparison it was made from."""
    v1 = add_version(ws, STAGE, 1)
    base = add_eval(ws, STAGE, None, _scores(accuracy=0.5))
    mine = add_eval(ws, STAGE, v1, _scores(accuracy=0.8))
    decision = decide(ws, "scope-v1", operator="ana")
    assert (decision["decision"], decision["baseline"], decision["operator"]) == (
        "pass",
        "base",
        "ana",
    )
    assert (decision["candidate_eval_id"], decision["baseline_eval_id"]) == (mine, base)
    assert decision["underpowered"] == 0
    [reason] = json.loads(decision["reasons_json"])
    assert reason.startswith("scope.accuracy 0.500 -> 0.800 (+0.300 [+")
    assert reason.endswith(", n=40) improves with 95 % confidence")
    evidence = decision_evidence(decision)
    runs = [eval_row(ws, eval_id) for eval_id in (mine, base)]
    assert evidence == paired_metrics(ws, STAGE, *runs, confidence=0.975)
    accuracy = evidence[0]
    assert (accuracy.metric, accuracy.n, accuracy.better, accuracy.worse) == ("accuracy", N, 12, 0)
    assert accuracy.gain and accuracy.method == "paired bootstrap"
    assert version_row(ws, "scope-v1").status == "candidate"
    assert check_gate_passed(ws, version_row(ws, "scope-v1")) is None


def test_a_tie_does_not_pass(ws: Workspace) -> None:
    """A candidate that answers exactly as the base did is no gain: it stays a candidate, and
    promoting it is refused without an override."""
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores())
    add_eval(ws, STAGE, v1, _scores())
    decision = decide(ws, "scope-v1")
    assert decision["decision"] == "no gain"
    [reason] = json.loads(decision["reasons_json"])
    assert reason == (
        "no gain: no primary metric improves with 95 % confidence (scope.accuracy 0.700 -> 0.700 "
        "(+0.000 [+0.000, +0.000], n=40); scope.relevant_recall 0.800 -> 0.800 "
        "(+0.000 [+0.000, +0.000], n=40))"
    )
    assert version_row(ws, "scope-v1").status == "candidate"
    with pytest.raises(ActivationError, match="is no gain .* needs `--override --reason"):
        check_gate_passed(ws, version_row(ws, "scope-v1"))


def test_a_swap_of_as_many_rights_as_wrongs_is_no_gain(ws: Workspace) -> None:
    """Right where the base was wrong on 6 examples and wrong where it was right on 6: the
    same accuracy, an interval around 0, no gain (the paired test sees the discordant pairs)."""
    v1 = add_version(ws, STAGE, 1)
    base = _scores()
    mine = _scores()
    mine["accuracy"] = base["accuracy"][6:] + base["accuracy"][:6]
    add_eval(ws, STAGE, None, base)
    add_eval(ws, STAGE, v1, mine)
    decision = decide(ws, "scope-v1")
    assert decision["decision"] == "no gain"
    accuracy = decision_evidence(decision)[0]
    assert (accuracy.better, accuracy.worse) == (6, 6)
    assert accuracy.low < 0 < accuracy.high


def test_a_regression_names_the_metric_the_drop_and_its_interval(ws: Workspace) -> None:
    """A primary metric below the active version's by more than its tolerance, its whole
    interval below 0, rejects the candidate for good, the reason naming the metric, the drop
    and its interval, also in the activation history; even a gain elsewhere does not excuse
    it."""
    v1, v2 = add_version(ws, STAGE, 1), add_version(ws, STAGE, 2)
    add_eval(ws, STAGE, None, _scores(accuracy=0.5))
    add_eval(ws, STAGE, v1, _scores())
    assert decide(ws, "scope-v1")["decision"] == "pass"
    promote(ws, "scope-v1")
    add_eval(ws, STAGE, v2, _scores(accuracy=0.5, relevant_recall=1.0))
    decision = decide(ws, "scope-v2")
    assert (decision["decision"], decision["baseline"]) == ("regression", "scope-v1")
    reason = json.loads(decision["reasons_json"])[0]
    assert re.fullmatch(
        r"scope\.accuracy fell 0\.700 -> 0\.500 \(-0\.200 \[-0\.\d{3}, -0\.\d{3}\], n=40\), "
        r"more than its tolerance 0\.020",
        reason,
    ), reason
    assert version_row(ws, "scope-v2").status == "rejected"
    last = history(ws, STAGE)[-1]
    assert last.action == "reject" and reason in last.reason
    with pytest.raises(ActivationError, match="was rejected"):
        promote(ws, "scope-v2")


def test_a_drop_within_its_tolerance_is_no_regression(ws: Workspace) -> None:
    """accuracy 0.70 -> 0.68 is within [gate] tolerance 0.02: no regression, but no gain either.
    relevant_recall has a tolerance of its own, 0: its drop by one example of 50 is past it,
    but the interval reaches 0, so the set cannot tell it from chance: underpowered, the
    candidate neither rejected nor passed; ten examples lost is a regression."""
    v1, v2, v3 = (add_version(ws, STAGE, n) for n in (1, 2, 3))
    add_eval(ws, STAGE, None, _scores(n=50, accuracy=0.7))
    add_eval(ws, STAGE, v1, _scores(n=50, accuracy=0.68))
    add_eval(ws, STAGE, v2, _scores(n=50, accuracy=0.9, relevant_recall=0.78))
    add_eval(ws, STAGE, v3, _scores(n=50, accuracy=0.9, relevant_recall=0.6))
    assert decide(ws, "scope-v1")["decision"] == "no gain"
    decision = decide(ws, "scope-v2")
    assert (decision["decision"], decision["underpowered"]) == ("underpowered", 1)
    assert json.loads(decision["reasons_json"])[0].startswith(
        "underpowered: scope.relevant_recall fell 0.800 -> 0.780 (-0.020 [-0.080, +0.000], n=50)"
        ", more than its tolerance 0.000, but its interval reaches 0"
    )
    assert version_row(ws, "scope-v2").status == "candidate"
    decision = decide(ws, "scope-v3")
    assert decision["decision"] == "regression"
    assert json.loads(decision["reasons_json"])[0].startswith(
        "scope.relevant_recall fell 0.800 -> 0.600 (-0.200 [-"
    )


def test_the_seed_minimums_are_on_by_default(tmp_path: Path) -> None:
    """With no [gate] minimums set, LoRA Training Strategy §9.1's pass thresholds hold: a scope
    candidate at accuracy 0.70 is below 0.75 and rejected, however much it gains; 0 switches one
    off."""
    assert GateConfig().minimums == DEFAULT_MINIMUMS
    assert DEFAULT_MINIMUMS["scope.accuracy"] == 0.75
    assert not any(key.startswith(("execute_code", "planning_dpo")) for key in DEFAULT_MINIMUMS)
    ws = _workspace(tmp_path / "ws", "[evaluation.eval_sizes]\nscope = 20\n")
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores(accuracy=0.3, relevant_recall=0.9))
    add_eval(ws, STAGE, v1, _scores(accuracy=0.7, relevant_recall=0.9))
    decision = decide(ws, "scope-v1")
    assert decision["decision"] == "below minimum"
    assert json.loads(decision["reasons_json"]) == [
        "scope.accuracy 0.700 is below its minimum 0.750"
    ]
    assert version_row(ws, "scope-v1").status == "rejected"

    off = _workspace(
        tmp_path / "off",
        '[evaluation.eval_sizes]\nscope = 20\n[gate.minimums]\n"scope.accuracy" = 0\n',
    )
    v1 = add_version(off, STAGE, 1)
    add_eval(off, STAGE, None, _scores(accuracy=0.3, relevant_recall=0.9))
    add_eval(off, STAGE, v1, _scores(accuracy=0.7, relevant_recall=0.9))
    assert decide(off, "scope-v1")["decision"] == "pass"


def test_a_small_eval_set_is_underpowered_even_with_a_gain(ws: Workspace) -> None:
    """Fewer paired examples than [evaluation] eval_sizes, or than the floor of 10, or an eval
    set built under its target: underpowered, even where the candidate gains; the candidate
    stays a candidate. Under the floor even a collapse is underpowered, never a rejection for
    good; over it, a regression on a small set is still a regression."""
    v1, v2, v3 = (add_version(ws, STAGE, n) for n in (1, 2, 3))
    add_eval(ws, STAGE, None, _scores(n=15, accuracy=0.2), eval_sha="b" * 64)
    add_eval(ws, STAGE, v1, _scores(n=15, accuracy=1.0), eval_sha="b" * 64)
    decision = decide(ws, "scope-v1")
    assert (decision["decision"], decision["underpowered"]) == ("underpowered", 1)
    assert json.loads(decision["reasons_json"]) == [
        "underpowered: 15 paired examples, under [evaluation] eval_sizes.scope = 20"
    ]
    assert decision_evidence(decision)[0].gain
    assert version_row(ws, "scope-v1").status == "candidate"

    add_eval(ws, STAGE, None, _scores(n=8), eval_sha="c" * 64)
    add_eval(ws, STAGE, v2, _scores(n=8), eval_sha="c" * 64)
    reasons = json.loads(decide(ws, "scope-v2")["reasons_json"])
    assert reasons[1] == (
        "underpowered: 8 paired examples, under the floor of 10 below which an interval "
        "means nothing"
    )
    assert reasons[2].startswith("no gain: ")
    v5 = add_version(ws, STAGE, 5)
    add_eval(ws, STAGE, v5, _scores(n=8, accuracy=0.0, relevant_recall=0.0), eval_sha="c" * 64)
    decision = decide(ws, "scope-v5")
    reasons = json.loads(decision["reasons_json"])
    assert decision["decision"] == "underpowered", reasons
    assert reasons[0].startswith("scope.accuracy fell 0.750 -> 0.000 (-0.750 [-")
    assert "scope.accuracy 0.000 is below its minimum 0.500" in reasons
    assert version_row(ws, "scope-v5").status == "candidate"

    ws.db["eval_sets"].insert(
        {
            "stage": STAGE,
            "base_model": "reasoning",
            "path": "eval_sets/scope/x/eval.jsonl",
            "sha256": "d" * 64,
            "size": 40,
            "target_size": 60,
            "tasks_json": "[]",
            "created_at": utc_now(),
        }
    )
    add_eval(ws, STAGE, None, _scores(accuracy=0.2), eval_sha="d" * 64, eval_set_id=1)
    add_eval(ws, STAGE, v3, _scores(accuracy=1.0), eval_sha="d" * 64, eval_set_id=1)
    decision = decide(ws, "scope-v3")
    assert (decision["decision"], decision["eval_set_id"]) == ("underpowered", 1)
    assert json.loads(decision["reasons_json"]) == [
        "underpowered: eval set 1 holds 40 rows, under its target 60"
    ]

    v4 = add_version(ws, STAGE, 4)
    add_eval(ws, STAGE, v4, _scores(n=15, relevant_recall=0.0), eval_sha="b" * 64)
    decision = decide(ws, "scope-v4")
    assert decision["decision"] == "regression"
    assert any(r.startswith("underpowered: ") for r in json.loads(decision["reasons_json"]))


def test_a_secondary_metric_alone_never_rejects(ws: Workspace) -> None:
    """valid_rate falling does not stop a candidate whose primary metrics gain."""
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores(accuracy=0.5))
    add_eval(ws, STAGE, v1, _scores(accuracy=0.9, valid_rate=0.1))
    assert decide(ws, "scope-v1")["decision"] == "pass"


def test_only_evals_on_the_same_eval_set_are_compared(ws: Workspace) -> None:
    """The gate pairs the candidate's newest eval with the baseline's on the same eval set."""
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores(), eval_sha="b" * 64)
    add_eval(ws, STAGE, v1, _scores())
    comparison = compare(ws, STAGE, v1, None)
    assert comparison.baseline_eval is None and not comparison.complete
    with pytest.raises(GateError, match="base has no finished eval run on scope-v1's eval set"):
        decide(ws, "scope-v1")
    add_eval(ws, STAGE, None, _scores(accuracy=0.5), eval_sha="a" * 64)
    add_eval(ws, STAGE, None, _scores(accuracy=0.9), eval_sha="a" * 64, status="failed")
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
    """A pass made against the base does not promote over the version that serves now."""
    v1, v2 = add_version(ws, STAGE, 1), add_version(ws, STAGE, 2)
    with pytest.raises(ActivationError, match="has not been through the eval gate"):
        check_gate_passed(ws, v2)
    add_eval(ws, STAGE, None, _scores(accuracy=0.5))
    add_eval(ws, STAGE, v1, _scores(accuracy=0.7))
    add_eval(ws, STAGE, v2, _scores(accuracy=0.9))
    assert decide(ws, "scope-v2")["baseline"] == "base"
    decide(ws, "scope-v1")
    promote(ws, "scope-v1")
    record = ws.db.execute("SELECT metrics_json FROM adapter_activations").fetchone()[0]
    snapshot = json.loads(record)["to"]["eval"]
    assert snapshot["dataset"] == "scope-d1"
    assert snapshot["metrics"]["accuracy"] == pytest.approx(0.7)
    with pytest.raises(ActivationError, match="gated against base, but scope-v1 is active now"):
        check_gate_passed(ws, version_row(ws, "scope-v2"))
    assert decide(ws, "scope-v2")["baseline"] == "scope-v1"
    check_gate_passed(ws, version_row(ws, "scope-v2"))


def test_promote_over_no_gain_needs_override_and_reason(ws: Workspace) -> None:
    """`cra adapters promote` refuses a no-gain candidate, and an override without a reason;
    with both it promotes, and the activation log records the override and its reason. A
    rejected version is never promoted, override or not."""
    v1, v2 = add_version(ws, STAGE, 1), add_version(ws, STAGE, 2)
    add_eval(ws, STAGE, None, _scores())
    add_eval(ws, STAGE, v1, _scores())
    add_eval(ws, STAGE, v2, _scores(accuracy=0.1))
    decision = decide(ws, "scope-v1")
    assert decide(ws, "scope-v2")["decision"] == "regression"
    code, out = _cli(ws, "adapters", "promote", "scope-v1")
    assert code == 1 and "scope-v1's gate decision against base is no gain" in out
    code, out = _cli(ws, "adapters", "promote", "scope-v1", "--override")
    assert code == 1
    assert "scope-v1: promoting over the eval gate needs a reason (--reason)" in out
    code, out = _cli(ws, "adapters", "promote", "scope-v2", "--override", "--reason", "x")
    assert code == 1 and "scope-v2 was rejected; a rejected version is never promoted" in out
    assert ws.db["adapter_activations"].count_where("action = 'promote'") == 0

    code, out = _cli(
        ws, "adapters", "promote", "scope-v1", "--override", "--reason", "the format is right"
    )
    assert code == 0, out
    [record] = ws.db["adapter_activations"].rows_where("action = 'promote'")
    assert (record["override"], record["gate_decision_id"], record["reason"]) == (
        "no gain",
        decision["id"],
        "the format is right",
    )
    assert history(ws, STAGE)[-1].override == "no gain"
    code, out = _cli(ws, "adapters", "history", STAGE)
    assert "over its 'no gain' gate decision  (the format is right)" in out


def test_a_pass_promotes_without_override_and_records_none(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores(accuracy=0.5))
    add_eval(ws, STAGE, v1, _scores(accuracy=0.9))
    decide(ws, "scope-v1")
    code, out = _cli(ws, "adapters", "promote", "scope-v1")
    assert code == 0, out
    [record] = ws.db["adapter_activations"].rows_where("action = 'promote'")
    assert (record["override"], record["gate_decision_id"]) == (None, None)


def test_gate_decisions_are_append_only(ws: Workspace) -> None:
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores())
    add_eval(ws, STAGE, v1, _scores())
    decide(ws, "scope-v1")
    with pytest.raises(Exception, match="append-only"):
        ws.db.execute("UPDATE gate_decisions SET decision = 'pass'")


def test_a_decision_recorded_before_the_evidence_reads_back_empty(ws: Workspace) -> None:
    """Rows from before migration 14 have no evidence: they read back as none, and a `reject`
    among them still refuses promotion."""
    v1 = add_version(ws, STAGE, 1)
    ws.db["gate_decisions"].insert(
        {
            "adapter_id": v1.id,
            "stage": STAGE,
            "baseline": "base",
            "decision": "reject",
            "reasons_json": '["accuracy fell"]',
            "at": utc_now(),
        }
    )
    decision = latest_decision(ws, v1.id)
    assert decision is not None and decision_evidence(decision) == []
    with pytest.raises(ActivationError, match=r"failed the eval gate \(reject: accuracy fell\)"):
        check_gate_passed(ws, v1, override=True)


def test_unknown_gate_keys_are_refused_naming_them(tmp_path: Path) -> None:
    root = Workspace.open(tmp_path / "bad").root
    (root / "cra.toml").write_text('[gate.tolerances]\n"scope.f1" = 0.1\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--workspace", str(root), "eval", "status"])
    assert result.exit_code == 1
    assert "'scope.f1' is not a primary metric" in result.output


def test_cli_gate_and_compare_print_each_metrics_interval(ws: Workspace) -> None:
    """`cra eval compare` and `cra eval gate` print, per metric, baseline -> candidate, the
    difference with its interval, n and the method; the gate then its verdict and reasons."""
    v1 = add_version(ws, STAGE, 1)
    add_eval(ws, STAGE, None, _scores())
    add_eval(ws, STAGE, v1, _scores(accuracy=0.5))
    code, compared = _cli(ws, "eval", "compare", "scope-v1")
    assert code == 0, compared
    assert "scope-v1 against base (eval runs 2 and 1):" in compared
    assert re.search(
        r"\* accuracy {9}0\.700 -> 0\.500  -0\.200 \[-0\.\d{3}, -0\.\d{3}\]  n=40 "
        r"\(paired bootstrap\)",
        compared,
    ), compared
    assert "    valid_rate       1.000 -> 1.000  +0.000 [+0.000, +0.000]  n=40" in compared
    assert ws.db["gate_decisions"].count == 0
    code, gated = _cli(ws, "eval", "gate", "scope-v1")
    assert code == 0, gated
    lines = gated.splitlines()
    assert lines[0] == "gate: scope-v1 regression against base"
    assert lines[1].startswith("  * accuracy         0.700 -> 0.500  -0.200 [")
    assert lines[4].startswith("  scope.accuracy fell 0.700 -> 0.500 (-0.200 [")
