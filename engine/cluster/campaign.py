"""A campaign's job on a Ray cluster: the attempts run on the nodes, everything is recorded on
the head exactly as local workers record it.

The head claims an attempt only when it sends it, one order per place the alive nodes have
(`[harness.ray] cpus_per_task` each). A commit with no validation yet is validated first: one
order per commit (its other attempts wait), unless it needs no run (a test-only commit, or one
another package of the repository validated), which the head records itself, as it runs an
attempt at an unusable task itself (nothing to run). A node lost mid-order loses nothing: the
attempt goes back to pending and is sent again, once; lost a second time it is recorded as an
`error` naming both nodes, so one attempt that kills nodes cannot take the cluster down with
it. An order that fails on its node (another install there, a damaged transfer, a bug) stops
new orders and fails the campaign with the reason, once the others have landed. Pause, stop and
resume are the local ones: the campaign's status is read every second, and SIGTERM cancels every
order in flight.
"""

import ipaddress
import os
import time
from typing import Any
from urllib.parse import urlsplit

from engine.cluster.errors import ClusterError
from engine.cluster.fanout import Fanout, Landed, cluster_nodes
from engine.cluster.landing import land_attempt, land_validation
from engine.cluster.orders import AttemptDone, ValidationDone
from engine.core.errors import CraError
from engine.core.jobs import heartbeat
from engine.core.staged import remove_tree
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.attempts import (
    AttemptRecord,
    attempt_dir,
    commit_lock,
    perform_attempt,
    record_attempt,
)
from engine.harness.campaigns import campaign_row, requeue_attempt, set_status
from engine.harness.package import CorpusPackage, load_package
from engine.harness.supplement import validation_without_run
from engine.harness.task_validation import find_commit

POLL_S = 1.0


def run_campaign_on_cluster(ws: Workspace, campaign_id: int, job_id: int) -> list[str]:
    """Run the campaign's pending attempts on the cluster until none is left or it pauses or
    stops; returns what failed (empty when nothing did)."""
    try:
        fanout = Fanout(ws)
    except ClusterError as exc:
        return [str(exc)]
    if problem := unreachable_endpoint(ws, campaign_id, fanout):
        fanout.close()
        return [problem]
    run = _ClusterCampaign(ws, campaign_id, job_id, fanout)
    try:
        run.run()
    finally:
        fanout.close()
        run.exited()
    return [run.failure] if run.failure else []


