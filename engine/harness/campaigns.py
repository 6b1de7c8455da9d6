"""Harness campaigns: many attempts over approved packages, run as a background job.

A campaign is created with every attempt it will make, one row per (package, commit, pipeline,
model, temperature, seed), all `pending`; its commits are each package's, or those its
`selection` names (`engine.harness.selection`). The gold pipeline is deterministic, so a gold
campaign runs one temperature: more would repeat the same attempt. Starting it spawns a job process
(`engine.runners.campaign`), which starts the worker processes; a worker claims one pending
attempt at a time in a transaction, so two workers never run the same attempt. The job survives
the console closing. Restarting a campaign skips `done` attempts and redoes those a dead worker
left `running`.

Campaign status: pending → running → done | failed; `pause` lets running attempts finish and
then stops (paused); `stop` kills the workers at once (stopped, running attempts redone on the
next start); a job that vanished without saying so leaves the campaign `interrupted`.
"""

import json
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.core.db import inserted_id
from engine.core.errors import validation_lines
from engine.core.jobs import LIVE, JobLock, job_lock, latest_job, settle, terminate_job
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.package import HarnessError, load_package
from engine.harness.pipeline import PipelineName
from engine.harness.selection import CommitSelection, select_commits
from engine.harness.task_validation import task_name

JOB_KIND = "campaign"
ACTIVE = ("running", "pausing", "stopping")
STARTABLE = ("pending", "paused", "stopped", "interrupted", "failed")


class CampaignSpec(BaseModel):
    """What a campaign runs: packages (manifest digests), pipeline, model and the sweep."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    packages: list[str] = Field(min_length=1)
    pipeline: PipelineName
    model: str = Field(min_length=1)
    temperatures: list[float] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    workers: int = Field(default=2, ge=1, le=64)
    selection: CommitSelection = Field(default_factory=CommitSelection)

    @field_validator("temperatures")
    @classmethod
    def _temperature_range(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0 <= value <= 2:
                raise ValueError(f"temperature {value} is outside 0–2")
        if len(set(values)) != len(values):
            raise ValueError(f"temperatures repeat: {values}")
        return values

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError(f"seeds repeat: {values}")
        return values


GOLD_TEMPERATURES = [0.0]
SAMPLED_TEMPERATURES = [0.3, 0.6, 0.9]


def default_temperatures(pipeline: str) -> list[float]:
    """A new campaign's temperatures: one for the deterministic gold pipeline, a sweep else."""
    return GOLD_TEMPERATURES if pipeline == "gold" else SAMPLED_TEMPERATURES


def _one_gold_temperature(spec: CampaignSpec) -> None:
    if spec.pipeline == "gold" and len(spec.temperatures) > 1:
        raise HarnessError(
            f"campaign temperatures {spec.temperatures}: the gold pipeline gives the same answer "
            "at every temperature; give one"
        )


def read_spec(data: dict[str, Any]) -> CampaignSpec:
    """A stored campaign's spec, as it was accepted (an older gold campaign may sweep several
    temperatures); a bad field is a HarnessError naming it."""
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise HarnessError(validation_lines("campaign", exc)) from exc


def parse_spec(data: dict[str, Any]) -> CampaignSpec:
    """A validated spec for a new campaign; a bad field is a HarnessError naming it."""
    spec = read_spec(data)
    _one_gold_temperature(spec)
    return spec


def test_data_commits(ws: Workspace, spec: CampaignSpec) -> int:
    """How many of the commits `spec` selects are test-only: campaigns make no attempt at them
    (test-plan data, no failing test to fix)."""
    packages = [load_package(ws, digest) for digest in dict.fromkeys(spec.packages)]
    chosen = select_commits(packages, spec.selection)
    return sum(
        commit.task_class == "test_data" for commits in chosen.values() for commit in commits
    )


def create_campaign(ws: Workspace, spec: CampaignSpec, operator: str) -> int:
    """Record the campaign and every attempt it will make (none at test-only commits); returns
    the campaign id."""
    _one_gold_temperature(spec)
    if spec.pipeline == "command" and not ws.config.harness.command.argv:
        raise HarnessError(
            f"pipeline 'command' has no planner to run: set [harness.command] argv in "
            f"{ws.config_path}"
        )
    packages = [load_package(ws, digest) for digest in dict.fromkeys(spec.packages)]
    chosen = select_commits(packages, spec.selection)
    if not any(c.task_class != "test_data" for commits in chosen.values() for c in commits):
        raise HarnessError(
            "the campaign's commit selection leaves no commit to attempt (test-only commits "
            "get no attempts)"
        )
    now = utc_now()
    with ws.db.conn:
        campaign_id = inserted_id(
            ws.db.table("campaigns").insert(
                {
                    "created_at": now,
                    "created_by": operator,
                    "spec_json": spec.model_dump_json(),
                    "status": "pending",
                    "reason": "",
                    "updated_at": now,
                }
            )
        )
        rows = (
            {
                "campaign_id": campaign_id,
                "package_digest": package.digest,
                "package_name": package.manifest.name,
                "sha": commit.sha,
                "task": task_name(package.digest, commit.sha),
                "pipeline": spec.pipeline,
                "model": spec.model,
                "temperature": temperature,
                "seed": seed,
                "state": "pending",
            }
            for package in packages
            for commit in chosen[package.digest]
            if commit.task_class != "test_data"
            for temperature in spec.temperatures
            for seed in spec.seeds
        )
        ws.db.table("attempts").insert_all(rows, batch_size=1000)
    return campaign_id


