"""The morning report: what the night did, from the database, since a given time.

Packages approved and rejected, each by its folder and digest (`engine.intake.label`: every
demo package's manifest says `textkit`); campaigns and their resolved rates; datasets curated;
training runs that finished, failed or stopped; eval runs and gate decisions; promotions (those made
over a gate decision that did not pass, with the override's reason), rollbacks,
rejections and interrupted switches; the watches after promotions (held or rolled back, with
their resolved rates). First, what the autopilot did; last, what the serving supervisor did
(crashes, restarts, holds). Each section says "nothing" rather than disappearing, so
an empty night reads as one. Timestamps are compared as instants (some rows carry `Z`, approvals
an offset), never as strings.
"""

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.evaluation.gate import REJECTING
from engine.intake.label import package_label
from engine.promotion.watch import list_watches, watch_line

DURATION = re.compile(r"(\d+)([hd])")


class ReportError(CraError):
    """A `since` that is neither a duration nor a timestamp."""


@dataclass(frozen=True)
class Section:
    title: str
    lines: list[str]


def parse_since(text: str, now: datetime) -> datetime:
    """`12h`, `2d` (before `now`) or an ISO 8601 time (UTC when it names no zone)."""
    match = DURATION.fullmatch(text.strip())
    if match:
        amount, unit = int(match[1]), match[2]
        try:
            return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))
        except OverflowError as exc:
            raise ReportError(
                f"--since {text!r}: reaches before the year 1; give a shorter duration"
            ) from exc
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ReportError(
            f"--since {text!r}: give a duration such as 12h or 2d, or a time such as "
            "2026-11-21T18:00"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _at(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _since(rows: list[dict[str, Any]], key: str, since: datetime) -> list[dict[str, Any]]:
    return [row for row in rows if (moment := _at(row[key])) is not None and moment >= since]


def _short(value: str | None) -> str:
    return "—" if not value else value[:16].replace("T", " ")


def morning_report(ws: Workspace, since: datetime) -> list[Section]:
    """The report's sections, each event since `since`, oldest first."""
    return [
        _autopilot(ws, since),
        _packages(ws, since),
        _campaigns(ws, since),
        _datasets(ws, since),
        _runs(ws, since),
        _evals(ws, since),
        _switches(ws, since),
        _watches(ws, since),
        _serving(ws, since),
    ]


def _packages(ws: Workspace, since: datetime) -> Section:
    rows = _since(list(ws.db["ingest_decisions"].rows_where(order_by="id")), "decided_at", since)
    lines = []
    for row in rows:
        why = f": {row['reason']}" if row["reason"] else ""
        label = package_label(row["source_path"], row["digest"], row["name"])
        lines.append(
            f"{_short(row['decided_at'])}  {row['decision']:<8} {label} by {row['operator']}{why}"
        )
    approved = sum(row["decision"] == "approved" for row in rows)
    return Section(f"Packages · {approved} approved, {len(rows) - approved} rejected", lines)


def _campaigns(ws: Workspace, since: datetime) -> Section:
    rows = _since(list(ws.db["campaigns"].rows_where(order_by="id")), "updated_at", since)
    lines = []
    for row in rows:
        outcomes = dict(
            ws.db.execute(
                "SELECT outcome, COUNT(*) FROM attempts WHERE campaign_id = ? AND state = 'done' "
                "GROUP BY outcome",
                [row["id"]],
            ).fetchall()
        )
        usable = sum(count for outcome, count in outcomes.items() if outcome != "unusable")
        resolved = outcomes.get("resolved", 0)
        rate = (
            f"{resolved}/{usable} resolved ({resolved / usable:.0%})"
            if usable
            else "no usable attempt"
        )
        spec = json.loads(row["spec_json"])
        lines.append(
            f"campaign {row['id']} ({spec['pipeline']}, {spec['model']}) {row['status']}: {rate}"
        )
    return Section(f"Campaigns · {len(rows)}", lines)


def _datasets(ws: Workspace, since: datetime) -> Section:
    rows = _since(list(ws.db["datasets"].rows_where(order_by="created_at")), "created_at", since)
    lines = [
        f"{_short(row['created_at'])}  {row['id']} ({row['format']}): {row['train_count']} train, "
        f"{row['eval_count']} eval"
        for row in rows
    ]
    return Section(f"Datasets curated · {len(rows)}", lines)


def _runs(ws: Workspace, since: datetime) -> Section:
    rows = _since(
        list(
            ws.db.query(
                "SELECT r.*, a.name AS adapter FROM training_runs r "
                "LEFT JOIN adapter_versions a ON a.id = r.adapter_id ORDER BY r.id"
            )
        ),
        "finished_at",
        since,
    )
    lines = []
    for row in rows:
        made = f" → {row['adapter']}" if row["adapter"] else ""
        reason = (
            f": {row['reason'].splitlines()[0]}"
            if row["reason"] and row["status"] != "done"
            else ""
        )
        loss = "" if row["loss"] is None else f", loss {row['loss']:.4f}"
        lines.append(
            f"{_short(row['finished_at'])}  run {row['id']} {row['stage']} {row['method']} on "
            f"{row['dataset_id']} {row['status']} at step {row['step']}/{row['max_steps']}{loss}"
            f"{made}{reason}"
        )
    failed = sum(row["status"] == "failed" for row in rows)
    return Section(f"Training runs · {len(rows)} ended, {failed} failed", lines)


def _evals(ws: Workspace, since: datetime) -> Section:
    runs = _since(list(ws.db["eval_runs"].rows_where(order_by="id")), "finished_at", since)
    lines = [
        f"{_short(row['finished_at'])}  eval {row['id']} of {row['target']} on "
        f"{_scored_on(row)} {row['status']}"
        + (
            f": {_metrics(row['metrics_json'])}"
            if row["status"] == "done"
            else f": {row['reason']}"
        )
        for row in runs
    ]
    decisions = _since(
        list(
            ws.db.query(
                "SELECT g.*, v.name FROM gate_decisions g JOIN adapter_versions v "
                "ON v.id = g.adapter_id ORDER BY g.id"
            )
        ),
        "at",
        since,
    )
    for row in decisions:
        reasons = "; ".join(json.loads(row["reasons_json"]))
        lines.append(
            f"{_short(row['at'])}  gate: {row['name']} {row['decision']} against "
            f"{row['baseline']}" + (f": {reasons}" if reasons else "")
        )
    passed = sum(row["decision"] == "pass" for row in decisions)
    rejected = sum(row["decision"] in REJECTING for row in decisions)
    return Section(
        f"Evaluation · {len(runs)} eval runs; gate: {passed} passed, {rejected} rejected, "
        f"{len(decisions) - passed - rejected} not passed (no gain or underpowered)",
        lines,
    )


def _scored_on(run: dict[str, Any]) -> str:
    """What the run scored: its frozen eval set (a run of the base scores no dataset), else,
    for a run made before eval sets, its dataset's eval rows."""
    if run["eval_set_id"] is not None:
        return f"eval set {run['eval_set_id']}"
    return f"{run['dataset_id']}'s eval rows"


def _metrics(metrics_json: str | None) -> str:
    if metrics_json is None:
        return "no metrics"
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(json.loads(metrics_json).items()))


def _switches(ws: Workspace, since: datetime) -> Section:
    rows = _since(
        list(
            ws.db.query(
                "SELECT a.*, f.name AS from_name, t.name AS to_name FROM adapter_activations a "
                "LEFT JOIN adapter_versions f ON f.id = a.from_id "
                "LEFT JOIN adapter_versions t ON t.id = a.to_id ORDER BY a.id"
            )
        ),
        "at",
        since,
    )
    lines = []
    for row in rows:
        moved = (
            row["from_name"]
            if row["action"] == "reject"
            else f"{row['from_name'] or 'base'} → {row['to_name'] or 'base'}"
        )
        why = f": {row['reason']}" if row["reason"] else ""
        if row["override"]:
            lines.append(
                f"{_short(row['at'])}  {row['stage']} promoted {row['to_name']} over its "
                f"'{row['override']}' gate decision ({moved} by {row['operator']}){why}"
            )
            continue
        lines.append(
            f"{_short(row['at'])}  {row['stage']} {row['action']} {moved} by {row['operator']}{why}"
        )
    counts = {
        action: sum(row["action"] == action for row in rows) for action in ("promote", "rollback")
    }
    return Section(
        f"Adapters · {counts['promote']} promoted, {counts['rollback']} rolled back", lines
    )


def _watches(ws: Workspace, since: datetime) -> Section:
    rows = [
        row
        for row in reversed(list_watches(ws))
        if (moment := _at(row.finished_at or row.created_at)) is not None and moment >= since
    ]
    lines = [f"{_short(row.finished_at or row.created_at)}  {watch_line(ws, row)}" for row in rows]
    counts = {
        verdict: sum(row.verdict == verdict for row in rows) for verdict in ("held", "rolled_back")
    }
    return Section(
        f"Watches after promotion · {counts['held']} held, {counts['rolled_back']} rolled back",
        lines,
    )


def _night_rows(ws: Workspace, source: str, since: datetime) -> list[dict[str, Any]]:
    rows = list(ws.db["night_events"].rows_where("source = ?", [source], order_by="id"))
    return _since(rows, "at", since)


def _autopilot(ws: Workspace, since: datetime) -> Section:
    """What the autopilot did: each step of each request, in order."""
    rows = _night_rows(ws, "autopilot", since)
    lines = [f"{_short(row['at'])}  {row['kind']}: {row['detail']}" for row in rows]
    counts = {
        kind: sum(row["kind"] == kind for row in rows)
        for kind in ("requested", "promoted", "failed")
    }
    requests = counts["requested"]
    return Section(
        f"What the autopilot did · {requests} request{'s' * (requests != 1)}, "
        f"{counts['promoted']} promoted, {counts['failed']} failed",
        lines,
    )


def _serving(ws: Workspace, since: datetime) -> Section:
    """The serving supervisor: its crashes and restarts, holds and resumes."""
    rows = _night_rows(ws, "serve", since)
    lines = [f"{_short(row['at'])}  {row['kind']}: {row['detail']}" for row in rows]
    crashes = sum(row["kind"] in ("crashed", "gave up") for row in rows)
    return Section(f"Serving · {crashes} crash{'es' * (crashes != 1)}", lines)


def report_text(sections: list[Section], since: datetime) -> str:
    """The report as plain text, one block per section."""
    out = [f"Since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC"]
    for section in sections:
        out.append("")
        out.append(section.title)
        out.extend(f"  {line}" for line in section.lines or ["nothing"])
    return "\n".join(out)
