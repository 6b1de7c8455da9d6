"""Scoring a model's answer against the held-out reference, per stage (LoRA Training Strategy §9.1).

Each row yields counts (hits, out of) per metric so a stage's metrics are micro-averaged over
its rows: a row with twenty reference files weighs twenty times one with one. Recall-type
counts are out of the reference's items; precision out of the answer's. An answer that is not
valid JSON of the stage's shape scores as if it named nothing. `pass_at_1` and `resolved_rate`
are not here: they run the harness (`engine.runners.evaluation`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine.core.errors import CraError
from engine.core.stages import Stage, require_lora_stage
from engine.harness.plan import Edit
from engine.training_data.answers import parse_answer

SCOPE_CLASSES = ("relevant", "supporting", "irrelevant")
SYMBOL_TIERS = ("primary", "supporting", "excluded")
_EDITS = TypeAdapter(list[Edit])


class MetricsError(CraError):
    """A stage that is not scored row by row, a reference that is not the stage's shape, or
    nothing to aggregate."""


@dataclass(frozen=True)
class RowScore:
    """Whether the answer had the stage's shape, and (hits, out of) per metric."""

    valid: bool
    counts: dict[str, tuple[int, int]]


def parse_edits(answer: str) -> list[Edit] | None:
    """An execute_code answer as its edits; None unless it is a JSON list of valid edits."""
    value = parse_answer(answer)
    if not isinstance(value, list):
        return None
    try:
        return _EDITS.validate_python(value)
    except ValidationError:
        return None


def _paths(value: Any) -> set[str] | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return set(value)


def _symbols(value: Any) -> set[tuple[str, str]] | None:
    """{path: [symbol]} as (path, symbol) pairs; None when it is not that shape."""
    if not isinstance(value, dict):
        return None
    pairs = set()
    for path, names in value.items():
        found = _paths(names)
        if found is None:
            return None
        pairs |= {(path, name) for name in found}
    return pairs


def _classes(
    value: Any, keys: tuple[str, ...], read: Callable[[Any], set | None]
) -> dict[Any, str] | None:
    """Each item's class: the first of `keys` whose list holds it (a missing key lists
    nothing); None when malformed."""
    if not isinstance(value, dict):
        return None
    labels: dict[Any, str] = {}
    for key in keys:
        raw = value.get(key)
        items = set() if raw is None else read(raw)
        if items is None:
            return None
        for item in items:
            labels.setdefault(item, key)
    return labels


def _classification(
    answer: Any, reference: Any, keys: tuple[str, ...], read: Callable[[Any], set | None]
) -> tuple[bool, int, int, int, int]:
    """(valid, correct, items, first-class hits, first-class items) over the reference's items."""
    truth = _classes(reference, keys, read)
    if truth is None:
        raise MetricsError(f"the reference is not {{{', '.join(keys)}}} lists")
    given = _classes(answer, keys, read)
    valid = given is not None
    given = given or {}
    correct = sum(given.get(item) == label for item, label in truth.items())
    first = [item for item, label in truth.items() if label == keys[0]]
    first_hits = sum(given.get(item) == keys[0] for item in first)
    return valid, correct, len(truth), first_hits, len(first)


def _reference(value: Any, stage: str) -> Any:
    if value is None:
        raise MetricsError(f"{stage}: the reference answer is not JSON")
    return value


def _task_analysis(answer: Any, reference: Any) -> RowScore:
    truth = _paths(reference.get("files")) if isinstance(reference, dict) else None
    if truth is None:
        raise MetricsError("task_analysis: the reference has no list of files")
    files = _paths(answer.get("files")) if isinstance(answer, dict) else None
    valid = files is not None and isinstance(answer.get("summary"), str)
    files = files or set()
    hits = len(files & truth)
    return RowScore(
        valid, {"file_recall": (hits, len(truth)), "file_precision": (hits, len(files))}
    )


def _scope(answer: Any, reference: Any) -> RowScore:
    valid, correct, total, hits, relevant = _classification(
        answer, reference, SCOPE_CLASSES, _paths
    )
    return RowScore(valid, {"accuracy": (correct, total), "relevant_recall": (hits, relevant)})


def _precision(answer: Any, reference: Any) -> RowScore:
    valid, correct, total, hits, primary = _classification(
        answer, reference, SYMBOL_TIERS, _symbols
    )
    return RowScore(valid, {"accuracy": (correct, total), "primary_recall": (hits, primary)})


def score_row(stage: Stage, answer: str, reference: str) -> RowScore:
    """Score one answer against its reference for `stage`."""
    if stage == "planning_dpo":
        raise MetricsError("planning_dpo is scored through the harness only, not row by row")
    ref = _reference(parse_answer(reference), stage)
    if stage == "execute_code":
        if parse_edits(reference) is None:
            raise MetricsError("execute_code: the reference is not a list of edits")
        return RowScore(parse_edits(answer) is not None, {})
    value = parse_answer(answer)
    if stage == "task_analysis":
        return _task_analysis(value, ref)
    if stage == "scope":
        return _scope(value, ref)
    if stage == "precision":
        return _precision(value, ref)
    require_lora_stage(stage, "evaluation")
    raise MetricsError(f"{stage} is not scored row by row")


def aggregate(stage: Stage, scores: list[RowScore]) -> dict[str, float]:
    """`valid_rate` and every counted metric, micro-averaged over the rows."""
    if not scores:
        raise MetricsError(f"{stage}: no rows were scored")
    totals: dict[str, list[int]] = {}
    for score in scores:
        for metric, (hits, out_of) in score.counts.items():
            total = totals.setdefault(metric, [0, 0])
            total[0] += hits
            total[1] += out_of
    metrics = {"valid_rate": sum(score.valid for score in scores) / len(scores)}
    metrics |= {name: (hits / out_of if out_of else 0.0) for name, (hits, out_of) in totals.items()}
    return metrics
