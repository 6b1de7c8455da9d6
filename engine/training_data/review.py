"""The operator's spot-check: seeded samples per stage, decisions, and the gate on curation.

LoRA Training Strategy §7.2 and §9.3: 10-20 items per stage per training round are inspected by
hand. A round is a seeded sample of the stage's items not yet reviewed, stratified by source and
repo so each kind of data is seen. Each item gets a decision: accept, reject (curation leaves it
out), flip (a pair whose chosen and rejected are the wrong way round; curation swaps them) or skip
(not decided yet). A stage may be curated only when its newest round is fully decided, holds at
least `[training_data] review_min_sample` decided items, does not show with
`review_confidence` that the stage's reject rate is above `review_max_reject_rate`
(reject_bound.py: a one-sided Clopper-Pearson bound, so one reject in a small round does not
block), and no earlier dataset of the stage (and format) used that round. A round that cannot
pass says what to do next: draw a new sample (it draws only contents no round drew), or derive
the items the stage lacks for one.
"""

import json
import random
from collections import defaultdict
from typing import Literal, get_args

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.errors import CraError
from engine.core.stages import STAGES, Stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training_data.items import Kind
from engine.training_data.reject_bound import blocks, reject_rate_lower_bound, rejects_that_block

Decision = Literal["accept", "reject", "flip", "skip"]
DECISIONS: tuple[Decision, ...] = get_args(Decision)
DECIDED: tuple[Decision, ...] = ("accept", "reject", "flip")


class ReviewError(CraError):
    """A review request that cannot be carried out; the message says why."""


class RoundSummary(BaseModel):
    """One spot-check round and how far its review has got."""

    model_config = ConfigDict(frozen=True)

    round_id: int
    stage: Stage
    drawn_at: str
    seed: int
    total: int
    accepted: int
    rejected: int
    flipped: int
    skipped: int

    @property
    def decided(self) -> int:
        return self.accepted + self.rejected + self.flipped

    @property
    def undecided(self) -> int:
        return self.total - self.decided

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.decided if self.decided else 0.0


