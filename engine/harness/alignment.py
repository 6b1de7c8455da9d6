"""Plan-diff structural alignment (LoRA Training Strategy §6.9): a plan against the commit, without
running it.

Files and symbols from the plan's steps are compared with the commit's changes outside its test
files (test files the plan names are left out on both sides: the harness overlays them). Every
metric is None when it is undefined rather than a made-up number:

- file_precision: share of the plan's files that the commit changes; None if the plan names no
  file outside the tests. file_recall: share of the changed files the plan names; None if the
  commit changes none.
- symbol_recall: share of the commit's (file, symbol) pairs it adds or modifies that a plan step
  names exactly; None if there are none.
- symbol_precision: share of the plan's (file, symbol) pairs that are right: the symbol is added,
  modified or removed in that file, or is a dotted prefix of one (`Class` for a changed
  `Class.method`, since naming the class does target the change; it does not count for recall).
  A pair on a changed file whose symbols are unknown (not Python, or not parsing) cannot be
  judged and is left out; None if no pair is left.
- order_agreement: over pairs of changed files the plan names where one imports the other
  (directly or through other changed files, and not both ways), the share the plan touches in
  import order, by each file's first step in `Plan.ordered_steps()`; None if there is no such
  pair. Files with no import relation between them may come in any order.
"""

from collections.abc import Collection
from itertools import combinations

from pydantic import BaseModel, ConfigDict

from engine.harness.ast_diff import FileChange, transitive_imports
from engine.harness.plan import Plan


class Alignment(BaseModel):
    """How well a plan's targets and order match the commit; the pair counts say out of what."""

    model_config = ConfigDict(frozen=True)

    file_precision: float | None
    file_recall: float | None
    symbol_precision: float | None
    symbol_recall: float | None
    order_agreement: float | None
    plan_files: int
    changed_files: int
    plan_symbols: int
    changed_symbols: int
    order_pairs: int


def score_alignment(
    plan: Plan, changes: list[FileChange], test_files: Collection[str]
) -> Alignment:
    """Score `plan` against the commit's `changes`, leaving out `test_files`."""
    kept = [change for change in changes if change.path not in test_files]
    steps = [step for step in plan.ordered_steps() if step.file not in test_files]
    plan_files = list(dict.fromkeys(step.file for step in steps))
    changed = {change.path for change in kept}
    hits = len(changed.intersection(plan_files))
    plan_pairs = {(step.file, symbol) for step in steps for symbol in step.symbols}
    symbol_precision, judged = _symbol_precision(plan_pairs, kept)
    wanted = {
        (change.path, symbol)
        for change in kept
        if change.symbols is not None
        for symbol in change.symbols.touched
    }
    order_agreement, pairs = _order_agreement(plan_files, kept)
    return Alignment(
        file_precision=_share(hits, len(plan_files)),
        file_recall=_share(hits, len(changed)),
        symbol_precision=symbol_precision,
        symbol_recall=_share(len(wanted & plan_pairs), len(wanted)),
        order_agreement=order_agreement,
        plan_files=len(plan_files),
        changed_files=len(changed),
        plan_symbols=judged,
        changed_symbols=len(wanted),
        order_pairs=pairs,
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _symbol_precision(
    plan_pairs: set[tuple[str, str]], changes: list[FileChange]
) -> tuple[float | None, int]:
    """The share of judgeable plan pairs that are right, and how many pairs were judgeable."""
    right: dict[str, set[str] | None] = {}
    for change in changes:
        symbols = change.symbols
        if symbols is None or symbols.parse_error is not None:
            right[change.path] = None
        else:
            right[change.path] = {*symbols.added, *symbols.modified, *symbols.removed}
    judged = [(path, symbol) for path, symbol in plan_pairs if right.get(path, set()) is not None]
    correct = sum(
        1
        for path, symbol in judged
        if any(name == symbol or name.startswith(f"{symbol}.") for name in right.get(path) or set())
    )
    return _share(correct, len(judged)), len(judged)


def _order_agreement(plan_files: list[str], changes: list[FileChange]) -> tuple[float | None, int]:
    """The share of import-related file pairs the plan orders right, and how many pairs."""
    imports = transitive_imports(changes)
    position = {path: n for n, path in enumerate(plan_files) if path in imports}
    agree = total = 0
    for first, second in combinations(sorted(position, key=position.__getitem__), 2):
        forward = first in imports[second]
        backward = second in imports[first]
        if forward != backward:
            total += 1
            agree += forward
    return _share(agree, total), total
