"""Switching the version that serves a stage, on the database and the running server together.

A promotion or rollback first writes an `activation_intents` row (what is being switched, by
which process), then loads the version on the vLLM server of its base (`load_version`: under its
own name, confirmed in `/v1/models`), then flips the database (`engine.adapters.activation`),
then deletes the intent. A failed load changes nothing. A server that is not running is not an
error: the flip happens and the server loads the active versions when it starts (`cra serve`);
the result says so. A process that dies between the load and the flip leaves its intent behind;
`reconcile_intents` (run when the console and the CLI start) records it as an `interrupted`
activation and clears it: the database still names the version active before, which is the
truth, and the switch can simply be made again.
"""

import os
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.adapters.activation import (
    ActivationError,
    AdapterVersion,
    StageChangedError,
    active_row,
    promote,
    record_activation,
    rollback,
    rollback_plan,
    row_id,
    version_by_id,
    version_row,
)
from engine.core.db import immediate, inserted_id
from engine.core.jobs import process_start_time
from engine.core.stages import BASE_MODEL, as_stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.gate import check_gate_passed, target_name
from engine.promotion.watch import start_watch
from engine.serving.command import server_url
from engine.serving.vllm_client import ServingError, VllmClient, load_version


@dataclass(frozen=True)
class SwitchResult:
    """The activation record made, what serves the stage now, what the server did, and (for a
    promotion) what became of its end-to-end watch."""

    record_id: int
    stage: str
    active: str
    server: str
    watch: str = ""


class _Loader:
    """The `sync` of a switch: loads the version on its base's server, noting what happened."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.note = ""

    def __call__(self, row: AdapterVersion) -> None:
        kind = row.base_model
        if kind not in self.ws.config.serving.bases:
            self.note = f"[serving] bases.{kind} is not set; nothing was loaded on a server"
            return
        url = server_url(self.ws, kind)
        client = VllmClient(url, self.ws.config.serving.timeout_s)
        if not _running(client):
            self.note = (
                f"no server is running at {url}; it loads the active versions when started "
                "(`cra serve`)"
            )
            return
        already = row.name in client.loaded_adapters()
        load_version(client, self.ws, row)
        verb = "was already loaded" if already else "loaded"
        self.note = f"{row.name} {verb} on {url}"


def _running(client: VllmClient) -> bool:
    """Whether a server answers at the client's URL; a refused connection means none runs."""
    try:
        client.models()
    except ServingError as exc:
        cause = exc.__cause__
        if isinstance(cause, urllib.error.URLError) and isinstance(
            cause.reason, ConnectionRefusedError
        ):
            return False
        raise
    return True


def promote_version(
    ws: Workspace,
    name: str,
    operator: str | None = None,
    reason: str = "",
    replacing: str | None = None,
    override: bool = False,
) -> SwitchResult:
    """Make `name` its stage's active version, loading it on the running server first.

    A candidate must have passed the eval gate against the version active now; with
    `override`, a no-gain or underpowered decision is promoted over, which needs a `reason`
    and is recorded with the decision it overrides (a rejected version never is). `replacing`
    names the version the operator saw serving (`base` for the bare base); when given, another
    serving now refuses the promotion. The gate and the active version are checked again in the
    flip's transaction: whatever another console switched meanwhile refuses, never bypasses.
    Once the flip is made, the promotion's watch starts (`engine.promotion.watch`).
    """
    reconcile_intents(ws)
    row = version_row(ws, name)
    current = active_row(ws, row.stage)
    if replacing is not None and target_name(current) != replacing:
        raise StageChangedError(
            f"{name} was to replace {replacing}, but {target_name(current)} serves "
            f"{row.stage} now; nothing changed, look again and promote again"
        )
    if override and not reason.strip():
        raise ActivationError(f"{name}: promoting over the eval gate needs a reason (--reason)")
    overridden = check_gate_passed(ws, row, override=override)

    def still_planned(target: AdapterVersion, active: AdapterVersion | None) -> None:
        if row_id(active) != row_id(current):
            raise StageChangedError(
                f"{row.stage}: {target_name(active)} became active while {name} was loading "
                f"(it was to replace {target_name(current)}); nothing changed, promote again"
            )
        if _decision_id(check_gate_passed(ws, target, override=override)) != _decision_id(
            overridden
        ):
            raise StageChangedError(
                f"{name} went through the gate again while it was loading; nothing changed, "
                "look at the new decision and promote again"
            )

    loader = _Loader(ws)
    record_id = _with_intent(
        ws,
        row.stage,
        "promote",
        current,
        row,
        operator,
        lambda: promote(
            ws,
            name,
            operator=operator,
            reason=reason,
            sync=loader,
            check=still_planned,
            override=overridden,
        ),
    )
    return SwitchResult(record_id, row.stage, name, loader.note, start_watch(ws, record_id))


