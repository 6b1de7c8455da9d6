"""Whether each LoRA stage may be curated now (the Datasets pane's stages list), in curation's
own words, over items stored and reviewed in a real workspace and curated for real."""

from pathlib import Path

from test_curate import _item, _review, _workspace

from engine.core.stages import LORA_STAGES
from engine.core.workspace import Workspace
from engine.training_data.curate import curate
from engine.training_data.curate_outlook import StageOutlook, curation_outlook
from engine.training_data.review import review_gate
from engine.training_data.store import add_items


def _scope(ws: Workspace) -> StageOutlook:
    (scope,) = [o for o in curation_outlook(ws) if o.stage == "scope"]
    return scope


def test_each_stage_says_whether_it_may_be_curated_and_why_not(tmp_path: Path) -> None:
    """Every LoRA stage in its default format: its items, those in no dataset of the stage
    yet, and the reason: no items, else the gate's, else nothing new; ready only when the gate
    passes and there is something new, and a stage curation blocks says what curation says."""
    ws = _workspace(tmp_path, max_domain_share=1.0)
    add_items(ws.db, [_item(n) for n in range(40)])
    outlook = {o.stage: o for o in curation_outlook(ws)}
    assert list(outlook) == list(LORA_STAGES)
    assert outlook["planning_dpo"].format == "preference"
    assert outlook["precision"].reason.startswith("no sft items of precision yet")
    scope = outlook["scope"]
    assert (scope.items, scope.new, scope.ready) == (40, 40, False)
    assert scope.reason.startswith("no spot-check sample of scope has been drawn")

    _review(ws)
    scope = _scope(ws)
    assert (scope.ready, scope.round_id) == (True, 1)
    assert scope.reason == review_gate(ws, "scope", "sft").reason

    (done,) = curate(ws, stage="scope").curated
    assert done.manifest.counts.train + done.manifest.counts.eval == 40
    scope = _scope(ws)
    assert (scope.items, scope.new, scope.ready) == (40, 0, False)
    assert "round 1 of scope was the spot-check of dataset scope-d1" in scope.reason

    _review(ws)
    scope = _scope(ws)
    assert (scope.new, scope.ready, scope.round_id) == (0, False, 2)
    assert scope.reason == (
        "no new sft items of scope beyond datasets scope-d1: derive or import more training "
        "data first"
    )
    assert curate(ws, stage="scope").blocked[0].reason == scope.reason
