"""The head's dispatcher on Ray: work orders out, results back, nodes watched.

The only module that imports `ray`. Every order is a Ray task reserving
`[harness.ray] cpus_per_task` CPUs, never retried by Ray (`max_retries=0`): the head decides what
a lost node means, so an attempt is redone exactly once (`engine.cluster.campaign`). A package's
transfer tar is put in the object store once per head process and handed to orders inside a
list, so Ray does not move it to a node unless the node asks (it fetches only a package it lacks).
Workers report their stage to a small actor pinned to the head's node, which the head reads back
for the Harness pane. Usage statistics are off: nothing leaves the cluster.
"""

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray.exceptions import (
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    RayTaskError,
    TaskCancelledError,
    WorkerCrashedError,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from engine.cluster.codeprint import code_digest
from engine.cluster.errors import ClusterError, NodeError
from engine.cluster.landing import pack_package
from engine.cluster.node import check_node, run_attempt_order, run_validation_order
from engine.cluster.orders import (
    AttemptDone,
    AttemptOrder,
    NodeName,
    PackageRef,
    ValidationDone,
    ValidationOrder,
)
from engine.core.workspace import Workspace
from engine.harness.package import CorpusPackage

LOST = (NodeDiedError, WorkerCrashedError, ObjectLostError, OutOfMemoryError)
"""How Ray says the node or worker under a task went away: the work is redone, not failed."""
NAMESPACE = "cra"


def _here() -> NodeName:
    return NodeName(
        node_id=ray.get_runtime_context().get_node_id(),
        address=ray.util.get_node_ip_address(),
        pid=os.getpid(),
    )


@ray.remote(num_cpus=0)
class StageBoard:
    """Where workers post their stage (fire and forget) and the head reads them back."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, NodeName]] = {}

    def report(self, key: str, stage: str, node: NodeName) -> None:
        self._seen[key] = (stage, node)

    def take(self) -> dict[str, tuple[str, NodeName]]:
        seen, self._seen = self._seen, {}
        return seen


def _reporter(board: Any, key: str, node: NodeName) -> Any:
    def on_stage(stage: str) -> None:
        board.report.remote(key, stage, node)

    on_stage("started")
    return on_stage


@ray.remote(max_retries=0)
def _run_attempt(order: AttemptOrder, payload: list[Any], board: Any, key: str) -> AttemptDone:
    node = _here()
    return run_attempt_order(order, lambda: ray.get(payload[0]), node, _reporter(board, key, node))


@ray.remote(max_retries=0)
def _run_validation(
    order: ValidationOrder, payload: list[Any], board: Any, key: str
) -> ValidationDone:
    node = _here()
    return run_validation_order(
        order, lambda: ray.get(payload[0]), node, _reporter(board, key, node)
    )


@ray.remote(max_retries=0, num_cpus=0)
def _check(head_code: str) -> NodeName:
    node = _here()
    check_node(node, head_code)
    return node


def connect(address: str) -> None:
    """Join the Ray cluster at `address` as a driver (once per process)."""
    if ray.is_initialized():
        return
    own = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address} ([harness.ray] address): {exc}; start the "
            "head with `ray start --head` on this machine (docs/cluster.md)"
        ) from exc
    # ray.init makes SIGTERM exit the process, and an exception raised from a handler inside
    # Ray's calls surfaces as a SystemError: SIGTERM only notes the request, which the driver's
    # loop reads (`Fanout.stop_requested`), and the process's own handler returns on leaving.
    _TERM.clear()
    _OWN_HANDLERS.append(own)
    signal.signal(signal.SIGTERM, _note_term)


_TERM = threading.Event()
_OWN_HANDLERS: list[Any] = []


def _note_term(signum: int, frame: FrameType | None) -> None:
    _TERM.set()


def disconnect() -> None:
    """Leave the cluster; Ray cancels the work this driver still owns."""
    if ray.is_initialized():
        ray.shutdown()
    if _OWN_HANDLERS:
        signal.signal(signal.SIGTERM, _OWN_HANDLERS.pop())


@dataclass(frozen=True)
class ClusterNode:
    """A node as the head sees it: Ray's id, its address, its CPUs, whether it is alive."""

    node_id: str
    address: str
    cpus: float
    alive: bool


def cluster_nodes() -> list[ClusterNode]:
    """Every node the cluster knows, alive or lost, by address."""
    nodes = [
        ClusterNode(
            node_id=node["NodeID"],
            address=node["NodeManagerAddress"],
            cpus=float(node["Resources"].get("CPU", 0.0)) if node["Alive"] else 0.0,
            alive=bool(node["Alive"]),
        )
        for node in ray.nodes()
    ]
    return sorted(nodes, key=lambda n: (not n.alive, n.address, n.node_id))


def check_nodes(timeout_s: float = 120.0) -> list[tuple[ClusterNode, str | None]]:
    """Each alive node with what stops it working (None: ready): the head's code, a sandbox
    that isolates. Runs a check on each node in turn."""
    checked: list[tuple[ClusterNode, str | None]] = []
    for node in cluster_nodes():
        if not node.alive:
            continue
        ref = _check.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        ).remote(code_digest())
        try:
            ray.get(ref, timeout=timeout_s)
            checked.append((node, None))
        except RayTaskError as exc:
            checked.append((node, _cause_text(exc)))
        except (ray.exceptions.GetTimeoutError, *LOST) as exc:
            checked.append((node, f"no answer ({type(exc).__name__})"))
    return checked


