"""`cra data audit`: a per-stage quality report of the stored examples and pairs.

What an operator reads before a review round and a developer before a release (issue 15): per
stage, counts by source, origin and repository; the answers' shapes (how many files relevant,
created and supporting; parts per plan, steps per part; primary symbols; edits per answer);
each contract rule's degenerate count and rate (`contracts.py`); token lengths against the
stage's budget and how many derivations the budget dropped; duplicates within and across
packages; personal data in prompts. Rows are streamed from the database, one at a time, so the
prompt texts the rules read are never all held at once.

Curation uses the same rules on a stage's candidates (`screen_candidates`): degenerate items are
left out, and a stage where more than `[curation] max_degenerate_rate` of them are is refused.
"""

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.stages import STAGES, TOKEN_BUDGET, Stage
from engine.core.workspace import Workspace
from engine.training_data.contracts import (
    RULE_BY_NAME,
    RULES,
    ItemText,
    item_text,
    personal_data,
    row_text,
    violations,
)
from engine.training_data.curation_errors import CurationRefused
from engine.training_data.items import StoredItem
from engine.training_data.review import check_stage

EXAMPLES = 5
"""Item ids shown per failing rule (and per kind of personal data)."""

_COLUMNS = (
    "id, stage, source, origin, repo, package_digest, sha, content_hash, prompt_tokens, "
    "prompt_json, chosen_json, rejected_json"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleTally(_Model):
    """One contract rule over a stage: how many items break it, their share, a few of them."""

    rule: str
    reason: str
    items: int
    rate: float
    examples: list[int]


class TokenLengths(_Model):
    """Prompt plus answer (the longer side of a pair) against the stage's budget."""

    budget: int
    min: int | None
    median: float | None
    p95: int | None
    max: int | None
    over_budget: int
    dropped_by_budget: int
    """Examples and pairs that derivation did not make because they were over the budget."""


class Duplicates(_Model):
    """Items whose content another item of the stage already has, and commits met twice."""

    within_package: int
    """Items repeating an earlier item's content (content hash) from the same package."""
    across_packages: int
    """Items repeating an earlier item's content that another package brought."""
    commits_in_several_packages: int
    """Commits (repository and sha) whose items came with more than one package."""
    examples: list[int]


class PersonalData(_Model):
    """Prompts holding an e-mail address or a trailer line; what was found, never the address."""

    items: int
    with_email: list[int]
    with_trailer: list[int]
    trailer_keys: dict[str, int]


class StageAudit(_Model):
    """The audit of one stage."""

    stage: Stage
    items: int
    by_source: dict[str, int]
    by_origin: dict[str, int]
    by_repo: dict[str, int]
    shapes: dict[str, dict[int, int]]
    """Per measure of the answer (e.g. `relevant`), how many items have each value."""
    degenerate: int
    degenerate_rate: float
    rules: list[RuleTally]
    tokens: TokenLengths
    duplicates: Duplicates
    personal_data: PersonalData

    @property
    def worst(self) -> RuleTally | None:
        """The rule most items break, or None when none is broken."""
        broken = [tally for tally in self.rules if tally.items]
        return max(broken, key=lambda tally: tally.items) if broken else None


class AuditReport(_Model):
    """The audit of every stage asked for, in pipeline order."""

    stages: list[StageAudit]


def audit(ws: Workspace, stage: str | None = None) -> AuditReport:
    """The audit of `stage`, or of every stage that has items or dropped derivations."""
    stages = [check_stage(stage)] if stage is not None else list(STAGES)
    dropped = _dropped_by_budget(ws.db)
    tallies = {name: _Tally(name) for name in stages}
    where, params = ("WHERE stage = ?", [stages[0]]) if stage is not None else ("", [])
    for row in ws.db.query(f"SELECT {_COLUMNS} FROM examples {where} ORDER BY id", params):
        tallies[row["stage"]].add(row, row_text(row))
    return AuditReport(
        stages=[
            tallies[name].report(dropped[name])
            for name in stages
            if stage is not None or tallies[name].items or dropped[name]
        ]
    )


def examples_signature(ws: Workspace) -> tuple[int, int | None]:
    """How many items the database holds and the newest id: a cheap read that changes whenever
    items are added or removed, so a view re-audits only then."""
    count, newest = ws.db.execute("SELECT COUNT(*), MAX(id) FROM examples").fetchone()
    return count, newest


def screen_candidates(stage: Stage, items: Sequence[StoredItem], limit: float) -> set[int]:
    """The ids of `items` (a stage's curation candidates) that break a rule of the stage's
    contract, to be left out; refuses the stage when their share is above `limit`, naming the
    rule most of them break."""
    broken: dict[int, list[str]] = {}
    for item in items:
        names = violations(item_text(item))
        if names:
            broken[item.id] = names
    if not items or len(broken) / len(items) <= limit:
        return set(broken)
    counts = Counter(name for names in broken.values() for name in names)
    rule, count = min(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    raise CurationRefused(
        f"{len(broken)} of {len(items)} {stage} candidates ({_percent(len(broken) / len(items))})"
        f" are degenerate, above [curation] max_degenerate_rate ({_percent(limit)}); most "
        f"break {rule} ({count}, {_percent(count / len(items))}: {RULE_BY_NAME[rule].reason}); "
        f"see `cra data audit --stage {stage}`"
    )


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def _dropped_by_budget(db: sqlite_utils.Database) -> Counter[str]:
    """Per stage, the examples and pairs derivations skipped for the token budget: the skips
    whose reason names it (`ExampleTooLong`'s and `harness_pairs.OVER_BUDGET` both do)."""
    dropped: Counter[str] = Counter()
    for (raw,) in db.execute("SELECT skipped_json FROM derivations"):
        for skip in json.loads(raw) if raw else []:
            if skip.get("stage") is not None and "budget" in skip["reason"]:
                dropped[skip["stage"]] += 1
    return dropped


class _Tally:
    """One stage's counts, filled one row at a time."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.items = 0
        self.by_source: Counter[str] = Counter()
        self.by_origin: Counter[str] = Counter()
        self.by_repo: Counter[str] = Counter()
        self.shapes: dict[str, Counter[int]] = {name: Counter() for name in _SHAPES[stage]}
        self.degenerate = 0
        self.broken: dict[str, list[int]] = defaultdict(list)
        self.tokens: list[int] = []
        self.hashes: dict[str, str | None] = {}
        self.within = 0
        self.across = 0
        self.duplicate_ids: list[int] = []
        self.commits: dict[tuple[str, str], set[str | None]] = defaultdict(set)
        self.emails: list[int] = []
        self.trailers: list[int] = []
        self.trailer_keys: Counter[str] = Counter()

    def add(self, row: dict[str, Any], text: ItemText) -> None:
        item_id = row["id"]
        self.items += 1
        self.by_source[row["source"]] += 1
        self.by_origin[row["origin"]] += 1
        self.by_repo[row["repo"]] += 1
        for name, measure in _SHAPES[self.stage].items():
            self.shapes[name].update(measure(text.answer))
        names = violations(text)
        self.degenerate += bool(names)
        for name in names:
            self.broken[name].append(item_id)
        self.tokens.append(text.tokens)
        self._duplicate(item_id, row)
        if "prompt_email" in names or "prompt_trailer" in names:
            emails, trailers = personal_data(text)
            if emails:
                self.emails.append(item_id)
            if trailers:
                self.trailers.append(item_id)
                self.trailer_keys.update(key.capitalize() for key in trailers)

    def _duplicate(self, item_id: int, row: dict[str, Any]) -> None:
        package = row["package_digest"]
        if row["content_hash"] in self.hashes:
            if self.hashes[row["content_hash"]] == package:
                self.within += 1
            else:
                self.across += 1
            self.duplicate_ids.append(item_id)
        else:
            self.hashes[row["content_hash"]] = package
        if row["sha"] is not None:
            self.commits[(row["repo"], row["sha"])].add(package)

    def report(self, dropped: int) -> StageAudit:
        rules = [
            RuleTally(
                rule=rule.name,
                reason=rule.reason,
                items=len(self.broken[rule.name]),
                rate=len(self.broken[rule.name]) / self.items if self.items else 0.0,
                examples=self.broken[rule.name][:EXAMPLES],
            )
            for rule in RULES
            if self.stage in rule.stages
        ]
        tokens = sorted(self.tokens)
        return StageAudit(
            stage=self.stage,
            items=self.items,
            by_source=_sorted(self.by_source),
            by_origin=_sorted(self.by_origin),
            by_repo=_sorted(self.by_repo),
            shapes={name: dict(sorted(counts.items())) for name, counts in self.shapes.items()},
            degenerate=self.degenerate,
            degenerate_rate=self.degenerate / self.items if self.items else 0.0,
            rules=rules,
            tokens=TokenLengths(
                budget=TOKEN_BUDGET[self.stage],
                min=tokens[0] if tokens else None,
                median=statistics.median(tokens) if tokens else None,
                p95=tokens[math.ceil(0.95 * len(tokens)) - 1] if tokens else None,
                max=tokens[-1] if tokens else None,
                over_budget=len(self.broken["over_budget"]),
                dropped_by_budget=dropped,
            ),
            duplicates=Duplicates(
                within_package=self.within,
                across_packages=self.across,
                commits_in_several_packages=sum(len(p) > 1 for p in self.commits.values()),
                examples=self.duplicate_ids[:EXAMPLES],
            ),
            personal_data=PersonalData(
                items=len(set(self.emails) | set(self.trailers)),
                with_email=self.emails[:EXAMPLES],
                with_trailer=self.trailers[:EXAMPLES],
                trailer_keys=_sorted(self.trailer_keys),
            ),
        )


def _sorted(counts: Counter[str]) -> dict[str, int]:
    """Largest first, then by name."""
    return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))


# -- answer shapes ------------------------------------------------------------------------------

Measure = Callable[[Any], Iterable[int]]


def _length(key: str) -> Measure:
    """How many entries `key` holds (0 when absent); nothing for an answer that is no object."""

    def measure(answer: Any) -> Iterable[int]:
        if not isinstance(answer, dict):
            return ()
        value = answer.get(key)
        return (len(value) if isinstance(value, list | dict) else 0,)

    return measure


def _by_file(key: str) -> Measure:
    """How many names a `{path: [name]}` object under `key` holds in all."""

    def measure(answer: Any) -> Iterable[int]:
        if not isinstance(answer, dict):
            return ()
        value = answer.get(key)
        if not isinstance(value, dict):
            return (0,)
        return (sum(len(names) for names in value.values() if isinstance(names, list)),)

    return measure


def _plan_of(answer: Any) -> Any:
    if isinstance(answer, dict) and isinstance(answer.get("plan"), dict):
        return answer["plan"]
    return answer


def _parts(answer: Any) -> Iterable[int]:
    return _length("parts")(_plan_of(answer))


def _steps_per_part(answer: Any) -> Iterable[int]:
    plan = _plan_of(answer)
    if not isinstance(plan, dict):
        return ()
    parts = plan.get("parts")
    if isinstance(parts, list) and parts:
        return [
            len(part["steps"])
            if isinstance(part, dict) and isinstance(part.get("steps"), list)
            else 0
            for part in parts
        ]
    return _length("steps")(plan)


def _edits(answer: Any) -> Iterable[int]:
    if isinstance(answer, list):
        return (len(answer),)
    return _length("edits")(answer)


_SHAPES: dict[Stage, dict[str, Measure]] = {
    "task_analysis": {"files": _length("files"), "symbols": _by_file("symbols")},
    "scope": {
        "relevant": _length("relevant"),
        "create": _length("create"),
        "supporting": _length("supporting"),
    },
    "precision": {"primary": _by_file("primary"), "supporting": _by_file("supporting")},
    "meta_plan": {"parts": _parts},
    "step_plan": {"steps": _steps_per_part},
    "test_plan": {"files": _length("files"), "tests": _by_file("tests")},
    "planning_dpo": {"parts": _parts, "steps per part": _steps_per_part},
    "execute_code": {"edits": _edits},
}
