"""Whether each LoRA stage may be curated now, read cheaply: the Datasets pane's stages list.

Per stage, in the format `cra curate-data --stage S` curates it in (`default_format`): its items
of that format, how many of them no earlier dataset of the stage holds, and the spot-check gate
(`review.review_gate`). The reason is curation's own wording: no items yet, else the gate's,
else nothing new. A stage is ready when the gate passes and it has new items. Curation
may still refuse a ready stage for what only curating finds (too many degenerate candidates,
too few rows left after deduplication and the holdout, no eval rows) and says why then.

Nothing here reads an item: two counts per stage over the `examples (stage, kind, id)` index.
"""

from pydantic import BaseModel, ConfigDict

from engine.core.stages import BASE_MODEL, LORA_STAGES, LoraStage
from engine.core.workspace import Workspace
from engine.training_data.curate import default_format, earlier_dataset_ids, nothing_new
from engine.training_data.items import Kind
from engine.training_data.review import review_gate


class StageOutlook(BaseModel):
    """One stage's items, its new items, and whether it may be curated (else why not)."""

    model_config = ConfigDict(frozen=True)

    stage: LoraStage
    format: Kind
    items: int
    new: int
    ready: bool
    reason: str
    round_id: int | None


def curation_outlook(ws: Workspace) -> list[StageOutlook]:
    """Every LoRA stage's outlook, in pipeline order."""
    return [_outlook(ws, stage) for stage in LORA_STAGES]


def _outlook(ws: Workspace, stage: LoraStage) -> StageOutlook:
    kind = default_format(stage)
    base = BASE_MODEL[stage]
    (items,) = ws.db.execute(
        "SELECT COUNT(*) FROM examples WHERE stage = ? AND kind = ?", [stage, kind]
    ).fetchone()
    (new,) = ws.db.execute(
        "SELECT COUNT(*) FROM examples WHERE stage = ? AND kind = ? AND id NOT IN "
        "(SELECT de.example_id FROM dataset_examples de "
        "JOIN datasets d ON d.id = de.dataset_id "
        "WHERE d.stage = ? AND d.base_model = ? AND d.format = ?)",
        [stage, kind, stage, base, kind],
    ).fetchone()
    gate = review_gate(ws, stage, kind)
    if not items:
        reason = (
            f"no {kind} items of {stage} yet: derive training data (`cra data build`) or "
            "import logged runs (`cra import-logs`)"
        )
    elif gate.ok and not new:
        reason = nothing_new(stage, kind, None, earlier_dataset_ids(ws.db, stage, base, kind))
    else:
        reason = gate.reason
    return StageOutlook(
        stage=stage,
        format=kind,
        items=items,
        new=new,
        ready=gate.ok and new > 0,
        reason=reason,
        round_id=gate.round_id,
    )
