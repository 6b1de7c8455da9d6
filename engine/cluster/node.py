"""The node's side: a workspace of its own, the package fetched once and verified, then the
same attempt and validation code the local workers run.

The node's workspace (`$CRA_NODE_DIR/ws`, else `~/.cache/cra-node/ws`) is a cache: approved
packages as the head sent them, their task environments, and for the length of one order the
artifacts the order writes. Orders run under the head's configuration, not the node's. Before its
first order a worker process checks that it runs the head's code and that the sandbox isolates;
a node that fails either is refused with the reason (NodeError), never used.
"""

import dataclasses
import functools
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from engine.cluster.codeprint import code_digest
from engine.cluster.errors import NodeError
from engine.cluster.folders import pack_paths, unpack_folder
from engine.cluster.orders import (
    AttemptDone,
    AttemptOrder,
    NodeName,
    Order,
    PackagePayload,
    PackageRef,
    ValidationDone,
    ValidationOrder,
)
from engine.core.config import Config
from engine.core.errors import CraError
from engine.core.locks import exclusive_lock
from engine.core.staged import remove_tree
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.attempts import StageCallback, attempt_dir, commit_lock, perform_attempt
from engine.harness.package import CorpusPackage, load_package
from engine.harness.supplement import validate_commit
from engine.harness.task_validation import task_name
from engine.intake.corpus import folder_name, place, stage_received
from engine.intake.manifest import MANIFEST_FILE, parse_manifest
from engine.isolation.sandbox import check_isolation

NODE_DIR_ENV = "CRA_NODE_DIR"
Fetch = Callable[[], PackagePayload]
"""Gets the package's transfer tar and recorded files from the head; called only when the node
lacks the package."""


def node_dir() -> Path:
    """Where this node keeps its workspace: `$CRA_NODE_DIR`, else `~/.cache/cra-node`."""
    return Path(os.environ.get(NODE_DIR_ENV) or Path.home() / ".cache" / "cra-node")


@functools.cache
def _opened(root: Path, thread: int) -> Workspace:
    return Workspace.open(root)


def node_workspace(config_json: str) -> Workspace:
    """The node's workspace under the head's configuration. Opened once per thread: a SQLite
    connection serves the thread that opened it, and Ray does not promise which thread runs
    the next order."""
    ws = _opened(node_dir() / "ws", threading.get_ident())
    return dataclasses.replace(ws, config=_config(config_json))


@functools.lru_cache(maxsize=8)
def _config(config_json: str) -> Config:
    return Config.model_validate_json(config_json)


@functools.cache
def _sandbox_checked() -> None:
    check_isolation()


def check_node(node: NodeName, head_code: str) -> None:
    """Refuse (NodeError) a node that runs other console code or whose sandbox does not
    isolate; each is named with what to fix on the node."""
    if code_digest() != head_code:
        raise NodeError(
            f"node {node.label} runs other console code (digest {code_digest()[:12]}, the "
            f"head's {head_code[:12]}): install the head's bundle there and restart its `ray "
            "start`"
        )
    try:
        _sandbox_checked()
    except CraError as exc:
        raise NodeError(f"node {node.label}: the sandbox cannot run there: {exc}") from exc


def ensure_package(ws: Workspace, ref: PackageRef, fetch: Fetch, node: NodeName) -> CorpusPackage:
    """The package in the node's workspace, fetched from the head and verified first if the node
    does not hold it: the tar's sha256, then everything intake checks (`stage_received`)."""
    locks = ws.locks_dir
    locks.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(locks / f"package-{ref.digest[:16]}.lock"):
        if ws.db.execute("SELECT 1 FROM packages WHERE digest = ?", [ref.digest]).fetchone():
            return load_package(ws, ref.digest)
        _receive(ws, ref, fetch(), node)
    return load_package(ws, ref.digest)


