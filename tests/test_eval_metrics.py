"""Per-stage scoring of answers against references, and micro-averaged aggregation."""

import json

import pytest

from engine.core.stages import LORA_STAGES, PRIMARY, NotALoraStage
from engine.evaluation.metrics import (
    MetricsError,
    RowScore,
    aggregate,
    parse_answer,
    parse_edits,
    score_row,
)

TA_REF = json.dumps({"summary": "s", "files": ["a.py", "b.py", "c.py"], "symbols": {}})
SCOPE_REF = json.dumps(
    {"relevant": ["a.py", "b.py"], "supporting": ["c.py"], "irrelevant": ["d.py"]}
)
PREC_REF = json.dumps(
    {"primary": {"a.py": ["f", "g"]}, "supporting": {"b.py": ["h"]}, "excluded": {"a.py": ["k"]}}
)
EDITS = json.dumps([{"path": "a.py", "search": "x = 1", "replace": "x = 2", "delete": False}])


def test_answers_parse_bare_or_in_one_fence() -> None:
    assert parse_answer(' {"a": 1} ') == {"a": 1}
    assert parse_answer('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_answer("```\n[1]\n```") == [1]
    assert parse_answer('Sure! {"a": 1}') is None
    assert parse_edits(EDITS)[0].replace == "x = 2"
    assert parse_edits('[{"path": "/etc/passwd", "search": "", "replace": "x"}]') is None
    assert parse_edits('{"path": "a.py"}') is None


def test_task_analysis_recall_and_precision() -> None:
    perfect = score_row("task_analysis", TA_REF, TA_REF)
    assert perfect == RowScore(True, {"file_recall": (3, 3), "file_precision": (3, 3)})
    partial = score_row(
        "task_analysis", json.dumps({"summary": "x", "files": ["a.py", "z.py", "a.py"]}), TA_REF
    )
    assert partial == RowScore(True, {"file_recall": (1, 3), "file_precision": (1, 2)})
    garbage = score_row("task_analysis", "no idea", TA_REF)
    assert garbage == RowScore(False, {"file_recall": (0, 3), "file_precision": (0, 0)})
    wrong_type = score_row("task_analysis", json.dumps({"summary": "x", "files": "a.py"}), TA_REF)
    assert not wrong_type.valid and wrong_type.counts["file_recall"] == (0, 3)


def test_scope_accuracy_and_relevant_recall_over_the_reference_files() -> None:
    answer = json.dumps({"relevant": ["a.py", "c.py", "e.py"], "supporting": ["b.py"]})
    score = score_row("scope", answer, SCOPE_REF)
    assert score == RowScore(True, {"accuracy": (1, 4), "relevant_recall": (1, 2)})
    assert score_row("scope", SCOPE_REF, SCOPE_REF).counts == {
        "accuracy": (4, 4),
        "relevant_recall": (2, 2),
    }
    assert score_row("scope", '{"relevant": [1]}', SCOPE_REF).valid is False


def test_precision_tiers_by_path_and_symbol() -> None:
    answer = json.dumps({"primary": {"a.py": ["f"], "b.py": ["h"]}, "excluded": {"a.py": ["g"]}})
    score = score_row("precision", answer, PREC_REF)
    assert score == RowScore(True, {"accuracy": (1, 4), "primary_recall": (1, 2)})
    assert score_row("precision", '{"primary": ["f"]}', PREC_REF).valid is False


def test_execute_code_is_checked_for_shape() -> None:
    assert score_row("execute_code", EDITS, EDITS) == RowScore(True, {})
    assert score_row("execute_code", "[]x", EDITS) == RowScore(False, {})


def test_planning_stages_are_never_scored_as_adapters() -> None:
    """meta/step/test planning are the base fine-tune's (LoRA Training Strategy §2.6): no eval
    metric."""
    for stage in ("meta_plan", "step_plan", "test_plan"):
        with pytest.raises(NotALoraStage, match=f"{stage} has no evaluation: planning"):
            score_row(stage, "{}", "{}")
    assert set(PRIMARY) == set(LORA_STAGES)


def test_aggregation_is_micro_averaged() -> None:
    rows = [
        score_row("task_analysis", TA_REF, TA_REF),
        score_row("task_analysis", "garbage", json.dumps({"summary": "s", "files": ["x.py"]})),
    ]
    metrics = aggregate("task_analysis", rows)
    assert metrics == {"valid_rate": 0.5, "file_recall": 0.75, "file_precision": 1.0}
    assert aggregate("execute_code", [RowScore(False, {})]) == {"valid_rate": 0.0}


def test_what_cannot_be_scored_is_refused() -> None:
    with pytest.raises(MetricsError, match="through the harness"):
        score_row("planning_dpo", "x", "y")
    with pytest.raises(MetricsError, match="not JSON"):
        score_row("scope", SCOPE_REF, "not json")
    with pytest.raises(MetricsError, match="no rows"):
        aggregate("scope", [])
