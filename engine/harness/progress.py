"""Read-only views of harness campaigns for the console: progress, workers and attempts.

Every figure is aggregated in SQL; no query loads a campaign's attempts into Python, so each
stays fast at 100,000 attempts. The attempt list pages through a campaign in id order, with an
optional outcome filter.

- resolved rate: resolved / (done − unusable). An unusable task (no FAIL_TO_PASS test) could
  not have been resolved, so it does not count against the pipeline; None when no usable
  attempt is done.
- throughput: attempts finished per minute over the last 10 minutes of the campaign's latest
  run (its newest job), or since that run started when it is younger. The window ends now while
  the job runs, or when it ended, so a paused campaign keeps the rate of its last run. None when
  the campaign never ran.
- ETA: remaining attempts / throughput, in seconds; None without a throughput above zero.
"""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.core.timestamps import TIME_FORMAT
from engine.core.workspace import Workspace
from engine.harness.campaigns import JOB_KIND, CampaignSpec, read_spec
from engine.harness.package import HarnessError
from engine.harness.plan import Plan
from engine.intake.approval import package_labels
from engine.intake.label import package_label

Outcome = Literal["resolved", "partial", "failed", "error", "unusable"]
OUTCOMES: tuple[Outcome, ...] = ("resolved", "partial", "failed", "error", "unusable")
THROUGHPUT_WINDOW = timedelta(minutes=10)
TEST_OUTPUT = "tests/output.txt"
"""Where an attempt's test run writes its output, under the attempt's folder (`run_attempt`
runs its tests in `tests/`)."""
ARTIFACT_FILES = ("patch.diff", TEST_OUTPUT, "raw.txt", "report.json")
ARTIFACT_CAP_BYTES = 256 * 1024
ALIGNMENT_KEYS = (
    "file_precision",
    "file_recall",
    "symbol_precision",
    "symbol_recall",
    "order_agreement",
)
_ROW_COLUMNS = (
    "id, package_name, sha, task, temperature, seed, state, outcome, reason, "
    "f2p_passed, f2p_total, duration_s, file_recall"
)


def parse_time(value: str) -> datetime:
    """A database timestamp (`YYYY-MM-DDTHH:MM:SSZ`) as an aware UTC datetime."""
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise HarnessError(f"timestamp {value!r} is not {TIME_FORMAT}") from exc


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(TIME_FORMAT)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class StateTotals(_Model):
    """How many of a campaign's attempts are in each state."""

    total: int
    pending: int
    running: int
    done: int


class CampaignSummary(_Model):
    """One campaign as the campaigns list shows it."""

    id: int
    status: str
    reason: str
    pipeline: str
    model: str
    temperatures: list[float]
    seeds: list[int]
    workers: int
    nodes: int = 0
    """The alive cluster nodes its last job on a Ray cluster saw; 0 when it ran locally."""
    created_at: str
    created_by: str
    totals: StateTotals


class Progress(_Model):
    """Progress over a set of attempts: one package, or the whole campaign."""

    total: int
    running: int
    done: int
    outcomes: dict[Outcome, int]
    finished_in_window: int
    throughput_per_min: float | None
    eta_s: float | None

    @property
    def resolved(self) -> int:
        return self.outcomes["resolved"]

    @property
    def remaining(self) -> int:
        return self.total - self.done

    @property
    def resolved_rate(self) -> float | None:
        """resolved / (done − unusable); None when no usable attempt is done."""
        usable = self.done - self.outcomes["unusable"]
        return self.resolved / usable if usable else None


class PackageProgress(_Model):
    """One package of a campaign, named by its label (`engine.intake.label`)."""

    digest: str
    label: str
    progress: Progress


class CampaignProgress(_Model):
    """A campaign's progress per package (in attempt order) and overall."""

    campaign_id: int
    packages: list[PackageProgress]
    overall: Progress
    window_start: str | None
    window_end: str | None


class WorkerLine(_Model):
    """What one worker slot is doing; `elapsed_s` counts from the attempt's start, or from the
    stage change when the worker holds no attempt."""

    slot: int
    pid: int | None
    stage: str
    attempt_id: int | None
    task: str
    package_name: str | None
    since: str
    elapsed_s: float
    node_id: str | None = None
    """The cluster node running the slot's order (None: a local worker, or nothing in flight)."""


