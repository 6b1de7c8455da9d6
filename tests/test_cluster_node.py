"""A cluster node's side without Ray: the package crosses by content hash and is verified, the
node validates and attempts in its own workspace, and the head records what comes back exactly
as a local run records it. Real packages, the real sandbox, two real workspaces."""

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from workspaces import HARNESS, open_workspace

from engine.cluster.campaign import unreachable_endpoint
from engine.cluster.codeprint import code_digest
from engine.cluster.errors import NodeError
from engine.cluster.folders import PackedFolder, unpack_folder
from engine.cluster.landing import land_attempt, land_validation, pack_package
from engine.cluster.node import NODE_DIR_ENV, check_node, run_attempt_order, run_validation_order
from engine.cluster.orders import AttemptOrder, NodeName, PackagePayload, ValidationOrder
from engine.core.config import ConfigError, load_config
from engine.core.workspace import Workspace
from engine.harness.attempts import run_attempt
from engine.harness.campaigns import CampaignSpec, create_campaign
from engine.harness.package import load_package
from engine.harness.supplement import validate_commit
from engine.intake.approval import approve_package

NODE = NodeName(node_id="f" * 56, address="10.0.0.9", pid=4242)
VOLATILE_TASK = {"id", "validated_at"}
VOLATILE_ATTEMPT = {"started_at", "finished_at", "duration_s", "test_duration_s", "worker", "pid"}


def _rows(ws: Workspace, table: str, volatile: set[str]) -> list[dict[str, Any]]:
    rows = ws.db[table].rows_where(order_by="package_digest, sha" if table == "tasks" else "id")
    return [{k: v for k, v in row.items() if k not in volatile} for row in rows]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _order_fields(ws: Workspace, digest: str) -> dict[str, Any]:
    ref, _ = pack_package(ws, load_package(ws, digest))
    return {
        "package": ref,
        "config_json": ws.config.model_dump_json(),
        "code_digest": code_digest(),
    }


@pytest.fixture
def node_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(NODE_DIR_ENV, str(tmp_path / "node"))
    return tmp_path / "node"


@pytest.mark.slow
def test_a_node_validates_and_attempts_exactly_as_the_head_would(
    tmp_path: Path, short_package: Path, node_dir: Path
) -> None:
    head = open_workspace(tmp_path / "head", HARNESS)
    local = open_workspace(tmp_path / "local", HARNESS)
    digest = approve_package(head, short_package).digest
    assert approve_package(local, short_package).digest == digest
    package = load_package(head, digest)
    shas = [commit.sha for commit in package.manifest.commits if commit.task_class == "gold"][:2]
    fetched: list[str] = []

    def fetch() -> PackagePayload:
        fetched.append("package")
        return pack_package(head, package)[1]

    stages: list[str] = []
    for sha in shas:
        order = ValidationOrder(**_order_fields(head, digest), sha=sha)
        land_validation(head, run_validation_order(order, fetch, NODE, stages.append))
        validate_commit(local, digest, sha)
    assert fetched == ["package"], "the node fetches a package once and keeps it"
    assert _rows(head, "tasks", VOLATILE_TASK) == _rows(local, "tasks", VOLATILE_TASK)
    for sha in shas:
        task = f"{digest[:12]}-{sha[:12]}"
        assert _files(head.runs_dir / task) == _files(local.runs_dir / task)
        report = json.loads((head.runs_dir / task / "gold" / "report.json").read_text())
        assert report["artifacts"] == str(head.runs_dir / task / "gold")

    spec = CampaignSpec(
        packages=[digest], pipeline="gold", model="gold", temperatures=[0], seeds=[1]
    )
    for ws in (head, local):
        create_campaign(ws, spec, "tester")
    for attempt in head.db["attempts"].rows_where("sha IN (?, ?)", shas, order_by="id"):
        task_row = next(
            head.db["tasks"].rows_where("package_digest = ? AND sha = ?", [digest, attempt["sha"]])
        )
        order = AttemptOrder(**_order_fields(head, digest), attempt=attempt, task_row=task_row)
        land_attempt(head, attempt, run_attempt_order(order, fetch, NODE, stages.append))
        local_row = next(local.db["attempts"].rows_where("id = ?", [attempt["id"]]))
        run_attempt(local, local_row, lambda stage: None)
    head_rows = [r for r in _rows(head, "attempts", VOLATILE_ATTEMPT) if r["sha"] in shas]
    local_rows = [r for r in _rows(local, "attempts", VOLATILE_ATTEMPT) if r["sha"] in shas]
    assert head_rows == local_rows
    assert {row["outcome"] for row in head_rows} == {"resolved"}
    assert {"gold", "plan", "validate"} <= set(stages)
    left = list((node_dir / "ws" / "runs").glob("*/attempts/*"))
    assert left == [], "the node keeps no attempt's artifacts"
    assert fetched == ["package"]


