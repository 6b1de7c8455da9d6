"""Adding training items to the workspace database and reading them back."""

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.errors import CraError
from engine.core.timestamps import utc_now
from engine.harness.retrieve import count_tokens
from engine.training_data.items import Message, StoredItem, TrainingItem, content_hash

_LIST_FIELDS = ("prompt", "chosen", "rejected")


class UnknownItem(CraError):
    """No example or pair has the id asked for."""


class Added(BaseModel):
    """How many items were new and how many the database already held."""

    model_config = ConfigDict(frozen=True)

    added: int
    already: int


def add_items(db: sqlite_utils.Database, items: Iterable[TrainingItem]) -> Added:
    """Insert `items` in one transaction of their own (see `insert_items`)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        added = insert_items(db, items)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return added


def insert_items(
    db: sqlite_utils.Database, items: Iterable[TrainingItem], created_at: str | None = None
) -> Added:
    """Insert `items` inside the caller's transaction; an item already held (same source,
    task, stage, kind and content) is left as it is, so deriving twice adds nothing."""
    rows = [_row(item, created_at or utc_now()) for item in items]
    added = 0
    for row in rows:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cursor = db.execute(
            f"INSERT OR IGNORE INTO examples ({columns}) VALUES ({marks})", list(row.values())
        )
        added += cursor.rowcount
    return Added(added=added, already=len(rows) - added)


def _row(item: TrainingItem, created_at: str) -> dict[str, Any]:
    row = item.model_dump(exclude=set(_LIST_FIELDS))
    for name in _LIST_FIELDS:
        messages = getattr(item, name)
        row[f"{name}_json"] = (
            None if messages is None else json.dumps([m.model_dump() for m in messages])
        )
    answer = [*item.chosen, *(item.rejected or [])]
    row.update(
        base_model=item.base_model,
        prompt_tokens=sum(count_tokens(m.content) for m in item.prompt),
        completion_tokens=sum(count_tokens(m.content) for m in answer),
        content_hash=content_hash(item.row()),
        created_at=created_at,
    )
    return row


def load_item(db: sqlite_utils.Database, item_id: int) -> StoredItem:
    """The item with id `item_id`."""
    rows = list(db["examples"].rows_where("id = ?", [item_id], limit=1))
    if not rows:
        raise UnknownItem(f"no example or pair has id {item_id}")
    return item_from_row(rows[0])


def item_from_row(row: dict[str, Any]) -> StoredItem:
    """A `StoredItem` from a row of `examples`."""
    values = {key: value for key, value in row.items() if not key.endswith("_json")}
    values.pop("base_model")
    for name in _LIST_FIELDS:
        raw = row[f"{name}_json"]
        values[name] = None if raw is None else [Message(**m) for m in json.loads(raw)]
    return StoredItem(**values)