class NodeLine(_Model):
    """A cluster node as a campaign on it last saw it, with how many of its orders it runs."""

    node_id: str
    address: str
    cpus: float
    alive: bool
    running: int


class AttemptRow(_Model):
    """One line of the attempt list."""

    id: int
    package_name: str | None
    sha: str
    task: str | None
    temperature: float | None
    seed: int | None
    state: str
    outcome: str | None
    reason: str | None
    f2p_passed: int | None
    f2p_total: int | None
    duration_s: float | None
    file_recall: float | None


class ArtifactText(_Model):
    """One artifact file of an attempt: its text up to the cap, or why there is none."""

    name: str
    path: str | None
    text: str | None
    size: int | None
    truncated: bool
    missing: str | None


class AttemptDetail(_Model):
    """Everything the drill-down shows for one attempt."""

    row: dict[str, Any]
    alignment: dict[str, float | None]
    plan: Plan | None
    plan_error: str | None
    artifacts: dict[str, ArtifactText]


def campaign_summaries(ws: Workspace) -> list[CampaignSummary]:
    """Every campaign, newest first, with its attempts counted by state."""
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, state, count in ws.db.execute(
        "SELECT campaign_id, state, COUNT(*) FROM attempts GROUP BY campaign_id, state"
    ):
        counts.setdefault(campaign_id, {})[state] = count
    nodes = dict(
        ws.db.execute(
            "SELECT campaign_id, SUM(alive) FROM harness_nodes GROUP BY campaign_id"
        ).fetchall()
    )
    summaries = []
    for row in ws.db.execute(
        "SELECT id, status, reason, spec_json, created_at, created_by FROM campaigns "
        "ORDER BY id DESC"
    ).fetchall():
        campaign_id, status, reason, spec_json, created_at, created_by = row
        spec = _spec(campaign_id, spec_json)
        by_state = counts.get(campaign_id, {})
        summaries.append(
            CampaignSummary(
                id=campaign_id,
                status=status,
                reason=reason or "",
                pipeline=spec.pipeline,
                model=spec.model,
                temperatures=spec.temperatures,
                seeds=spec.seeds,
                workers=spec.workers,
                nodes=nodes.get(campaign_id) or 0,
                created_at=created_at,
                created_by=created_by or "",
                totals=StateTotals(
                    total=sum(by_state.values()),
                    pending=by_state.get("pending", 0),
                    running=by_state.get("running", 0),
                    done=by_state.get("done", 0),
                ),
            )
        )
    return summaries


def _spec(campaign_id: int, spec_json: str) -> CampaignSpec:
    try:
        data = json.loads(spec_json)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"campaign {campaign_id}: spec_json is not JSON: {exc}") from exc
    return read_spec(data)


def package_progress(ws: Workspace, campaign_id: int, now: datetime) -> CampaignProgress:
    """The campaign's progress per package and overall, with throughput and ETA at `now`."""
    counts: dict[str, dict[tuple[str, str | None], int]] = {}
    first_id: dict[str, int] = {}
    for digest, state, outcome, count, min_id in ws.db.execute(
        "SELECT package_digest, state, outcome, COUNT(*), MIN(id) FROM attempts "
        "WHERE campaign_id = ? GROUP BY package_digest, state, outcome",
        [campaign_id],
    ):
        counts.setdefault(digest, {})[(state, outcome)] = count
        first_id[digest] = min(first_id.get(digest, min_id), min_id)
    window = _throughput_window(ws, campaign_id, now)
    finished = _finished_in(ws, campaign_id, window) if window else {}
    minutes = (window[1] - window[0]).total_seconds() / 60 if window else None
    order = sorted(counts, key=first_id.__getitem__)
    labels = package_labels(ws)
    packages = [
        PackageProgress(
            digest=digest,
            label=labels.get(digest)
            or package_label(None, digest, _package_name(ws, first_id[digest])),
            progress=_progress(counts[digest], finished.get(digest, 0), minutes),
        )
        for digest in order
    ]
    merged: dict[tuple[str, str | None], int] = {}
    for by_key in counts.values():
        for key, count in by_key.items():
            merged[key] = merged.get(key, 0) + count
    return CampaignProgress(
        campaign_id=campaign_id,
        packages=packages,
        overall=_progress(merged, sum(finished.values()), minutes),
        window_start=format_time(window[0]) if window else None,
        window_end=format_time(window[1]) if window else None,
    )


