"""A row headed for (or read from) a dataset file, with the item it was made from.

Curation works on these: the TRL row is fixed when the row is made (flipped or not), so the
line written, the hash deduplicated on and the text compared for near duplicates all agree.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.training_data.curation_errors import CurationRefused
from engine.training_data.items import StoredItem, row_json

_ROW_KEYS = ("messages", "prompt", "chosen", "rejected")


@dataclass(frozen=True)
class DatasetRow:
    """One line of train.jsonl or eval.jsonl.

    `replay_from` is the dataset the row was first written to when it is read back from an
    earlier dataset; None for a row new to the dataset being made.
    """

    item: StoredItem
    flipped: bool
    line: str
    replay_from: str | None = None

    @classmethod
    def new(cls, item: StoredItem, flipped: bool) -> "DatasetRow":
        return cls(item=item, flipped=flipped, line=row_json(item.row(flipped)))

    @property
    def example_id(self) -> int:
        return self.item.id

    @property
    def digest(self) -> str:
        """sha256 of the line: equal to `content_hash` of the TRL row."""
        return hashlib.sha256(self.line.encode("utf-8")).hexdigest()

    @property
    def order(self) -> tuple[datetime, str]:
        """Where the row stands in a dataset: by task date, then by content. Never by example
        id: ids follow the order a campaign's attempts happened to finish in, so two runs of
        the same campaign would train on the same rows in a different order, and learn
        differently."""
        return (self.task_time, self.digest)

    @property
    def text(self) -> str:
        """Every message's content, in row order: what near duplicates are judged on."""
        row = self.item.row(self.flipped)
        return "\n".join(m["content"] for key in _ROW_KEYS for m in row.get(key, []))

    @property
    def task_time(self) -> datetime:
        return parse_task_date(self.item)


def parse_task_date(item: StoredItem) -> datetime:
    """The item's task date as an aware UTC datetime; a date without a zone is UTC, as the
    item's contract says."""
    try:
        moment = datetime.fromisoformat(item.task_date)
    except ValueError as exc:
        raise CurationRefused(
            f"example {item.id}: task date {item.task_date!r} is not an ISO 8601 time"
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