class Campaign(BaseModel):
    """One row of `campaigns`: who made it, its spec, its status and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    created_at: str
    created_by: str | None
    spec_json: str
    status: str
    reason: str | None
    updated_at: str | None

    @property
    def spec(self) -> CampaignSpec:
        """What the campaign runs, as recorded when it was made."""
        return CampaignSpec.model_validate(json.loads(self.spec_json))


def campaign_row(ws: Workspace, campaign_id: int) -> Campaign:
    """Campaign `campaign_id`; refused when there is none."""
    rows = ws.db.table("campaigns").rows_where("id = ?", [campaign_id])
    campaign = next((Campaign.model_validate(row) for row in rows), None)
    if campaign is None:
        raise HarnessError(f"there is no campaign {campaign_id}")
    return campaign


def set_status(ws: Workspace, campaign_id: int, status: str, reason: str = "") -> None:
    with ws.db.conn:
        ws.db.table("campaigns").update(
            campaign_id, {"status": status, "reason": reason, "updated_at": utc_now()}
        )


def requeue_running(ws: Workspace, campaign_id: int) -> int:
    """Put attempts left `running` by a dead worker back to `pending`; returns how many."""
    with ws.db.conn:
        cursor = ws.db.execute(
            "UPDATE attempts SET state = 'pending', worker = NULL, pid = NULL, "
            "started_at = NULL, reason = 'interrupted; redone on the next start' "
            "WHERE campaign_id = ? AND state = 'running'",
            [campaign_id],
        )
    return cursor.rowcount


def requeue_attempt(ws: Workspace, attempt_id: int, reason: str | None) -> None:
    """Put one running attempt back to `pending`, saying why (a cluster node was lost), or
    with no reason (an order taken back before it started)."""
    with ws.db.conn:
        ws.db.execute(
            "UPDATE attempts SET state = 'pending', worker = NULL, pid = NULL, "
            "started_at = NULL, reason = ? WHERE id = ? AND state = 'running'",
            [reason, attempt_id],
        )


def reconcile_campaigns(ws: Workspace) -> list[int]:
    """Mark campaigns whose job died without a word as interrupted; returns their ids."""
    return settle(ws, JOB_KIND, _reconcile)


def _reconcile(ws: Workspace, lock: JobLock) -> list[int]:
    found = []
    for row in ws.db["campaigns"].rows_where("status IN (?, ?, ?)", list(ACTIVE)):
        if lock.running(row["id"]) is not None:
            continue
        job = latest_job(ws, JOB_KIND, row["id"])
        if job is not None and job.status in LIVE:
            with ws.db.conn:
                ws.db.table("jobs").update(
                    job.id,
                    {"status": "killed", "ended_at": utc_now(), "reason": "process vanished"},
                )
        requeue_running(ws, row["id"])
        pid = job.pid if job else None
        set_status(ws, row["id"], "interrupted", f"its job (pid {pid}) ended without finishing")
        found.append(row["id"])
    return found


def start_campaign(ws: Workspace, campaign_id: int) -> int:
    """Start (or resume) the campaign's job; returns the job id.

    Refused while the campaign's job runs (or is being started by another process)."""
    with job_lock(ws, JOB_KIND) as lock:
        _reconcile(ws, lock)
        campaign = campaign_row(ws, campaign_id)
        if campaign.status == "done":
            raise HarnessError(f"campaign {campaign_id} is done; create a new one to run again")
        job = lock.running(campaign_id)
        if job is not None:
            raise HarnessError(
                f"campaign {campaign_id} is {campaign.status}: its job {job.id} (pid "
                f"{job.pid}) still runs; one job per campaign"
            )
        if campaign.status not in STARTABLE:
            raise HarnessError(f"campaign {campaign_id} is {campaign.status}; it cannot start now")
        requeue_running(ws, campaign_id)
        set_status(ws, campaign_id, "running")
        argv = [
            sys.executable,
            "-m",
            "engine.runners.campaign",
            str(ws.root),
            str(campaign_id),
        ]
        return lock.spawn(campaign_id, argv)


def pause_campaign(ws: Workspace, campaign_id: int) -> None:
    """Let running attempts finish, then stop claiming new ones."""
    with job_lock(ws, JOB_KIND):
        campaign = campaign_row(ws, campaign_id)
        if campaign.status != "running":
            raise HarnessError(f"campaign {campaign_id} is {campaign.status}, not running")
        set_status(ws, campaign_id, "pausing", "pausing after the running attempts")


def stop_campaign(ws: Workspace, campaign_id: int) -> None:
    """Stop now: the job kills its workers; running attempts are redone on the next start."""
    with job_lock(ws, JOB_KIND) as lock:
        campaign = campaign_row(ws, campaign_id)
        if campaign.status not in ACTIVE:
            raise HarnessError(f"campaign {campaign_id} is {campaign.status}; nothing to stop")
        set_status(ws, campaign_id, "stopping", "stopped by the operator")
        job = lock.running(campaign_id)
        if job is None or not terminate_job(job):
            requeue_running(ws, campaign_id)
            set_status(ws, campaign_id, "stopped", "stopped by the operator")
