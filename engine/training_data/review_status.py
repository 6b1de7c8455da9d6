"""Where the spot-check stands, read cheaply: per-stage counts, rounds and a round's items.

The Review pane and `cra review status` / `show` read these with 100,000 items in the database,
so nothing here reads every item: per-stage counts come from GROUP BYs over the `examples
(stage, kind, id)` and `(stage, content_hash)` indexes, and a round's items (at most a few
hundred) are joined to their examples by primary key, without the prompt and answers
(`load_item` reads one of those).
"""

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.stages import STAGES, Stage
from engine.core.workspace import Workspace
from engine.training_data.items import Kind, Origin, Source
from engine.training_data.review import (
    Decision,
    Gate,
    RoundSummary,
    latest_round,
    review_gate,
    round_summary,
    unreviewed_counts,
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class StageCount(_Model):
    """How many items a stage holds, how many are pairs, how many a round has drawn, and how
    many a new round could draw (contents no round drew: identical twins count once)."""

    items: int = 0
    pairs: int = 0
    reviewed: int = 0
    unreviewed: int = 0


class StageStatus(_Model):
    """A stage's items, its newest round and its gate."""

    stage: Stage
    count: StageCount
    latest: RoundSummary | None
    gate: Gate


class RoundItem(_Model):
    """One item of a round: its place, what it is, and the decision on it so far."""

    round_id: int
    position: int
    example_id: int
    kind: Kind
    source: Source
    origin: Origin
    repo: str
    domain: str
    task_key: str
    sha: str | None
    alignment: float | None
    decision: Decision | None
    note: str | None
    decided_by: str | None


def stage_counts(db: sqlite_utils.Database) -> dict[Stage, StageCount]:
    """Every stage's counts (zero for a stage without items)."""
    totals: dict[str, dict[str, int]] = {stage: {} for stage in STAGES}
    for stage, kind, count in db.execute(
        "SELECT stage, kind, COUNT(*) FROM examples GROUP BY stage, kind"
    ).fetchall():
        totals[stage][kind] = count
    reviewed = dict(
        db.execute(
            "SELECT r.stage, COUNT(*) FROM review_items i "
            "JOIN review_rounds r ON r.id = i.round_id GROUP BY r.stage"
        ).fetchall()
    )
    unreviewed = unreviewed_counts(db)
    return {
        stage: StageCount(
            items=sum(totals[stage].values()),
            pairs=totals[stage].get("preference", 0),
            reviewed=reviewed.get(stage, 0),
            unreviewed=unreviewed.get(stage, 0),
        )
        for stage in STAGES
    }


def stage_statuses(ws: Workspace) -> list[StageStatus]:
    """Every stage's status, in pipeline order."""
    counts = stage_counts(ws.db)
    return [
        StageStatus(
            stage=stage,
            count=counts[stage],
            latest=latest_round(ws.db, stage),
            gate=review_gate(ws, stage),
        )
        for stage in STAGES
    ]


def round_items(db: sqlite_utils.Database, round_id: int) -> tuple[RoundSummary, list[RoundItem]]:
    """Round `round_id` and its items in drawing order."""
    summary = round_summary(db, round_id)
    rows = db.execute(
        "SELECT i.round_id, i.position, i.example_id, e.kind, e.source, e.origin, e.repo, "
        "e.domain, e.task_key, e.sha, e.alignment, i.decision, i.note, i.decided_by "
        "FROM review_items i JOIN examples e ON e.id = i.example_id "
        "WHERE i.round_id = ? ORDER BY i.position",
        [round_id],
    ).fetchall()
    fields = list(RoundItem.model_fields)
    return summary, [RoundItem(**dict(zip(fields, row, strict=True))) for row in rows]


def latest_round_items(
    db: sqlite_utils.Database, stage: Stage
) -> tuple[RoundSummary, list[RoundItem]] | None:
    """The newest round of `stage` and its items, or None when none was drawn."""
    latest = latest_round(db, stage)
    return None if latest is None else round_items(db, latest.round_id)
