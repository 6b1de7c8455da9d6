"""Which adapter version serves each stage: promote, roll back, reject (LoRA Training Strategy
§10.5).

A stage has at most one `active` version. The database enforces it: a partial unique index on
`adapter_versions (stage) WHERE status = 'active'`. Every flip happens in one `BEGIN IMMEDIATE`
transaction together with its append-only `adapter_activations` record (who, when, why, and the
training and newest eval metrics of both versions), so the records replay to the current state.

Before a version goes live its files are checked against the sha256 recorded at registration,
and the optional `sync(version)` loads it on the inference server. `sync` runs before the
database flip and outside the transaction: if it raises, nothing changes. Should another console
flip the stage while `sync` runs, the flip is refused rather than applied to a state it was not
planned for: a promotion runs its `check` (the version it expects to replace, the eval gate)
inside the flip's transaction; a rollback names the version it withdraws, and is
refused when that version is no longer the active one, so it never undoes a promotion made
meanwhile by someone else.

Rollback undoes promotions in order: the records replay as a stack (promote pushes, rollback
pops), so rolling back twice after promoting v1, v2, v3 lands on v1, and a third time on the
bare base model (no version active).

Statuses: candidate → active | rejected; active → inactive → active again.
"""

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.bases.registry import base_by_id, unservable_reason
from engine.core.db import immediate, inserted_id
from engine.core.errors import CraError
from engine.core.hashing import sha256_file
from engine.core.stages import BASE_MODEL, STAGES, BaseModelKind, as_stage, require_lora_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace

PROMOTABLE = ("candidate", "inactive")


class AdapterVersion(BaseModel):
    """One row of `adapter_versions`: a registered adapter, its status, base and files.

    `base_model` is typed as the kind the engine always writes (a training spec's), so a row
    naming another fails here rather than as a missing server later."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    stage: str
    version: int
    name: str
    status: str
    base_model: BaseModelKind
    base_model_path: str | None
    rank: int | None
    path: str
    run_id: int | None
    dataset_id: str | None
    dataset_sha256: str | None
    spec_json: str | None
    metrics_json: str | None
    files_json: str | None
    created_at: str
    parent_id: int | None
    base_version_id: int | None = None
    """The registered base version it was trained on (`engine.bases.registry`); None for a
    version registered before bases were versioned and not adopted by its role's first base."""

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The training metrics recorded at registration; None when none were."""
        if self.metrics_json is None:
            return None
        values: dict[str, Any] = json.loads(self.metrics_json)
        return values

    @property
    def files(self) -> dict[str, str] | None:
        """Each registered file's sha256 by its path in the version's folder; None when no
        hashes were recorded."""
        if self.files_json is None:
            return None
        hashes: dict[str, str] = json.loads(self.files_json)
        return hashes


Sync = Callable[[AdapterVersion], None]
"""Loads a version on its inference server before the flip; refuses by raising."""
Check = Callable[[AdapterVersion, AdapterVersion | None], None]
"""Checks the version to promote against the active one (None: the bare base) inside the
flip's transaction; refuses by raising."""


class ActivationRecord(BaseModel):
    """One row of a stage's activation history, with the versions named: `from_name` and
    `to_name` are None for the base model; `override` is the gate verdict a promotion was made
    over (None for none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    action: str
    from_name: str | None
    to_name: str | None
    operator: str
    at: str
    reason: str
    override: str | None


class ActivationError(CraError):
    """A version cannot be promoted, rolled back to or rejected as asked."""


class AdapterFilesError(ActivationError):
    """A version's files on disk are not the files registered."""


class StageChangedError(ActivationError):
    """The stage's active version is not the one this switch was planned against: another
    console switched it since the operator looked, or while this one was loading."""


def version_row(ws: Workspace, name: str) -> AdapterVersion:
    """Version `name`; refused when there is none."""
    rows = list(ws.db["adapter_versions"].rows_where("name = ?", [name]))
    if not rows:
        raise ActivationError(f"there is no adapter version {name!r}")
    return AdapterVersion(**rows[0])


def version_by_id(ws: Workspace, version_id: int) -> AdapterVersion:
    """The version with id `version_id`, which a record of the workspace names (raises
    sqlite-utils' NotFoundError when there is none)."""
    return AdapterVersion(**ws.db.table("adapter_versions").get(version_id))


def list_versions(ws: Workspace, stage: str | None = None) -> list[AdapterVersion]:
    """Every version (of `stage`, when given), by stage and version number."""
    if stage is not None:
        require_lora_stage(stage, "adapter versions")
        where, args = "stage = ?", [stage]
    else:
        where, args = None, []
    rows = ws.db.table("adapter_versions").rows_where(where, args, order_by="stage, version")
    return [AdapterVersion(**row) for row in rows]