def rollback_stage(
    ws: Workspace, stage: str, withdraw: str, operator: str | None = None, reason: str = ""
) -> SwitchResult:
    """Withdraw `withdraw`, the stage's active version, making the one before it (or the bare
    base) active again, loading it on the running server first when the server lacks it.

    `withdraw` is the version the operator saw serving; refused when another serves now."""
    reconcile_intents(ws)
    current, target = rollback_plan(ws, stage, withdraw)
    loader = _Loader(ws)
    if target is None:
        loader.note = f"the base model serves {stage} now; nothing to load"
    record_id = _with_intent(
        ws,
        stage,
        "rollback",
        current,
        target,
        operator,
        lambda: rollback(ws, stage, withdraw, operator=operator, reason=reason, sync=loader),
    )
    active = BASE_MODEL[as_stage(stage)] if target is None else target.name
    return SwitchResult(record_id, stage, active, loader.note)


def _with_intent(
    ws: Workspace,
    stage: str,
    action: str,
    current: AdapterVersion | None,
    target: AdapterVersion | None,
    operator: str | None,
    switch: Callable[[], int],
) -> int:
    """Run `switch` with an intent recorded for its duration; a refusal removes it too."""
    with ws.db.conn:
        intent_id = inserted_id(
            ws.db.table("activation_intents").insert(
                {
                    "stage": stage,
                    "action": action,
                    "from_id": row_id(current),
                    "to_id": row_id(target),
                    "operator": operator or ws.config.operator,
                    "started_at": utc_now(),
                    "pid": os.getpid(),
                    "pid_start": process_start_time(os.getpid()),
                }
            )
        )
    try:
        return switch()
    finally:
        with ws.db.conn:
            ws.db.table("activation_intents").delete(intent_id)


def reconcile_intents(ws: Workspace) -> list[str]:
    """Settle the switches whose process died mid-way; one line for each, saying what is true.

    An intent whose process still runs (same pid, same start time) is a switch under way and
    is left alone. A read-only workspace is shown as recorded: nothing can be settled there.
    """
    if ws.read_only:
        return []
    return [
        _settle(ws, intent)
        for intent in list(ws.db["activation_intents"].rows_where(order_by="id"))
        if process_start_time(intent["pid"]) != intent["pid_start"]
    ]


def _decision_id(decision: dict[str, Any] | None) -> int | None:
    """A gate decision's id; None for none."""
    return None if decision is None else decision["id"]


def _version(ws: Workspace, version_id: int | None) -> AdapterVersion | None:
    return None if version_id is None else version_by_id(ws, version_id)


def _name(ws: Workspace, version_id: int | None) -> str:
    return "the base model" if version_id is None else version_by_id(ws, version_id).name


def _settle(ws: Workspace, intent: dict[str, Any]) -> str:
    stage, action = intent["stage"], intent["action"]
    to_name, from_name = _name(ws, intent["to_id"]), _name(ws, intent["from_id"])
    now = target_name(active_row(ws, stage))
    flipped = ws.db.execute(
        "SELECT COUNT(*) FROM adapter_activations WHERE stage = ? AND action = ? AND at >= ? "
        "AND to_id IS ? AND from_id IS ?",
        [stage, action, intent["started_at"], intent["to_id"], intent["from_id"]],
    ).fetchone()[0]
    verb = "promotion" if action == "promote" else "rollback"
    with immediate(ws.db):
        if flipped:
            line = f"{stage}: the {verb} to {to_name} had completed; {now} is active"
        else:
            line = (
                f"{stage}: the {verb} from {from_name} to {to_name} by {intent['operator']} "
                f"was interrupted before the database flip; {now} is still active; "
                f"{'promote' if action == 'promote' else 'roll back'} again to finish it"
            )
            if intent["to_id"] is not None:
                line += f" ({to_name} may be loaded on the server already: names are never reused)"
            record_activation(
                ws,
                stage,
                "interrupted",
                _version(ws, intent["from_id"]),
                _version(ws, intent["to_id"]),
                intent["operator"],
                f"{verb} interrupted before the database flip (process {intent['pid']} ended)",
            )
        ws.db.table("activation_intents").delete(intent["id"])
    return line