def _progress(
    counts: dict[tuple[str, str | None], int], finished: int, minutes: float | None
) -> Progress:
    done = sum(n for (state, _), n in counts.items() if state == "done")
    total = sum(counts.values())
    throughput = finished / minutes if minutes else None
    return Progress(
        total=total,
        running=sum(n for (state, _), n in counts.items() if state == "running"),
        done=done,
        outcomes={
            outcome: sum(n for (state, o), n in counts.items() if state == "done" and o == outcome)
            for outcome in OUTCOMES
        },
        finished_in_window=finished,
        throughput_per_min=throughput,
        eta_s=(total - done) / throughput * 60 if throughput else None,
    )


def _throughput_window(
    ws: Workspace, campaign_id: int, now: datetime
) -> tuple[datetime, datetime] | None:
    """The last 10 minutes of the campaign's newest job, or all of it when shorter."""
    job = ws.db.execute(
        "SELECT started_at, ended_at FROM jobs WHERE kind = ? AND ref_id = ? "
        "ORDER BY id DESC LIMIT 1",
        [JOB_KIND, campaign_id],
    ).fetchone()
    if job is None:
        return None
    started, ended = parse_time(job[0]), parse_time(job[1]) if job[1] else now
    start = max(started, ended - THROUGHPUT_WINDOW)
    return (start, ended) if ended > start else None


def _finished_in(
    ws: Workspace, campaign_id: int, window: tuple[datetime, datetime]
) -> dict[str, int]:
    # `+campaign_id` keeps SQLite on the finished_at index: the window holds few attempts, the
    # campaign may hold 100,000.
    rows = ws.db.execute(
        "SELECT package_digest, COUNT(*) FROM attempts WHERE +campaign_id = ? "
        "AND finished_at >= ? AND finished_at <= ? GROUP BY package_digest",
        [campaign_id, format_time(window[0]), format_time(window[1])],
    )
    return dict(rows.fetchall())


def _package_name(ws: Workspace, attempt_id: int) -> str | None:
    return ws.db.execute("SELECT package_name FROM attempts WHERE id = ?", [attempt_id]).fetchone()[
        0
    ]


def worker_lines(ws: Workspace, campaign_id: int, now: datetime) -> list[WorkerLine]:
    """One line per worker slot of the campaign, by slot."""
    rows = ws.db.execute(
        "SELECT w.slot, w.pid, w.stage, w.attempt_id, w.detail, w.updated_at, "
        "a.started_at, a.package_name, a.task, w.node_id FROM harness_workers w "
        "LEFT JOIN attempts a ON a.id = w.attempt_id "
        "WHERE w.campaign_id = ? ORDER BY w.slot",
        [campaign_id],
    ).fetchall()
    lines = []
    for slot, pid, stage, attempt_id, detail, updated_at, started_at, package, task, node in rows:
        since = started_at if attempt_id is not None and started_at else updated_at
        lines.append(
            WorkerLine(
                slot=slot,
                pid=pid,
                stage=stage,
                attempt_id=attempt_id,
                task=task or detail or "",
                package_name=package,
                since=since,
                elapsed_s=max(0.0, (now - parse_time(since)).total_seconds()),
                node_id=node,
            )
        )
    return lines


def node_lines(ws: Workspace, campaign_id: int) -> list[NodeLine]:
    """The cluster nodes the campaign's job last saw, alive first, each with its running
    orders; empty for a campaign run by local workers."""
    rows = ws.db.execute(
        "SELECT n.node_id, n.address, n.cpus, n.alive, "
        "(SELECT COUNT(*) FROM harness_workers w WHERE w.campaign_id = n.campaign_id "
        "AND w.node_id = n.node_id AND w.stage NOT IN ('idle', 'exited')) "
        "FROM harness_nodes n WHERE n.campaign_id = ? "
        "ORDER BY n.alive DESC, n.address, n.node_id",
        [campaign_id],
    ).fetchall()
    return [
        NodeLine(node_id=node, address=address, cpus=cpus or 0.0, alive=bool(alive), running=n)
        for node, address, cpus, alive, n in rows
    ]