def _tampered(packed: PackedFolder, name: str, data: bytes) -> PackedFolder:
    """`packed` with the file `name` replaced by `data`, re-hashed as a sender would."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            if member.name == name:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    raw = out.getvalue()
    return PackedFolder(sha256=hashlib.sha256(raw).hexdigest(), data=raw)


def test_a_package_that_is_not_the_approved_one_is_refused_by_the_node(
    tmp_path: Path, short_package: Path, node_dir: Path
) -> None:
    head = open_workspace(tmp_path / "head", HARNESS)
    digest = approve_package(head, short_package).digest
    package = load_package(head, digest)
    ref, payload = pack_package(head, package)
    packed = payload.packed
    wheel = next(name for name in (f"packages/{w.filename}" for w in package.manifest.wheels))
    sha = package.manifest.commits[0].sha
    fields = {"config_json": head.config.model_dump_json(), "code_digest": code_digest()}

    def order(ref_: Any) -> ValidationOrder:
        return ValidationOrder(package=ref_, sha=sha, **fields)

    def sent(tar: PackedFolder) -> PackagePayload:
        return PackagePayload(files=payload.files, packed=tar)

    damaged = PackedFolder(sha256=packed.sha256, data=packed.data[:-9] + b"123456789")
    with pytest.raises(NodeError, match="arrived damaged"):
        run_validation_order(order(ref), lambda: sent(damaged), NODE, lambda stage: None)
    swapped = _tampered(packed, wheel, b"not the wheel that was approved")
    with pytest.raises(NodeError, match="its order names"):
        run_validation_order(order(ref), lambda: sent(swapped), NODE, lambda stage: None)
    # A head whose corpus changed after approval sends a tar it names truthfully: the node
    # checks its contents against the manifest and the files recorded at approval.
    resent = ref.model_copy(update={"transfer_sha256": swapped.sha256})
    with pytest.raises(NodeError, match=r"is not the approved package: .*sha256"):
        run_validation_order(order(resent), lambda: sent(swapped), NODE, lambda stage: None)
    node = Workspace.open(node_dir / "ws")
    assert node.db["packages"].count == 0
    kept = [p.name for p in (node_dir / "ws" / "corpus").iterdir() if p.name != ".staging"]
    assert kept == [], "nothing half-received is kept"
    assert not any((node_dir / "ws" / "corpus" / ".staging").iterdir())


def test_a_node_running_other_code_is_refused_by_name() -> None:
    with pytest.raises(NodeError, match=r"node ffffffff \(10.0.0.9\) runs other console code"):
        check_node(NODE, "0" * 64)


def test_the_ray_backend_needs_the_heads_address(tmp_path: Path) -> None:
    path = tmp_path / "cra.toml"
    path.write_text('[harness]\nbackend = "ray"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"needs \[harness.ray\] address"):
        load_config(path)
    path.write_text('[harness]\nbackend = "ray"\n[harness.ray]\naddress = "no port"\n')
    with pytest.raises(ConfigError, match="address"):
        load_config(path)


class _TwoMachines:
    """The one thing `unreachable_endpoint` asks the cluster: a second machine is out of reach
    of this test, so its address is given."""

    def other_machines(self) -> list[str]:
        return ["10.0.0.3"]


@pytest.mark.parametrize(
    ("base_url", "refused"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://10.0.0.2:8000/v1", False),
    ],
)
def test_an_openai_campaign_refuses_a_loopback_endpoint_on_other_machines(
    tmp_path: Path, short_package: Path, base_url: str, refused: bool
) -> None:
    ws = open_workspace(tmp_path / "ws", HARNESS + f'[harness.openai]\nbase_url = "{base_url}"\n')
    digest = approve_package(ws, short_package).digest
    spec = CampaignSpec(
        packages=[digest], pipeline="openai", model="m", temperatures=[0.3], seeds=[1]
    )
    problem = unreachable_endpoint(ws, create_campaign(ws, spec, "tester"), _TwoMachines())  # type: ignore[arg-type]
    if refused:
        assert (
            problem is not None and "would read as their own" in problem and "10.0.0.3" in problem
        )
    else:
        assert problem is None


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> PackedFolder:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = out.getvalue()
    return PackedFolder(sha256=hashlib.sha256(raw).hexdigest(), data=raw)


def _member(
    name: str, data: bytes = b"x", link: str | None = None
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        return info, None
    info.size = len(data)
    return info, data


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ([_member("7/report.json"), _member("../escaped")], "cannot be unpacked"),
        ([_member("7/report.json"), _member("7/link", link="/etc/passwd")], "cannot be unpacked"),
        ([_member("7/report.json"), _member("8/report.json")], r"hold \['7', '8'\], not \['7'\]"),
    ],
)
def test_artifacts_from_a_node_land_only_where_they_belong(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], error: str
) -> None:
    """A node's tar with a path leaving the folder, a link out of it, or another attempt's
    folder is refused, and nothing of it is placed."""
    dest = tmp_path / "runs" / "task" / "attempts"
    dest.mkdir(parents=True)
    (dest / "8").mkdir()
    (dest / "8" / "report.json").write_text("kept")
    with pytest.raises(NodeError, match=error):
        unpack_folder(_tar(members), dest, "attempt 7's artifacts", only=["7"])
    assert sorted(p.name for p in dest.iterdir()) == ["8"]
    assert (dest / "8" / "report.json").read_text() == "kept"
    assert not (tmp_path / "runs" / "task" / "escaped").exists()


def test_a_package_packs_to_the_same_bytes_every_time(tmp_path: Path, short_package: Path) -> None:
    """An order names the package's tar by its sha256, so two head processes packing the same
    package must agree: no time in the gzip header, folders walked in name order."""
    head = open_workspace(tmp_path / "head", HARNESS)
    package = load_package(head, approve_package(head, short_package).digest)
    first_ref, first = pack_package(head, package)
    assert first.packed.data[4:8] == b"\0\0\0\0", "gzip's MTIME field"
    again_ref, again = pack_package(head, package)
    assert again_ref == first_ref and again.packed.data == first.packed.data
