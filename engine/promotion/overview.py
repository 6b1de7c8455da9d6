"""What the Adapters pane shows, read in one go: per stage, what serves it and its versions with
their gate decision and key metrics beside the active version's, and the activation history.
Also the texts its confirmations show before a promotion or a rollback."""

from dataclasses import dataclass

from engine.adapters.activation import (
    ActivationRecord,
    AdapterVersion,
    active_row,
    check_promotable,
    check_servable,
    history,
    list_versions,
    rollback_plan,
    serving_row,
    trained_on,
    unservable,
    version_row,
)
from engine.core.stages import LORA_STAGES
from engine.core.workspace import Workspace
from engine.evaluation.gate import (
    check_gate_passed,
    compare,
    comparison_lines,
    target_name,
)


@dataclass(frozen=True)
class MetricCell:
    """One primary metric of a version: its value and the change against the active version."""

    metric: str
    value: float | None
    delta: float | None


@dataclass(frozen=True)
class VersionLine:
    """A version's row: `base` is the base version it was trained on; `unservable` why it could
    serve but never will (an older base than its role's current one); None when it can, and for
    a rejected version, which never serves anyway."""

    name: str
    status: str
    base: str
    unservable: str | None
    created: str
    dataset: str
    gate: str
    metrics: list[MetricCell]


@dataclass(frozen=True)
class StageView:
    """A stage: what serves it (a version name or `base`), its candidates, versions, history."""

    stage: str
    serving: str
    candidates: int
    stranded: str | None
    """The active version when it was trained on an older base, so the bare base serves."""
    versions: list[VersionLine]
    history: list[ActivationRecord]


def _gate(ws: Workspace, row: AdapterVersion) -> str:
    decision = ws.db.execute(
        "SELECT decision, baseline FROM gate_decisions WHERE adapter_id = ? "
        "ORDER BY id DESC LIMIT 1",
        [row.id],
    ).fetchone()
    return "—" if decision is None else f"{decision[0]} vs {decision[1]}"


def _line(ws: Workspace, row: AdapterVersion, active: AdapterVersion | None) -> VersionLine:
    is_active = active is not None and active.id == row.id
    comparison = compare(ws, row.stage, row, None if is_active else active)
    cells = [
        MetricCell(delta.metric, delta.candidate, None if is_active else delta.delta)
        for delta in comparison.deltas
        if delta.primary
    ]
    return VersionLine(
        name=row.name,
        status=row.status,
        base=trained_on(ws, row),
        unservable=None if row.status == "rejected" else unservable(ws, row),
        created=row.created_at,
        dataset=row.dataset_id or "—",
        gate=_gate(ws, row),
        metrics=cells,
    )


def stage_views(ws: Workspace) -> list[StageView]:
    """Every LoRA stage, in pipeline order, with its versions newest first."""
    views = []
    for stage in LORA_STAGES:
        rows = list(reversed(list_versions(ws, stage)))
        active = serving_row(ws, stage)
        recorded = active_row(ws, stage)
        views.append(
            StageView(
                stage=stage,
                serving=target_name(active),
                candidates=sum(row.status == "candidate" for row in rows),
                stranded=None if recorded is None or active is not None else recorded.name,
                versions=[_line(ws, row, active) for row in rows],
                history=list(reversed(history(ws, stage))),
            )
        )
    return views


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation shows, and the version it shows serving: the switch the operator
    confirms names it, so a switch someone else made meanwhile refuses it. `override` is the
    verdict of a gate decision that did not pass: promoting over it needs a reason."""

    text: str
    serving: str
    override: str | None = None


def promote_text(ws: Workspace, name: str) -> Confirmation:
    """What promoting `name` will do, with its metrics against the version active now; refused
    at once when the promotion would be (rejected, already active, not gated against the
    version active now). A no-gain or underpowered decision is named: it needs an override."""
    row = version_row(ws, name)
    check_promotable(row)
    check_servable(ws, row)
    overridden = check_gate_passed(ws, row, override=True)
    active = active_row(ws, row.stage)
    comparison = compare(ws, row.stage, row, active)
    lines = [
        f"{name} will serve {row.stage} in place of {target_name(active)}.",
        "It is loaded on the running server first; if that fails nothing changes.",
        "",
        *comparison_lines(comparison),
    ]
    if comparison.candidate_eval is None:
        lines.append(f"  {name} has not been evaluated.")
    if overridden is None:
        return Confirmation("\n".join(lines), target_name(active))
    verdict = overridden["decision"]
    lines += [
        "",
        f"The gate did not pass it: {verdict} against {overridden['baseline']}.",
        "Promoting it overrides the gate: you will be asked why, and the reason is recorded.",
    ]
    return Confirmation("\n".join(lines), target_name(active), verdict)


def rollback_text(ws: Workspace, stage: str) -> Confirmation:
    """What rolling `stage` back will do, with the target's metrics against the current one."""
    current, target = rollback_plan(ws, stage)
    if target is not None:
        check_servable(ws, target)
    lines = [
        f"{stage} goes back from {current.name} to {target_name(target)} "
        f"(the version active before it).",
        f"{current.name} becomes inactive; it can be promoted again later.",
        "",
        *comparison_lines(compare(ws, stage, target, current)),
    ]
    return Confirmation("\n".join(lines), current.name)