def _receive(ws: Workspace, ref: PackageRef, payload: PackagePayload, node: NodeName) -> None:
    what = f"package {ref.name} ({ref.digest[:12]}) on node {node.label}"
    packed = payload.packed
    if packed.sha256 != ref.transfer_sha256:
        raise NodeError(
            f"{what}: the head sent tar {packed.sha256}, its order names {ref.transfer_sha256}"
        )
    final = ws.corpus_dir / folder_name(ref.name, ref.digest)
    with tempfile.TemporaryDirectory(dir=ws.root, prefix=".received-") as tmp:
        unpack_folder(packed, Path(tmp), what)
        raw = (Path(tmp) / MANIFEST_FILE).read_bytes()
        manifest = parse_manifest(raw, f"{what}: {MANIFEST_FILE}")
        try:
            staged = stage_received(
                ws.corpus_dir, Path(tmp), raw, ref.digest, manifest, payload.files
            )
        except CraError as exc:
            raise NodeError(f"{what} is not the approved package: {exc}") from exc
        if final.exists() or final.is_symlink():
            remove_tree(final)
        place(staged.path, final)
    row = {
        "name": manifest.name,
        "digest": ref.digest,
        "source_path": "the cluster's head",
        "corpus_path": final.relative_to(ws.root).as_posix(),
        "commit_count": len(manifest.commits),
        "wheel_count": len(manifest.wheels),
        "size_bytes": sum(f.size_bytes for f in staged.files),
        "approved_by": "the cluster's head",
        "approved_at": utc_now(),
        "report_json": "{}",
        "manifest_json": raw.decode("utf-8"),
    }
    with ws.db.conn:
        ws.db.table("packages").insert(row)


def _prepared(order: Order, fetch: Fetch, node: NodeName) -> tuple[Workspace, CorpusPackage]:
    check_node(node, order.code_digest)
    ws = node_workspace(order.config_json)
    return ws, ensure_package(ws, order.package, fetch, node)


def run_attempt_order(
    order: AttemptOrder, fetch: Fetch, node: NodeName, on_stage: StageCallback
) -> AttemptDone:
    """Run the attempt in the node's workspace and return its record and artifacts; the node
    keeps nothing of it."""
    ws, _ = _prepared(order, fetch, node)
    task_row = {k: v for k, v in order.task_row.items() if k != "id"}
    with ws.db.conn:
        ws.db.table("tasks").upsert(task_row, pk=("package_digest", "sha"))
    out = attempt_dir(ws, order.attempt)
    try:
        record = perform_attempt(ws, order.attempt, out, on_stage)
        packed = pack_paths(out.parent, [out.name])
    finally:
        if out.exists():
            remove_tree(out)
    return AttemptDone(node=node, record=record, artifacts=packed)


def run_validation_order(
    order: ValidationOrder, fetch: Fetch, node: NodeName, on_stage: StageCallback
) -> ValidationDone:
    """Validate the commit in the node's workspace, as if for the first time (the node's own
    earlier validations of it, in any package, are forgotten: the head decided it must run),
    and return the report and what it wrote under the task's folder."""
    on_stage("gold")
    ws, package = _prepared(order, fetch, node)
    with commit_lock(ws, order.sha):
        task_dir = ws.runs_dir / task_name(package.digest, order.sha)
        with ws.db.conn:
            ws.db.execute("DELETE FROM tasks WHERE sha = ?", [order.sha])
        for name in _validation_entries(task_dir):
            remove_tree(task_dir / name)
        report = validate_commit(ws, package.digest, order.sha)
        packed = pack_paths(task_dir, _validation_entries(task_dir))
    return ValidationDone(
        node=node, report_json=report.model_dump_json(), task_dir=str(task_dir), artifacts=packed
    )


def _validation_entries(task_dir: Path) -> list[str]:
    """What validations write under a task's folder: everything but the attempts."""
    if not task_dir.is_dir():
        return []
    return sorted(p.name for p in task_dir.iterdir() if p.name != "attempts")
