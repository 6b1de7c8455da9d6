"""A hold on serving: while `serving.hold` exists in the workspace, no inference server runs.

The autopilot puts one down before it trains (the GPU is the servers' until they stop) and lifts
it after; the serving supervisor (`cra serve --launch`) stops its servers while one is down and
starts them again, with the versions active then, once it is lifted. A file, not a row: it is
written and removed atomically, and a person can see and remove it (`cra serve --release`).
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.core.durable import fsync_dir, write_durably
from engine.core.errors import CraError
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace

HOLD_FILE = "serving.hold"
OPERATOR_HOLDER = "the operator"


class ServingHold(BaseModel):
    """Who holds serving, why, since when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    holder: str
    reason: str
    at: str


def hold_path(ws: Workspace) -> Path:
    return ws.root / HOLD_FILE


def current_hold(ws: Workspace) -> ServingHold | None:
    """The hold in place, if any; a file that is not a hold is refused, never ignored."""
    path = hold_path(ws)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return ServingHold.model_validate_json(data)
    except ValidationError as exc:
        raise CraError(
            f"{path} is not a serving hold ({exc.error_count()} problems); remove it with "
            "`cra serve --release` if nothing holds serving"
        ) from exc


def hold_serving(ws: Workspace, holder: str, reason: str) -> ServingHold:
    """Put a hold down (replacing one of the same holder); refused when another holds it."""
    existing = current_hold(ws)
    if existing is not None and existing.holder != holder:
        raise CraError(
            f"serving is held by {existing.holder} since {existing.at}: {existing.reason}"
        )
    hold = ServingHold(holder=holder, reason=reason, at=utc_now())
    write_durably(hold_path(ws), hold.model_dump_json().encode())
    return hold


def release_serving(ws: Workspace) -> ServingHold | None:
    """Lift the hold; returns it (None when there was none)."""
    hold = current_hold(ws)
    hold_path(ws).unlink(missing_ok=True)
    fsync_dir(ws.root)
    return hold
