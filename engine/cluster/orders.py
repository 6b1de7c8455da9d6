"""What the head sends a node and what comes back: plain, picklable models.

A work order carries everything the node's own workspace lacks: the package's identity, the
head's configuration (the node runs under the same limits), the head's code digest, and for an
attempt its row and its task's validated row. The package itself (its tar and the files it was
approved with, to verify it by) travels separately, fetched only by a node that lacks it.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.cluster.folders import PackedFolder
from engine.harness.attempts import AttemptRecord
from engine.intake.corpus import FileRecord


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PackageRef(_Model):
    """An approved package as an order names it: its manifest digest, its name and the sha256
    of its transfer tar."""

    digest: str
    name: str
    transfer_sha256: str


class PackagePayload(_Model):
    """What a node fetches for a package it lacks: the transfer tar, and every file the head
    recorded when it approved the package, to check the received package against."""

    files: list[FileRecord]
    packed: PackedFolder


class Order(_Model):
    """What every work order holds."""

    package: PackageRef
    config_json: str
    code_digest: str


class AttemptOrder(Order):
    """Run one claimed attempt; `task_row` is its task's row in the head's `tasks` table."""

    attempt: dict[str, Any]
    task_row: dict[str, Any]


class ValidationOrder(Order):
    """Validate commit `sha` of the package, running its tests (the head found no recorded
    validation that needs no run)."""

    sha: str


class NodeName(_Model):
    """Where a piece of work ran: Ray's node id, the node's address, the worker's pid."""

    node_id: str
    address: str
    pid: int

    @property
    def label(self) -> str:
        return f"{self.node_id[:8]} ({self.address})"


class AttemptDone(_Model):
    """An attempt's record and its artifacts folder."""

    node: NodeName
    record: AttemptRecord
    artifacts: PackedFolder


class ValidationDone(_Model):
    """A validation's report (JSON, paths the node's), the node's folder for the task, and
    what the validation wrote there (every entry but `attempts/`)."""

    node: NodeName
    report_json: str
    task_dir: str
    artifacts: PackedFolder