def unreachable_endpoint(ws: Workspace, campaign_id: int, fanout: Fanout) -> str | None:
    """Why the openai pipeline's endpoint cannot serve the nodes, or None: a loopback address
    names each node itself, so on a node of another machine it reaches no server (or another
    one)."""
    if campaign_row(ws, campaign_id).spec.pipeline != "openai":
        return None
    url = ws.config.harness.openai.base_url
    host = urlsplit(url).hostname or ""
    if not (host == "localhost" or _is_loopback(host)):
        return None
    others = fanout.other_machines()
    if not others:
        return None
    return (
        f"[harness.openai] base_url {url} is this machine's loopback address, which the nodes "
        f"at {', '.join(others)} would read as their own: give the serving machine's address"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _ClusterCampaign:
    def __init__(self, ws: Workspace, campaign_id: int, job_id: int, fanout: Fanout) -> None:
        self.ws = ws
        self.campaign_id = campaign_id
        self.job_id = job_id
        self.fanout = fanout
        self.validating: set[str] = set()
        self.losses: dict[tuple[str, str], list[str]] = {}
        self.failure: str | None = None
        self.packages: dict[str, CorpusPackage] = {}
        self.slots: set[int] = set()

    def run(self) -> None:
        with self.ws.db.conn:
            self.ws.db.execute(
                "DELETE FROM harness_workers WHERE campaign_id = ?", [self.campaign_id]
            )
        status, looked = "running", -POLL_S
        while True:
            if time.monotonic() - looked >= POLL_S:
                heartbeat(self.ws, self.job_id)
                status = campaign_row(self.ws, self.campaign_id).status
                self._publish()
                looked = time.monotonic()
            if status == "stopping" or self.fanout.stop_requested:
                self._stop(status)
                return
            sending = status == "running" and self.failure is None
            if sending:
                try:
                    self._fill()
                except ClusterError as exc:
                    self._fail(str(exc))
                    sending = False
            else:
                self.fanout.cancel_unstarted()
            if not self.fanout.flights and not (sending and self._pending()):
                break
            for landed in self.fanout.wait(POLL_S):
                self._land(landed)

    def _stop(self, status: str) -> None:
        """Cancel every order; a SIGTERM not sent by `stop_campaign` marks the campaign
        stopping as it would."""
        self.fanout.cancel()
        if status != "stopping":
            set_status(self.ws, self.campaign_id, "stopping", "stopped: the job received SIGTERM")

    def _pending(self) -> int:
        return self.ws.db.execute(
            "SELECT COUNT(*) FROM attempts WHERE campaign_id = ? AND state = 'pending'",
            [self.campaign_id],
        ).fetchone()[0]

    def _package(self, digest: str) -> CorpusPackage:
        if digest not in self.packages:
            self.packages[digest] = load_package(self.ws, digest)
        return self.packages[digest]

    def _task_row(self, digest: str, sha: str) -> dict[str, Any] | None:
        rows = self.ws.db["tasks"].rows_where("package_digest = ? AND sha = ?", [digest, sha])
        return next(rows, None)

    def _fill(self) -> None:
        """Keep every place on the nodes busy, and one order more per node queued in Ray, so a
        node that finishes an order starts the next at once instead of waiting for the head."""
        alive = sum(node.alive for node in self.fanout.nodes())
        free = self.fanout.capacity() + alive - len(self.fanout.flights)
        if free <= 0:
            return
        skip = sorted(self.validating)
        marks = ", ".join("?" for _ in skip)
        rows = list(
            self.ws.db["attempts"].rows_where(
                "campaign_id = ? AND state = 'pending'"
                + (f" AND sha NOT IN ({marks})" if skip else ""),
                [self.campaign_id, *skip],
                order_by="id",
                limit=free,
            )
        )
        for row in rows:
            if free <= 0:
                break
            free -= self._send(row)

    def _send(self, row: dict[str, Any]) -> int:
        """Send `row`'s attempt, or its commit's validation first; how many places it took."""
        digest, sha = row["package_digest"], row["sha"]
        if sha in self.validating:
            return 0
        package = self._package(digest)
        task_row = self._task_row(digest, sha)
        if task_row is None:
            with commit_lock(self.ws, sha):
                recorded = validation_without_run(self.ws, package, find_commit(package, sha))
            if recorded is None:
                self.fanout.send_validation(self.ws, package, sha, row["task"])
                self.validating.add(sha)
                return 1
            task_row = self._task_row(digest, sha)
            assert task_row is not None
        if task_row["status"] != "usable":
            attempt = self._claim(row, None)
            out = attempt_dir(self.ws, attempt)
            record_attempt(
                self.ws, attempt["id"], out, perform_attempt(self.ws, attempt, out, _quiet)
            )
            return 0
        flight = self.fanout.send_attempt(self.ws, package, row, task_row)
        self._claim(row, flight.slot)
        return 1

    def _claim(self, row: dict[str, Any], slot: int | None) -> dict[str, Any]:
        """Mark the attempt running: by this job (its pid), in `slot` when a node runs it."""
        claimed = {
            "state": "running",
            "worker": slot,
            "pid": os.getpid(),
            "started_at": utc_now(),
            "reason": None,
        }
        with self.ws.db.conn:
            self.ws.db.table("attempts").update(row["id"], claimed)
        return {**row, **claimed}

    def _land(self, landed: Landed) -> None:
        flight = landed.flight
        if landed.cancelled:
            if flight.kind == "attempt":
                requeue_attempt(self.ws, flight.subject["id"], None)
            else:
                self.validating.discard(flight.subject["sha"])
            return
        try:
            if flight.kind == "attempt":
                self._land_attempt(landed)
            else:
                self._land_validation(landed)
        except CraError as exc:
            if flight.kind == "attempt":
                requeue_attempt(self.ws, flight.subject["id"], f"not recorded: {exc}")
            self._fail(f"the {flight.kind} of {flight.label}: {exc}")

    def _land_attempt(self, landed: Landed) -> None:
        attempt = landed.flight.subject
        if isinstance(landed.result, AttemptDone):
            land_attempt(self.ws, attempt, landed.result)
        elif landed.lost is not None:
            self._lost_attempt(attempt, landed.lost)
        else:
            requeue_attempt(self.ws, attempt["id"], f"not run: it failed {landed.failed}")
            self._fail(f"attempt {attempt['id']} ({attempt['task']}) failed {landed.failed}")

    def _lost_attempt(self, attempt: dict[str, Any], lost: str) -> None:
        losses = self.losses.setdefault(("attempt", str(attempt["id"])), [])
        losses.append(lost)
        if len(losses) == 1:
            requeue_attempt(self.ws, attempt["id"], f"{lost} while it ran; redone")
            print(f"attempt {attempt['id']} ({attempt['task']}): {lost}; redone", flush=True)
            return
        reason = (
            f"its node was lost twice while it ran ({'; '.join(losses)}); not redone a third time"
        )
        print(f"attempt {attempt['id']} ({attempt['task']}): {reason}", flush=True)
        out = attempt_dir(self.ws, attempt)
        if out.exists():
            remove_tree(out)
        out.mkdir(parents=True)
        record = _unfinished(reason)
        (out / "report.json").write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
        record_attempt(self.ws, attempt["id"], out, record)

    def _land_validation(self, landed: Landed) -> None:
        sha = landed.flight.subject["sha"]
        self.validating.discard(sha)
        if isinstance(landed.result, ValidationDone):
            land_validation(self.ws, landed.result)
            return
        if landed.failed is not None:
            self._fail(f"the validation of commit {sha[:12]} failed {landed.failed}")
            return
        losses = self.losses.setdefault(("validation", sha), [])
        losses.append(landed.lost or "")
        if len(losses) == 1:
            print(f"validation of commit {sha[:12]}: {landed.lost}; redone", flush=True)
            return
        self._fail(
            f"the validation of commit {sha[:12]} lost its node twice ({'; '.join(losses)}); "
            "start the campaign again to retry it"
        )

    def _fail(self, reason: str) -> None:
        print(f"no new orders: {reason}", flush=True)
        if self.failure is None:
            self.failure = reason

    def _publish(self) -> None:
        """The pane's view: one row per slot (idle when nothing is in it) and one per node."""
        now = utc_now()
        rows = []
        busy = set()
        for flight in self.fanout.in_flight():
            busy.add(flight.slot)
            rows.append(
                {
                    "campaign_id": self.campaign_id,
                    "slot": flight.slot,
                    "pid": flight.node.pid if flight.node else None,
                    "stage": _shown_stage(flight.stage, flight.kind),
                    "attempt_id": flight.subject["id"] if flight.kind == "attempt" else None,
                    "detail": flight.label,
                    "node_id": flight.node.node_id if flight.node else None,
                    "node_address": flight.node.address if flight.node else None,
                    "updated_at": now,
                }
            )
        rows += [_idle(self.campaign_id, slot, "idle", now) for slot in self.slots - busy]
        self.slots |= busy
        nodes = [
            {
                "campaign_id": self.campaign_id,
                "node_id": node.node_id,
                "address": node.address,
                "cpus": node.cpus,
                "alive": int(node.alive),
                "updated_at": now,
            }
            for node in cluster_nodes()
        ]
        with self.ws.db.conn:
            self.ws.db.table("harness_workers").upsert_all(rows, pk=("campaign_id", "slot"))
            self.ws.db.table("harness_nodes").upsert_all(nodes, pk=("campaign_id", "node_id"))

    def exited(self) -> None:
        """Every slot's row says the job's workers are gone."""
        now = utc_now()
        rows = [_idle(self.campaign_id, slot, "exited", now) for slot in self.slots]
        with self.ws.db.conn:
            self.ws.db.table("harness_workers").upsert_all(rows, pk=("campaign_id", "slot"))


def _idle(campaign_id: int, slot: int, stage: str, now: str) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "slot": slot,
        "pid": None,
        "stage": stage,
        "attempt_id": None,
        "detail": "",
        "node_id": None,
        "node_address": None,
        "updated_at": now,
    }


def _shown_stage(stage: str, kind: str) -> str:
    """A slot's stage as the pane shows it: an order no worker has started is `queued`."""
    if stage in ("sent", "taken back"):
        return "queued"
    return stage if kind == "attempt" else "gold"


def _quiet(stage: str) -> None:
    """Stages of an attempt the head runs itself (an unusable task's) are not shown."""


def _unfinished(reason: str) -> AttemptRecord:
    return AttemptRecord(
        outcome="error",
        reason=reason,
        duration_s=0.0,
        test_duration_s=0.0,
        prompt_tokens=0,
        completion_tokens=0,
        f2p_passed=0,
        f2p_total=0,
        p2p_passed=0,
        p2p_total=0,
        alignment=None,
        plan_json=None,
    )