def _where(campaign_id: int, outcome: Outcome | None) -> tuple[str, list[Any]]:
    if outcome is None:
        return "campaign_id = ?", [campaign_id]
    if outcome not in OUTCOMES:
        raise HarnessError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    return "campaign_id = ? AND outcome = ?", [campaign_id, outcome]


def attempt_count(ws: Workspace, campaign_id: int, outcome: Outcome | None = None) -> int:
    """How many attempts the campaign has (with `outcome`, when given)."""
    where, args = _where(campaign_id, outcome)
    return ws.db.execute(f"SELECT COUNT(*) FROM attempts WHERE {where}", args).fetchone()[0]


def attempt_page(
    ws: Workspace, campaign_id: int, offset: int, limit: int, outcome: Outcome | None = None
) -> list[AttemptRow]:
    """`limit` attempts from position `offset` in id order (with `outcome`, when given).

    The ids are picked from an index alone, then only the page's rows are read.
    """
    if offset < 0 or limit < 1:
        raise HarnessError(f"bad page: offset {offset}, limit {limit}")
    where, args = _where(campaign_id, outcome)
    rows = ws.db.execute(
        f"SELECT {_ROW_COLUMNS} FROM attempts WHERE id IN "
        f"(SELECT id FROM attempts WHERE {where} ORDER BY id LIMIT ? OFFSET ?) ORDER BY id",
        [*args, limit, offset],
    )
    names = [d[0] for d in rows.description]
    return [AttemptRow(**dict(zip(names, row, strict=True))) for row in rows.fetchall()]


def attempt_detail(ws: Workspace, attempt_id: int) -> AttemptDetail:
    """The attempt's row, its plan parsed and its artifact files read (each up to a cap)."""
    cursor = ws.db.execute("SELECT * FROM attempts WHERE id = ?", [attempt_id])
    found = cursor.fetchone()
    if found is None:
        raise HarnessError(f"there is no attempt {attempt_id}")
    row = dict(zip([d[0] for d in cursor.description], found, strict=True))
    plan, plan_error = _plan(row["plan_json"])
    folder = row["artifacts"]
    return AttemptDetail(
        row=row,
        alignment={key: row[key] for key in ALIGNMENT_KEYS},
        plan=plan,
        plan_error=plan_error,
        artifacts={name: _artifact(ws.root, folder, name) for name in ARTIFACT_FILES},
    )


def _plan(plan_json: str | None) -> tuple[Plan | None, str | None]:
    if plan_json is None:
        return None, None
    try:
        return Plan.model_validate_json(plan_json), None
    except ValidationError as exc:
        return None, f"the recorded plan does not parse: {exc}"


def _artifact(root: Path, folder: str | None, name: str) -> ArtifactText:
    if folder is None:
        return ArtifactText(
            name=name,
            path=None,
            text=None,
            size=None,
            truncated=False,
            missing="the attempt has no artifacts folder yet",
        )
    rel = f"{folder}/{name}"
    try:
        with (root / rel).open("rb") as handle:
            data = handle.read(ARTIFACT_CAP_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        return ArtifactText(
            name=name, path=rel, text=None, size=None, truncated=False, missing=f"{rel} is missing"
        )
    except OSError as exc:
        return ArtifactText(
            name=name,
            path=rel,
            text=None,
            size=None,
            truncated=False,
            missing=f"{rel} cannot be read: {exc.strerror}",
        )
    return ArtifactText(
        name=name,
        path=rel,
        # Test output and raw responses may hold any bytes; show them, marking what is not UTF-8.
        text=data[:ARTIFACT_CAP_BYTES].decode("utf-8", errors="replace"),
        size=size,
        truncated=len(data) > ARTIFACT_CAP_BYTES,
        missing=None,
    )