class Gate(BaseModel):
    """Whether a stage may be curated, and why not."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    ok: bool
    reason: str
    round_id: int | None


def check_stage(stage: str) -> Stage:
    """`stage` if it is a pipeline stage, else a clear error naming the stages."""
    if stage not in STAGES:
        raise ReviewError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    return stage


def draw_sample(ws: Workspace, stage: str, n: int, seed: int, operator: str | None = None) -> int:
    """Draw a round of up to `n` unreviewed items of `stage`; returns the round's id. An item
    whose content a round already drew is not drawn, nor two items of one content."""
    stage = check_stage(stage)
    if n < 1:
        raise ReviewError(f"a sample needs at least one item, not {n}")
    rows = _drawable(ws.db, stage)
    if not rows:
        raise ReviewError(
            f"no unreviewed examples or pairs of stage {stage}: derive training data first "
            "(`cra data build`) or import logged runs (`cra import-logs`)"
        )
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for item_id, source, repo in rows:
        strata[(source, repo)].append(item_id)
    rng = random.Random(seed)
    picked: list[int] = []
    for key, take in _allocate({key: len(ids) for key, ids in strata.items()}, n).items():
        picked.extend(rng.sample(strata[key], take))
    rng.shuffle(picked)
    now = utc_now()
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        cursor = ws.db.execute(
            "INSERT INTO review_rounds (stage, requested, seed, drawn_at, drawn_by) "
            "VALUES (?, ?, ?, ?, ?)",
            [stage, n, seed, now, operator or ws.config.operator],
        )
        round_id = int(cursor.lastrowid or 0)
        ws.db.conn.executemany(
            "INSERT INTO review_items (round_id, position, example_id) VALUES (?, ?, ?)",
            [(round_id, position, item_id) for position, item_id in enumerate(picked, 1)],
        )
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    ws.db.execute("COMMIT")
    return round_id


_REVIEWED_CONTENT = (
    "SELECT e.content_hash FROM review_items i JOIN examples e ON e.id = i.example_id "
    "WHERE e.stage = ?"
)


def _drawable(db: sqlite_utils.Database, stage: Stage) -> list[tuple[int, str, str]]:
    """(id, source, repo) of each content of `stage` that no round has drawn: the oldest item
    of each content hash, none whose identical twin was drawn (its decision is the twin's)."""
    return db.execute(
        "SELECT MIN(id), source, repo FROM examples WHERE stage = ? AND content_hash NOT IN "
        f"({_REVIEWED_CONTENT}) GROUP BY content_hash ORDER BY MIN(id)",
        [stage, stage],
    ).fetchall()


def unreviewed_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Per stage, how many contents a new round could draw (see `_drawable`); read from the
    (stage, content_hash) index, not the items."""
    distinct = dict(
        db.execute(
            "SELECT stage, COUNT(DISTINCT content_hash) FROM examples GROUP BY stage"
        ).fetchall()
    )
    reviewed = dict(
        db.execute(
            "SELECT e.stage, COUNT(DISTINCT e.content_hash) FROM review_items i "
            "JOIN examples e ON e.id = i.example_id GROUP BY e.stage"
        ).fetchall()
    )
    return {stage: count - reviewed.get(stage, 0) for stage, count in distinct.items()}


def _allocate(sizes: dict[tuple[str, str], int], n: int) -> dict[tuple[str, str], int]:
    """How many to draw from each stratum: one from each (largest first) while `n` allows,
    the rest in proportion to what each has left, by largest remainder."""
    order = sorted(sizes, key=lambda key: (-sizes[key], key))
    n = min(n, sum(sizes.values()))
    take = {key: 0 for key in order}
    for key in order[:n]:
        take[key] = 1
    left = n - sum(take.values())
    spare = {key: sizes[key] - take[key] for key in order}
    pool = sum(spare.values())
    if left and pool:
        shares = {key: left * spare[key] / pool for key in order}
        for key in order:
            take[key] += int(shares[key])
        remainder = sorted(order, key=lambda key: (-(shares[key] % 1), order.index(key)))
        for key in remainder[: n - sum(take.values())]:
            take[key] += 1
    return {key: count for key, count in take.items() if count}


def decide(
    ws: Workspace,
    round_id: int,
    position: int,
    decision: str,
    operator: str | None = None,
) -> None:
    """Record `decision` for item `position` of round `round_id`."""
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {decision!r}; use one of {', '.join(DECISIONS)}")
    example_id = _item(ws.db, round_id, position)
    if decision == "flip":
        kind = ws.db.execute("SELECT kind FROM examples WHERE id = ?", [example_id]).fetchone()[0]
        if kind != "preference":
            raise ReviewError(
                f"item {position} of round {round_id} is an SFT example: flip swaps the chosen "
                "and rejected answers of a pair"
            )
    ws.db.execute(
        "UPDATE review_items SET decision = ?, decided_at = ?, decided_by = ? "
        "WHERE round_id = ? AND position = ?",
        [decision, utc_now(), operator or ws.config.operator, round_id, position],
    )


def set_note(ws: Workspace, round_id: int, position: int, note: str) -> None:
    """Attach the operator's note to item `position` of round `round_id` (empty clears it)."""
    _item(ws.db, round_id, position)
    ws.db.execute(
        "UPDATE review_items SET note = ? WHERE round_id = ? AND position = ?",
        [note.strip() or None, round_id, position],
    )


def _item(db: sqlite_utils.Database, round_id: int, position: int) -> int:
    row = db.execute(
        "SELECT example_id FROM review_items WHERE round_id = ? AND position = ?",
        [round_id, position],
    ).fetchone()
    if row is None:
        raise ReviewError(f"round {round_id} has no item {position}")
    return int(row[0])


def round_summary(db: sqlite_utils.Database, round_id: int) -> RoundSummary:
    """Round `round_id` and its tally."""
    row = db.execute(
        "SELECT r.id, r.stage, r.drawn_at, r.seed, COUNT(i.position), "
        "SUM(i.decision = 'accept'), SUM(i.decision = 'reject'), SUM(i.decision = 'flip'), "
        "SUM(i.decision = 'skip') FROM review_rounds r "
        "JOIN review_items i ON i.round_id = r.id WHERE r.id = ? GROUP BY r.id",
        [round_id],
    ).fetchone()
    if row is None:
        raise ReviewError(f"no review round has id {round_id}")
    return RoundSummary(
        round_id=row[0],
        stage=row[1],
        drawn_at=row[2],
        seed=row[3],
        total=row[4],
        accepted=row[5] or 0,
        rejected=row[6] or 0,
        flipped=row[7] or 0,
        skipped=row[8] or 0,
    )


def latest_round(db: sqlite_utils.Database, stage: Stage) -> RoundSummary | None:
    """The newest round of `stage`, or None when none was drawn."""
    row = db.execute(
        "SELECT MAX(id) FROM review_rounds WHERE stage = ?",
        [stage],
    ).fetchone()
    return None if row[0] is None else round_summary(db, row[0])


def review_gate(ws: Workspace, stage: str, format: Kind | None = None) -> Gate:
    """Whether `stage` may be curated now (see the module doc); with `format`, into a dataset
    of that format, so one round can gate a stage's SFT dataset and its DPO dataset."""
    stage = check_stage(stage)
    latest = latest_round(ws.db, stage)
    if latest is None:
        return _blocked(
            stage,
            None,
            f"no spot-check sample of {stage} has been drawn: run "
            f"`cra review sample --stage {stage}` and review it",
        )
    where = f"round {latest.round_id} of {stage}"
    if latest.undecided:
        skipped = f", {latest.skipped} skipped" if latest.skipped else ""
        return _blocked(
            stage,
            latest.round_id,
            f"{where}: {latest.decided} of {latest.total} items reviewed{skipped}; "
            "decide the rest before curating",
        )
    config = ws.config.training_data
    minimum, limit, confidence = (
        config.review_min_sample,
        config.review_max_reject_rate,
        config.review_confidence,
    )
    if latest.decided < minimum:
        return _blocked(
            stage,
            latest.round_id,
            f"{where}: {latest.decided} items decided, needs {minimum - latest.decided} more: "
            f"a verdict takes at least {minimum} ([training_data] review_min_sample); "
            + _next_round(ws.db, stage, minimum),
        )
    if blocks(latest.rejected, latest.decided, limit, confidence):
        bound = reject_rate_lower_bound(latest.rejected, latest.decided, confidence)
        return _blocked(
            stage,
            latest.round_id,
            f"{where}: {latest.rejected} of {latest.decided} rejected ({latest.reject_rate:.0%}): "
            f"with {confidence:.0%} confidence the stage's reject rate is at least {bound:.0%}, "
            f"above the limit of {limit:.0%} ([training_data] review_max_reject_rate); "
            "fix what produced the rejects (they stay out of curation); then "
            + _next_round(ws.db, stage, minimum),
        )
    used = ws.db.execute(
        "SELECT id FROM datasets WHERE review_round_id = ? AND format = COALESCE(?, format) "
        "ORDER BY created_at LIMIT 1",
        [latest.round_id, format],
    ).fetchone()
    if used is not None:
        return _blocked(
            stage,
            latest.round_id,
            f"{where} was the spot-check of dataset {used[0]}: draw a new sample for this "
            "round of training",
        )
    threshold = rejects_that_block(latest.decided, limit, confidence)
    would = "no number of rejects" if threshold is None else f"{threshold} rejects"
    return Gate(
        stage=stage,
        ok=True,
        reason=f"{where}: {latest.decided} reviewed, {latest.rejected} rejected "
        f"({would} of {latest.decided} would block at the {limit:.0%} limit)",
        round_id=latest.round_id,
    )


def _next_round(db: sqlite_utils.Database, stage: Stage, minimum: int) -> str:
    """What to do for a round that can give a verdict: draw one, or first derive the items a
    draw of `minimum` needs (a new round draws only contents no round drew)."""
    left = unreviewed_counts(db).get(stage, 0)
    if left >= minimum:
        return (
            f"draw a new sample of at least {minimum} from its {left} unreviewed items "
            f"(`cra review sample --stage {stage}`)"
        )
    return (
        f"the stage has {left} unreviewed items and needs {minimum - left} more for a sample "
        f"of {minimum}: derive more data (`cra data build`, `cra import-logs`), then draw one"
    )


def _blocked(stage: Stage, round_id: int | None, reason: str) -> Gate:
    return Gate(stage=stage, ok=False, reason=reason, round_id=round_id)


def verdicts(db: sqlite_utils.Database, stage: Stage) -> dict[int, Decision]:
    """The decision on each item of `stage` whose content was decided (skips left out).

    A decision follows the content: it applies to the reviewed item and to every identical
    twin (the same content hash: the same commit from another package, the same logged call
    imported twice). When twins were decided differently a reject wins (a rejected content is
    never curated), else the newest decision."""
    rows = db.execute(
        "SELECT e.content_hash, i.decision FROM review_items i "
        "JOIN review_rounds r ON r.id = i.round_id JOIN examples e ON e.id = i.example_id "
        "WHERE r.stage = ? AND i.decision IN ('accept', 'reject', 'flip') "
        "ORDER BY i.decided_at, i.round_id",
        [stage],
    ).fetchall()
    by_content: dict[str, Decision] = {}
    for content, decision in rows:
        if by_content.get(content) != "reject":
            by_content[content] = decision
    twins = db.execute(
        "SELECT id, content_hash FROM examples WHERE stage = ? AND content_hash IN "
        "(SELECT value FROM json_each(?))",
        [stage, json.dumps(list(by_content))],
    ).fetchall()
    return {example_id: by_content[content] for example_id, content in twins}
