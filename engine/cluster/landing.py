"""The head's side of a transfer: a package packed for the nodes, and what a node sent back
recorded in the workspace exactly as a local worker records it."""

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.cluster.errors import NodeError
from engine.cluster.folders import pack_paths, unpack_folder
from engine.cluster.orders import AttemptDone, PackagePayload, PackageRef, ValidationDone
from engine.core.workspace import Workspace
from engine.harness.attempts import attempt_dir, record_attempt
from engine.harness.package import CorpusPackage
from engine.harness.supplement import save_validation
from engine.harness.task_validation import TaskValidation
from engine.intake.approval import corpus_files
from engine.intake.manifest import MANIFEST_FILE

TRANSFERRED = (MANIFEST_FILE, "packages", "repo/.git")
"""What of a corpus package crosses to a node: the node rebuilds the repository from its
objects and checks the working tree out itself."""


def pack_package(ws: Workspace, package: CorpusPackage) -> tuple[PackageRef, PackagePayload]:
    """The package's transfer tar with its recorded files, and the reference orders name it by."""
    paths = [rel for rel in TRANSFERRED if (package.root / rel).exists()]
    packed = pack_paths(package.root, paths)
    ref = PackageRef(
        digest=package.digest, name=package.manifest.name, transfer_sha256=packed.sha256
    )
    return ref, PackagePayload(files=corpus_files(ws, package.digest), packed=packed)


def land_attempt(ws: Workspace, attempt: dict[str, Any], done: AttemptDone) -> None:
    """Put the attempt's artifacts folder in place (replacing any earlier one), then write its
    row."""
    out = attempt_dir(ws, attempt)
    what = f"attempt {attempt['id']}'s artifacts from node {done.node.label}"
    unpack_folder(done.artifacts, out.parent, what, only=[out.name])
    record_attempt(ws, attempt["id"], out, done.record)


def land_validation(ws: Workspace, done: ValidationDone) -> TaskValidation:
    """Put what the validation wrote under the task's folder in place, with every report's
    artifacts path made the head's, then record the task's row."""
    report = TaskValidation.model_validate_json(done.report_json)
    node_dir = Path(done.task_dir)
    task_dir = ws.runs_dir / report.task
    what = f"the validation of {report.sha[:12]} from node {done.node.label}"
    for name in unpack_folder(done.artifacts, task_dir, what):
        _rehome_report(task_dir / name / "report.json", node_dir, task_dir)
    try:
        rel = report.artifacts.relative_to(node_dir)
    except ValueError as exc:
        raise NodeError(f"{what}: its artifacts {report.artifacts} are outside {node_dir}") from exc
    return save_validation(ws, report.model_copy(update={"artifacts": task_dir / rel}))


def _rehome_report(path: Path, node_dir: Path, task_dir: Path) -> None:
    """A validation report written on the node names its folder by the node's path; make it
    the head's (a report of an earlier step, such as gold before supplementation, stays too)."""
    if not path.is_file():
        return
    try:
        report = TaskValidation.model_validate_json(path.read_bytes())
    except ValidationError:
        return  # another step's report, with no artifacts path to move
    rel = report.artifacts.relative_to(node_dir)
    moved = report.model_copy(update={"artifacts": task_dir / rel})
    path.write_text(moved.model_dump_json(indent=2) + "\n", encoding="utf-8")
