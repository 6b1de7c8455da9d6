"""What the unattended parts of the console did: the serving supervisor and the autopilot each
append an event (`night_events`, append-only), and the morning report and the Report pane read
them back, so a night nobody watched can be read in the morning."""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.core.db import inserted_id
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace

Source = Literal["serve", "autopilot"]


class NightEvent(BaseModel):
    """One event: when, which part, what kind of thing happened, and a line saying it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    at: str
    source: str
    kind: str
    detail: str
    data_json: str | None

    @property
    def data(self) -> dict[str, Any]:
        if self.data_json is None:
            return {}
        values: dict[str, Any] = json.loads(self.data_json)
        return values


def record_event(
    ws: Workspace, source: Source, kind: str, detail: str, data: dict[str, Any] | None = None
) -> int:
    """Append one event; returns its id."""
    return inserted_id(
        ws.db.table("night_events").insert(
            {
                "at": utc_now(),
                "source": source,
                "kind": kind,
                "detail": detail,
                "data_json": None if data is None else json.dumps(data, sort_keys=True),
            }
        )
    )


def night_events(ws: Workspace, source: Source, after_id: int = 0) -> list[NightEvent]:
    """The source's events after event `after_id`, oldest first."""
    rows = ws.db.table("night_events").rows_where(
        "source = ? AND id > ?", [source, after_id], order_by="id"
    )
    return [NightEvent(**row) for row in rows]