def verify_files(ws: Workspace, row: AdapterVersion) -> None:
    """Refuse `row` unless its folder holds exactly the registered files, each hash matching."""
    expected = row.files
    if expected is None:
        raise AdapterFilesError(f"{row.name}: no file hashes were recorded; cannot verify it")
    folder = ws.root / row.path
    if not folder.is_dir():
        raise AdapterFilesError(f"{row.name}: its folder {folder} is missing")
    for relative, digest in sorted(expected.items()):
        path = folder / relative
        if not path.is_file():
            raise AdapterFilesError(f"{row.name}: file {path} is missing")
        if sha256_file(path) != digest:
            raise AdapterFilesError(f"{row.name}: file {path} does not match its registered sha256")
    extra = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if not path.is_dir() and path.relative_to(folder).as_posix() not in expected
    )
    if extra:
        raise AdapterFilesError(f"{row.name}: unregistered file {folder / extra[0]}")


def promote(
    ws: Workspace,
    name: str,
    operator: str | None = None,
    reason: str = "",
    sync: Sync | None = None,
    check: Check | None = None,
    override: dict[str, Any] | None = None,
) -> int:
    """Make candidate or inactive version `name` its stage's active one; returns the record id.

    The previously active version becomes inactive. Its files are verified first, then `sync`
    loads it; only then does the database flip. `check(version, active)` (active: the version
    serving now, None for the bare base) runs inside the flip's transaction and refuses by
    raising, so what it checks cannot change before the flip. `override` is the gate decision
    the promotion overrides (a `gate_decisions` row), recorded with it.
    """
    target = version_row(ws, name)
    check_promotable(target)
    check_servable(ws, target)
    verify_files(ws, target)
    if sync is not None:
        sync(target)
    with immediate(ws.db):
        target = version_row(ws, name)
        check_promotable(target)
        check_servable(ws, target)
        current = active_row(ws, target.stage)
        if check is not None:
            check(target, current)
        return _flip(ws, target.stage, "promote", current, target, operator, reason, override)


def rollback(
    ws: Workspace,
    stage: str,
    withdraw: str,
    operator: str | None = None,
    reason: str = "",
    sync: Sync | None = None,
) -> int:
    """Withdraw `withdraw`, the stage's active version, making the one active before it active
    again; returns the record id.

    `withdraw` is the version the operator saw serving: when another version serves the stage
    now, the rollback is refused, so it never undoes a promotion it did not see. When the
    withdrawn version was the stage's first promotion, the stage goes back to the bare base
    model: no version is active and `sync` is not called.
    """
    current, target = rollback_plan(ws, stage, withdraw)
    if target is not None:
        check_servable(ws, target)
        verify_files(ws, target)
        if sync is not None:
            sync(target)
    with immediate(ws.db):
        now_current, now_target = rollback_plan(ws, stage, withdraw)
        if row_id(now_target) != row_id(target):
            raise StageChangedError(
                f"{stage}: the activation history changed while {_label(target)} was loading; "
                "nothing changed, roll back again"
            )
        return _flip(ws, stage, "rollback", now_current, target, operator, reason)


def row_id(row: AdapterVersion | None) -> int | None:
    """A version row's id; None for the bare base model."""
    return None if row is None else row.id


def _label(row: AdapterVersion | None) -> str:
    return "the base model" if row is None else row.name


def reject(ws: Workspace, name: str, reason: str, operator: str | None = None) -> int:
    """Mark candidate `name` rejected for good; returns the record id (from_id names it)."""
    if not reason.strip():
        raise ActivationError(f"{name}: a rejection needs a reason")
    with immediate(ws.db):
        row = version_row(ws, name)
        if row.status != "candidate":
            raise ActivationError(f"{name} is {row.status}: only a candidate can be rejected")
        ws.db.execute("UPDATE adapter_versions SET status = 'rejected' WHERE id = ?", [row.id])
        return record_activation(ws, row.stage, "reject", row, None, operator, reason)


def resolve(ws: Workspace, stage: str) -> str:
    """The model name the agent puts in a request's `model` field for `stage` (see
    `resolve_with_reason`)."""
    return resolve_with_reason(ws, stage)[0]


def resolve_with_reason(ws: Workspace, stage: str) -> tuple[str, str | None]:
    """The model name for `stage`, and why it is the bare base despite an active version.

    The active version's name (`{stage}-v{N}`, the name it is served under); with no version
    active, the stage's base model kind (`reasoning` or `coding`), meaning the bare base serves.
    An active version trained on an older base than its role's current one is never served, so
    the stage falls back to the bare base, and the reason says so.
    """
    _check_stage(stage)
    base = BASE_MODEL[as_stage(stage)]
    row = active_row(ws, stage)
    if row is None:
        return base, None
    reason = unservable(ws, row)
    if reason is not None:
        return base, f"{reason}: {stage} falls back to the bare {base} base until it is retrained"
    return row.name, None