def _cause_text(exc: RayTaskError) -> str:
    cause = exc.cause
    if isinstance(cause, NodeError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"


@dataclass
class Flight:
    """One order in flight: its slot (for the pane), what it is, and what its worker said."""

    key: str
    slot: int
    kind: Literal["attempt", "validation"]
    subject: dict[str, Any]
    label: str
    sent: float = field(default_factory=time.monotonic)
    stage: str = "sent"
    node: NodeName | None = None


@dataclass(frozen=True)
class Landed:
    """An order that ended: its result, or why there is none (its node was lost, it failed, it
    was cancelled before it started)."""

    flight: Flight
    result: AttemptDone | ValidationDone | None = None
    lost: str | None = None
    failed: str | None = None
    cancelled: bool = False
    """Cancelled before it ran (`cancel_unstarted`): nothing of it happened."""


class Fanout:
    """Orders in flight on the cluster for one head process."""

    def __init__(self, ws: Workspace) -> None:
        settings = ws.config.harness.ray
        connect(settings.address)
        self.cpus_per_task = settings.cpus_per_task
        self.config_json = ws.config.model_dump_json()
        self.code = code_digest()
        here = ray.get_runtime_context().get_node_id()
        self.board = StageBoard.options(  # type: ignore[attr-defined]
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
        ).remote()
        self.flights: dict[Any, Flight] = {}
        self._packages: dict[str, tuple[PackageRef, Any]] = {}
        self._sent = 0
        self._nodes: list[ClusterNode] = []
        self._nodes_at = -1.0

    def nodes(self) -> list[ClusterNode]:
        """The cluster's nodes, asked of Ray at most once a second."""
        now = time.monotonic()
        if now - self._nodes_at >= 1.0:
            self._nodes, self._nodes_at = cluster_nodes(), now
        return self._nodes

    def capacity(self) -> int:
        """How many orders the alive nodes can run at once."""
        nodes = [node for node in self.nodes() if node.alive]
        fits = [int(node.cpus // self.cpus_per_task) for node in nodes]
        if not any(fits):
            cpus = ", ".join(f"{node.address} {node.cpus:g}" for node in nodes) or "no node alive"
            raise ClusterError(
                f"no node has the {self.cpus_per_task:g} CPUs one order reserves ([harness.ray] "
                f"cpus_per_task; CPUs per node: {cpus})"
            )
        return sum(fits)

    def other_machines(self) -> list[str]:
        """The addresses of alive nodes that are not the head's machine."""
        here = ray.util.get_node_ip_address()
        return sorted({n.address for n in cluster_nodes() if n.alive and n.address != here})

    def _payload(self, ws: Workspace, package: CorpusPackage) -> tuple[PackageRef, Any]:
        if package.digest not in self._packages:
            ref, payload = pack_package(ws, package)
            self._packages[package.digest] = (ref, ray.put(payload))
        return self._packages[package.digest]

    def _slot(self) -> int:
        used = {flight.slot for flight in self.flights.values()}
        return next(slot for slot in range(1, len(used) + 2) if slot not in used)

    def _flight(
        self, kind: Literal["attempt", "validation"], subject: dict[str, Any], label: str
    ) -> Flight:
        self._sent += 1
        return Flight(
            key=f"{kind}-{self._sent}", slot=self._slot(), kind=kind, subject=subject, label=label
        )

    def send_attempt(
        self,
        ws: Workspace,
        package: CorpusPackage,
        attempt: dict[str, Any],
        task_row: dict[str, Any],
    ) -> Flight:
        """Send a claimed attempt; its task is validated on the head already."""
        ref, payload = self._payload(ws, package)
        order = AttemptOrder(
            package=ref,
            config_json=self.config_json,
            code_digest=self.code,
            attempt=attempt,
            task_row=task_row,
        )
        flight = self._flight("attempt", attempt, attempt["task"])
        handle = _run_attempt.options(num_cpus=self.cpus_per_task).remote(
            order, [payload], self.board, flight.key
        )
        self.flights[handle] = flight
        return flight

    def send_validation(
        self, ws: Workspace, package: CorpusPackage, sha: str, label: str
    ) -> Flight:
        """Send commit `sha`'s validation."""
        ref, payload = self._payload(ws, package)
        order = ValidationOrder(
            package=ref, config_json=self.config_json, code_digest=self.code, sha=sha
        )
        flight = self._flight("validation", {"package_digest": package.digest, "sha": sha}, label)
        handle = _run_validation.options(num_cpus=self.cpus_per_task).remote(
            order, [payload], self.board, flight.key
        )
        self.flights[handle] = flight
        return flight

    def wait(self, timeout_s: float) -> list[Landed]:
        """The orders that ended within `timeout_s` (at least one, unless none ended)."""
        if not self.flights:
            time.sleep(timeout_s)
            return []
        pending = list(self.flights)
        ready, _ = ray.wait(pending, num_returns=1, timeout=timeout_s)
        if ready:
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        self._read_board()
        return [self._landed(handle) for handle in ready]

    def _landed(self, handle: Any) -> Landed:
        flight = self.flights.pop(handle)
        where = flight.node.label if flight.node else "not yet known"
        try:
            return Landed(flight, result=ray.get(handle))
        except TaskCancelledError:
            return Landed(flight, cancelled=True)
        except LOST as exc:
            return Landed(flight, lost=f"node {where} was lost ({type(exc).__name__})")
        except RayTaskError as exc:
            return Landed(flight, failed=f"on node {where}: {_cause_text(exc)}")

    def _read_board(self) -> None:
        seen = ray.get(self.board.take.remote())
        by_key = {flight.key: flight for flight in self.flights.values()}
        for key, (stage, node) in seen.items():
            if key in by_key:
                by_key[key].stage, by_key[key].node = stage, node

    @property
    def stop_requested(self) -> bool:
        """Whether the process received SIGTERM since it connected."""
        return _TERM.is_set()

    def in_flight(self) -> Iterator[Flight]:
        return iter(sorted(self.flights.values(), key=lambda f: f.slot))

    def cancel_unstarted(self) -> None:
        """Take back the orders no worker has started: each lands as cancelled, or as what it
        became if it had just started."""
        for handle, flight in self.flights.items():
            if flight.stage == "sent":
                ray.cancel(handle, force=False)
                flight.stage = "taken back"

    def cancel(self) -> None:
        """Kill every order in flight (their workers too)."""
        for handle in list(self.flights):
            ray.cancel(handle, force=True)
        self.flights.clear()

    def close(self) -> None:
        """Cancel what is in flight and leave the cluster."""
        self.cancel()
        disconnect()
