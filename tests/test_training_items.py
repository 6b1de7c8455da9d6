"""Training items in the database: shapes refused, rows as TRL wants them, idempotent adds,
and training plans that are written once and checked when read back."""

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.core.workspace import Workspace
from engine.training_data.items import Message, TrainingItem, content_hash
from engine.training_data.plan_model import TrainingPlan
from engine.training_data.plans import TrainingPlanError, load_plan, save_plan
from engine.training_data.store import UnknownItem, add_items, load_item


def _item(**changes) -> TrainingItem:
    values = dict(
        stage="execute_code",
        kind="preference",
        source="harness",
        origin="harness_code",
        repo="textkit",
        domain="text",
        task_key="abc:123",
        task_date="2026-01-02T03:04:05Z",
        prompt=[Message(role="system", content="s"), Message(role="user", content="do it")],
        chosen=[Message(role="assistant", content="good")],
        rejected=[Message(role="assistant", content="bad")],
    )
    values.update(changes)
    return TrainingItem(**values)


def test_rows_are_trl_rows_and_a_flip_swaps_the_answers() -> None:
    pair = _item()
    assert set(pair.row()) == {"prompt", "chosen", "rejected"}
    assert pair.row()["chosen"] == [{"role": "assistant", "content": "good"}]
    assert pair.row(flipped=True)["chosen"] == [{"role": "assistant", "content": "bad"}]
    sft = _item(kind="sft", rejected=None, stage="scope")
    assert sft.row() == {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": "good"},
        ]
    }
    assert sft.base_model == "reasoning" and pair.base_model == "coding"
    with pytest.raises(ValueError, match="no rejected answer to flip"):
        sft.row(flipped=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rejected": None}, "a preference pair has a rejected answer"),
        ({"kind": "sft"}, "a preference pair has a rejected answer"),
        ({"prompt": [Message(role="assistant", content="x")]}, "must end with a user message"),
        ({"chosen": [Message(role="user", content="x")]}, "chosen answer must hold only"),
        ({"stage": "deploy"}, "stage"),
        ({"source": "scraped"}, "source"),
    ],
)
def test_a_malformed_item_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _item(**changes)


def test_adding_twice_adds_once_and_reads_back_equal(workspace: Workspace) -> None:
    items = [_item(), _item(task_key="abc:456"), _item(kind="sft", rejected=None, stage="scope")]
    first = add_items(workspace.db, items)
    assert (first.added, first.already) == (3, 0)
    again = add_items(workspace.db, items)
    assert (again.added, again.already) == (0, 3)
    stored = load_item(workspace.db, 1)
    assert stored.model_dump(include=set(TrainingItem.model_fields)) == items[0].model_dump()
    assert stored.content_hash == content_hash(items[0].row())
    assert stored.prompt_tokens > 0 and stored.completion_tokens > 0
    row = workspace.db.execute("SELECT base_model FROM examples WHERE id = 3").fetchone()
    assert row[0] == "reasoning"
    with pytest.raises(UnknownItem, match="no example or pair has id 99"):
        load_item(workspace.db, 99)


def test_a_failed_add_leaves_nothing_behind(workspace: Workspace) -> None:
    bad = _item(chosen_attempt_id=12345)  # no such attempt: the foreign key refuses it
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        add_items(workspace.db, [_item(task_key="k:1"), bad])
    assert workspace.db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] == 0


def _plan() -> TrainingPlan:
    return TrainingPlan(created_at="2026-11-22T00:00:00Z", created_by="op", assessed=[], stages=[])


def test_a_plan_is_saved_once_and_read_back_by_id_or_path(workspace: Workspace) -> None:
    plan_id, path = save_plan(workspace, _plan())
    assert (plan_id, path.name) == (1, "plan-1.json")
    assert load_plan(workspace, "1") == (1, _plan())
    assert load_plan(workspace, str(path)) == (1, _plan())
    assert save_plan(workspace, _plan())[0] == 2
    with pytest.raises(TrainingPlanError, match="no training plan is recorded as '7'"):
        load_plan(workspace, "7")


def test_an_edited_plan_file_is_refused(workspace: Workspace) -> None:
    _, path = save_plan(workspace, _plan())
    data = json.loads(path.read_text())
    data["created_by"] = "someone else"
    path.write_text(json.dumps(data))
    with pytest.raises(TrainingPlanError, match="differs from training plan 1 as recorded"):
        load_plan(workspace, "1")


def test_a_stray_plan_file_is_never_overwritten(workspace: Workspace) -> None:
    workspace.plans_dir.mkdir()
    stray: Path = workspace.plans_dir / "plan-1.json"
    stray.write_text("mine")
    with pytest.raises(TrainingPlanError, match="exists but the database has no plan 1"):
        save_plan(workspace, _plan())
    assert stray.read_text() == "mine"
    assert workspace.db.execute("SELECT COUNT(*) FROM training_plans").fetchone()[0] == 0


def test_datasets_and_plans_are_append_only(workspace: Workspace) -> None:
    save_plan(workspace, _plan())
    with pytest.raises(sqlite3.IntegrityError, match="training_plans is append-only"):
        workspace.db.execute("DELETE FROM training_plans")