def unservable(ws: Workspace, row: AdapterVersion) -> str | None:
    """Why version `row` cannot serve (it was trained on another base than its role's
    current one); None when it can."""
    return unservable_reason(ws, row.name, row.base_model, row.base_version_id)


def trained_on(ws: Workspace, row: AdapterVersion) -> str:
    """The base version `row` was trained on, by name; its kind when none was recorded."""
    if row.base_version_id is None:
        return f"{row.base_model} (unversioned)"
    return base_by_id(ws, row.base_version_id).name


def check_servable(ws: Workspace, row: AdapterVersion) -> None:
    """Refuse a version trained on another base than its role's current one."""
    reason = unservable(ws, row)
    if reason is not None:
        raise ActivationError(f"{reason}; it is never served again (retrain it on the new base)")


def history(ws: Workspace, stage: str) -> list[ActivationRecord]:
    """The stage's activation records, oldest first."""
    require_lora_stage(stage, "adapter history")
    return [
        ActivationRecord(
            id=id_,
            action=action,
            from_name=from_name,
            to_name=to_name,
            operator=operator,
            at=at,
            reason=reason,
            override=override,
        )
        for id_, action, from_name, to_name, operator, at, reason, override in ws.db.execute(
            "SELECT a.id, a.action, f.name, t.name, a.operator, a.at, a.reason, a.override "
            "FROM adapter_activations a "
            "LEFT JOIN adapter_versions f ON f.id = a.from_id "
            "LEFT JOIN adapter_versions t ON t.id = a.to_id "
            "WHERE a.stage = ? ORDER BY a.id",
            [stage],
        ).fetchall()
    ]


def export_metadata(ws: Workspace) -> list[dict[str, Any]]:
    """One row per version shaped like the agent's curated `adapter_metadata` table.

    model_tag is the served name; performance_notes the version's metrics as compact JSON;
    deployed_at when it was last made active (None if never). `active` is 1 only for a version
    that serves: an active version trained on an older base than its role's current one does
    not, and the agent's router must not route to it.
    """
    rows = ws.db.execute(
        "SELECT v.stage, v.base_model, v.name, v.version, v.status, v.metrics_json, "
        "v.base_version_id, "
        "(SELECT MAX(a.at) FROM adapter_activations a "
        " WHERE a.to_id = v.id AND a.action IN ('promote', 'rollback')) "
        "FROM adapter_versions v ORDER BY v.stage, v.version"
    ).fetchall()
    return [
        {
            "stage_name": stage,
            "base_model": base_model,
            "model_tag": name,
            "version": version,
            "active": int(
                status == "active" and unservable_reason(ws, name, base_model, base_id) is None
            ),
            "performance_notes": _compact(metrics_json),
            "deployed_at": deployed_at,
        }
        for stage, base_model, name, version, status, metrics_json, base_id, deployed_at in rows
    ]


def _compact(metrics_json: str | None) -> str:
    if metrics_json is None:
        return ""
    return json.dumps(json.loads(metrics_json), sort_keys=True, separators=(",", ":"))


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ActivationError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")


def check_promotable(row: AdapterVersion) -> None:
    require_lora_stage(row.stage, f"adapter to promote ({row.name})")
    if row.status == "rejected":
        raise ActivationError(f"{row.name} was rejected; a rejected version is never promoted")
    if row.status == "active":
        raise ActivationError(f"{row.name} is already the active {row.stage} version")
    if row.status not in PROMOTABLE:
        raise ActivationError(f"{row.name} has unknown status {row.status!r}")


def active_row(ws: Workspace, stage: str) -> AdapterVersion | None:
    """The stage's active version; None when the bare base model serves it."""
    rows = list(ws.db["adapter_versions"].rows_where("stage = ? AND status = 'active'", [stage]))
    return AdapterVersion(**rows[0]) if rows else None


def serving_row(ws: Workspace, stage: str) -> AdapterVersion | None:
    """The version that really serves `stage`: the active one, unless it was trained on an
    older base than its role's current one (then the bare base serves: None). What a
    candidate is gated and evaluated against."""
    row = active_row(ws, stage)
    return None if row is None or unservable(ws, row) is not None else row


def rollback_plan(
    ws: Workspace, stage: str, withdraw: str | None = None
) -> tuple[AdapterVersion, AdapterVersion | None]:
    """The active version and the one that was active before it was promoted (None: the bare
    base model, when the active version was the stage's first promotion).

    With `withdraw`, refused unless that version is the active one. Its reads see one snapshot
    of the database, so a switch made meanwhile by another process cannot show it an active
    version and a history that disagree."""
    require_lora_stage(stage, "adapter to roll back")
    with _snapshot(ws):
        return _rollback_plan(ws, stage, withdraw)


def _rollback_plan(
    ws: Workspace, stage: str, withdraw: str | None
) -> tuple[AdapterVersion, AdapterVersion | None]:
    current = active_row(ws, stage)
    if current is None:
        raise ActivationError(f"{stage}: no version is active; there is nothing to roll back")
    if withdraw is not None and current.name != withdraw:
        if withdraw != BASE_MODEL[as_stage(stage)]:
            version_row(ws, withdraw)
        raise StageChangedError(
            f"{stage}: the rollback withdraws {withdraw}, but {current.name} serves {stage} "
            "now; nothing changed (someone switched it since), look again and roll back again"
        )
    stack: list[int] = []
    for action, to_id in ws.db.execute(
        "SELECT action, to_id FROM adapter_activations "
        "WHERE stage = ? AND action IN ('promote', 'rollback') ORDER BY id",
        [stage],
    ):
        if action == "promote":
            stack.append(to_id)
        elif stack:
            stack.pop()
        else:
            raise ActivationError(f"{stage}: a rollback record precedes every promotion")
    if not stack or stack[-1] != current.id:
        raise ActivationError(
            f"{stage}: the activation records do not end at the active version {current.name}"
        )
    if len(stack) < 2:
        return current, None
    target = version_by_id(ws, stack[-2])
    if target.status != "inactive":
        raise ActivationError(
            f"{stage}: the earlier version {target.name} is {target.status}, not inactive"
        )
    return current, target


def _flip(
    ws: Workspace,
    stage: str,
    action: str,
    current: AdapterVersion | None,
    target: AdapterVersion | None,
    operator: str | None,
    reason: str,
    override: dict[str, Any] | None = None,
) -> int:
    try:
        if current is not None:
            ws.db.execute(
                "UPDATE adapter_versions SET status = 'inactive' WHERE id = ?", [current.id]
            )
        if target is not None:
            ws.db.execute("UPDATE adapter_versions SET status = 'active' WHERE id = ?", [target.id])
    except sqlite3.IntegrityError as exc:
        raise ActivationError(
            f"{_label(target)}: the database refused to make it active ({exc}); "
            "only one version per stage can be active. Nothing changed"
        ) from exc
    return record_activation(ws, stage, action, current, target, operator, reason, override)


def record_activation(
    ws: Workspace,
    stage: str,
    action: str,
    from_row: AdapterVersion | None,
    to_row: AdapterVersion | None,
    operator: str | None,
    reason: str,
    override: dict[str, Any] | None = None,
) -> int:
    """Append an activation record; `override` is the gate decision a promotion was made over
    (its verdict goes in `override`, its id in `gate_decision_id`)."""
    snapshot = {
        side: None
        if row is None
        else {"name": row.name, "metrics": row.metrics, "eval": _newest_eval(ws, row)}
        for side, row in (("from", from_row), ("to", to_row))
    }
    return inserted_id(
        ws.db.table("adapter_activations").insert(
            {
                "stage": stage,
                "action": action,
                "from_id": None if from_row is None else from_row.id,
                "to_id": None if to_row is None else to_row.id,
                "operator": operator or ws.config.operator,
                "at": utc_now(),
                "reason": reason,
                "metrics_json": json.dumps(snapshot, sort_keys=True),
                "override": None if override is None else override["decision"],
                "gate_decision_id": None if override is None else override["id"],
            }
        )
    )


def _newest_eval(ws: Workspace, row: AdapterVersion) -> dict[str, Any] | None:
    """The version's newest finished eval run: its id, eval set and metrics."""
    found = ws.db.execute(
        "SELECT id, dataset_id, eval_sha256, metrics_json FROM eval_runs "
        "WHERE adapter_id = ? AND status = 'done' ORDER BY id DESC LIMIT 1",
        [row.id],
    ).fetchone()
    if found is None:
        return None
    eval_id, dataset_id, sha, metrics = found
    return {
        "id": eval_id,
        "dataset": dataset_id,
        "eval_sha256": sha,
        "metrics": json.loads(metrics),
    }


@contextmanager
def _snapshot(ws: Workspace) -> Iterator[None]:
    """Reads in one transaction (a consistent snapshot), or in the caller's if one is open."""
    if ws.db.conn.in_transaction:
        yield
        return
    ws.db.execute("BEGIN DEFERRED")
    try:
        yield
    finally:
        ws.db.execute("COMMIT")
