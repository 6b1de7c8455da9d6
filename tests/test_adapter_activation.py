"""Adapter activation: promote, rollback and reject with their records, file verification,
the sync hook, resolve and export, the CLI, and the one-active invariant under two real
processes flipping the same stage.

Versions are `adapter_versions` rows inserted here over adapter folders written and hashed here.
"""

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eval_fixtures import pass_gate

from app.cli import cli
from app.cli_adapters import adapters
from engine.adapters.activation import (
    ActivationError,
    AdapterFilesError,
    StageChangedError,
    export_metadata,
    history,
    promote,
    reject,
    resolve,
    rollback,
    version_row,
)
from engine.core.hashing import sha256_file
from engine.core.stages import NotALoraStage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace

if adapters.name not in cli.commands:
    cli.add_command(adapters)

STAGE = "scope"


def _add_version(ws: Workspace, stage: str, version: int, loss: float = 1.0) -> str:
    name = f"{stage}-v{version}"
    folder = ws.adapters_dir / stage / f"v{version}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 16, "name": name}))
    (folder / "adapter_model.safetensors").write_bytes(f"weights of {name}".encode() * 50)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    ws.db["adapter_versions"].insert(
        {
            "stage": stage,
            "version": version,
            "name": name,
            "status": "candidate",
            "base_model": "reasoning",
            "base_model_path": "models/reasoning-base",
            "rank": 16,
            "path": folder.relative_to(ws.root).as_posix(),
            "metrics_json": json.dumps({"eval_loss": loss}),
            "files_json": json.dumps(files),
            "created_at": utc_now(),
        }
    )
    return name


def _statuses(ws: Workspace, stage: str = STAGE) -> dict[str, str]:
    return dict(ws.db.execute("SELECT name, status FROM adapter_versions WHERE stage = ?", [stage]))


def _records(ws: Workspace) -> list[dict[str, Any]]:
    return list(ws.db["adapter_activations"].rows_where(order_by="id"))


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    for n in (1, 2, 3):
        _add_version(workspace, STAGE, n, loss=1.0 / n)
    return workspace


def test_promote_flips_and_records_both_metrics(ws: Workspace) -> None:
    first = promote(ws, "scope-v1", operator="ana", reason="first deploy")
    promote(ws, "scope-v2", reason="better loss")
    assert _statuses(ws) == {"scope-v1": "inactive", "scope-v2": "active", "scope-v3": "candidate"}
    one, two = _records(ws)
    assert one["id"] == first
    assert (one["action"], one["from_id"], one["operator"]) == ("promote", None, "ana")
    v1, v2 = version_row(ws, "scope-v1"), version_row(ws, "scope-v2")
    assert (two["from_id"], two["to_id"], two["reason"]) == (v1.id, v2.id, "better loss")
    assert two["operator"] == ws.config.operator
    assert json.loads(two["metrics_json"]) == {
        "from": {"name": "scope-v1", "metrics": {"eval_loss": 1.0}, "eval": None},
        "to": {"name": "scope-v2", "metrics": {"eval_loss": 0.5}, "eval": None},
    }
    with pytest.raises(ActivationError, match="already the active"):
        promote(ws, "scope-v2")


def test_rollback_unwinds_promotions_in_order(ws: Workspace) -> None:
    for n in (1, 2, 3):
        promote(ws, f"scope-v{n}")
    rollback(ws, STAGE, "scope-v3", operator="bo", reason="e2e regression")
    assert resolve(ws, STAGE) == "scope-v2"
    rec = _records(ws)[-1]
    v2, v3 = version_row(ws, "scope-v2"), version_row(ws, "scope-v3")
    assert (rec["action"], rec["from_id"], rec["to_id"]) == ("rollback", v3.id, v2.id)
    assert (rec["operator"], rec["reason"]) == ("bo", "e2e regression")
    rollback(ws, STAGE, "scope-v2")
    assert _statuses(ws) == {"scope-v1": "active", "scope-v2": "inactive", "scope-v3": "inactive"}
    rollback(ws, STAGE, "scope-v1")
    assert resolve(ws, STAGE) == "reasoning"
    assert set(_statuses(ws).values()) == {"inactive"}
    assert [(h.action, h.from_name, h.to_name) for h in history(ws, STAGE)] == [
        ("promote", None, "scope-v1"),
        ("promote", "scope-v1", "scope-v2"),
        ("promote", "scope-v2", "scope-v3"),
        ("rollback", "scope-v3", "scope-v2"),
        ("rollback", "scope-v2", "scope-v1"),
        ("rollback", "scope-v1", None),
    ]


def test_rolling_back_the_first_promotion_returns_to_the_base(ws: Workspace) -> None:
    with pytest.raises(ActivationError, match="no version is active"):
        rollback(ws, STAGE, "scope-v1")
    promote(ws, "scope-v1")
    rollback(ws, STAGE, "scope-v1", reason="worse than base")
    assert resolve(ws, STAGE) == "reasoning"
    assert version_row(ws, "scope-v1").status == "inactive"
    last = _records(ws)[-1]
    assert (last["action"], last["to_id"], last["reason"]) == ("rollback", None, "worse than base")
    with pytest.raises(ActivationError, match="no version is active"):
        rollback(ws, STAGE, "scope-v1")
    promote(ws, "scope-v1")
    assert resolve(ws, STAGE) == "scope-v1"


def test_a_rollback_seen_on_the_bare_base_is_refused_once_a_version_serves(
    ws: Workspace,
) -> None:
    """An operator who saw the bare base serving and whose rollback arrives after a promotion
    is told the stage changed, not that the base is an unknown version."""
    promote(ws, "scope-v1")
    with pytest.raises(StageChangedError, match="withdraws reasoning, but scope-v1 serves"):
        rollback(ws, STAGE, "reasoning")
    assert resolve(ws, STAGE) == "scope-v1"


def test_reject_records_and_is_never_promoted(ws: Workspace) -> None:
    with pytest.raises(ActivationError, match="needs a reason"):
        reject(ws, "scope-v3", " ")
    reject(ws, "scope-v3", "regressed precision", operator="cy")
    rec = _records(ws)[-1]
    assert (rec["action"], rec["from_id"], rec["to_id"]) == (
        "reject",
        version_row(ws, "scope-v3").id,
        None,
    )
    assert (rec["reason"], rec["operator"]) == ("regressed precision", "cy")
    with pytest.raises(ActivationError, match="rejected version is never promoted"):
        promote(ws, "scope-v3")
    promote(ws, "scope-v1")
    with pytest.raises(ActivationError, match="only a candidate can be rejected"):
        reject(ws, "scope-v1", "too late")
    assert _statuses(ws)["scope-v3"] == "rejected"


@pytest.mark.parametrize("damage", ["changed", "missing", "extra"])
def test_promote_refuses_files_that_differ(ws: Workspace, damage: str) -> None:
    folder = ws.root / version_row(ws, "scope-v2").path
    if damage == "changed":
        (folder / "adapter_model.safetensors").write_bytes(b"tampered")
        expected = "adapter_model.safetensors does not match its registered sha256"
    elif damage == "missing":
        (folder / "adapter_config.json").unlink()
        expected = "adapter_config.json is missing"
    else:
        (folder / "extra.bin").write_bytes(b"?")
        expected = "unregistered file .*extra.bin"
    promote(ws, "scope-v1")
    with pytest.raises(AdapterFilesError, match=expected):
        promote(ws, "scope-v2")
    assert resolve(ws, STAGE) == "scope-v1"
    assert len(_records(ws)) == 1


def test_rollback_verifies_the_earlier_version_files(ws: Workspace) -> None:
    promote(ws, "scope-v1")
    promote(ws, "scope-v2")
    (ws.root / version_row(ws, "scope-v1").path / "adapter_config.json").write_text("{}")
    with pytest.raises(AdapterFilesError, match="scope-v1: file .*adapter_config.json"):
        rollback(ws, STAGE, "scope-v2")
    assert resolve(ws, STAGE) == "scope-v2"


class ServerDown(Exception):
    pass


def test_failing_sync_changes_nothing(ws: Workspace) -> None:
    loaded: list[str] = []
    promote(ws, "scope-v1", sync=lambda row: loaded.append(row.name))
    promote(ws, "scope-v2", sync=lambda row: loaded.append(row.name))
    assert loaded == ["scope-v1", "scope-v2"]
    before = (_statuses(ws), _records(ws))

    def down(row: dict[str, Any]) -> None:
        # The transaction must not be open while the server loads the adapter.
        assert not ws.db.conn.in_transaction
        raise ServerDown(row.name)

    with pytest.raises(ServerDown, match="scope-v3"):
        promote(ws, "scope-v3", sync=down)
    with pytest.raises(ServerDown, match="scope-v1"):
        rollback(ws, STAGE, "scope-v2", sync=down)
    assert (_statuses(ws), _records(ws)) == before


def test_database_refuses_a_second_active_version(ws: Workspace) -> None:
    promote(ws, "scope-v1")
    with pytest.raises(sqlite3.IntegrityError):
        ws.db.execute("UPDATE adapter_versions SET status = 'active' WHERE name = 'scope-v2'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ws.db.execute("DELETE FROM adapter_activations")


def test_resolve_and_export(ws: Workspace) -> None:
    _add_version(ws, "execute_code", 1)
    assert resolve(ws, STAGE) == "reasoning"
    assert resolve(ws, "execute_code") == "coding"
    with pytest.raises(ActivationError, match="unknown stage"):
        resolve(ws, "nope")
    promote(ws, "scope-v2")
    promote(ws, "execute_code-v1")
    assert resolve(ws, STAGE) == "scope-v2"
    assert resolve(ws, "execute_code") == "execute_code-v1"
    rows = export_metadata(ws)
    assert [r["model_tag"] for r in rows] == [
        "execute_code-v1",
        "scope-v1",
        "scope-v2",
        "scope-v3",
    ]
    v2 = rows[2]
    assert set(v2) == {
        "stage_name",
        "base_model",
        "model_tag",
        "version",
        "active",
        "performance_notes",
        "deployed_at",
    }
    assert (v2["stage_name"], v2["version"], v2["active"], v2["base_model"]) == (
        "scope",
        2,
        1,
        "reasoning",
    )
    assert json.loads(v2["performance_notes"]) == {"eval_loss": 0.5}
    assert v2["deployed_at"] == _records(ws)[0]["at"]
    assert (rows[1]["active"], rows[1]["deployed_at"]) == (0, None)


def test_cli(ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()

    def cra(*args: str) -> str:
        result = runner.invoke(cli, ["--workspace", str(ws.root), "adapters", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "scope-v1" in cra("list", "--stage", STAGE)
    assert cra("resolve", STAGE) == "reasoning\n"
    refused = runner.invoke(cli, ["--workspace", str(ws.root), "adapters", "promote", "scope-v1"])
    assert "scope-v1 has not been through the eval gate" in refused.output
    pass_gate(ws, "scope-v1", "base")
    assert cra("promote", "scope-v1", "--reason", "first") == (
        "scope-v1: active for scope\n"
        "server: [serving] bases.reasoning is not set; nothing was loaded on a server\n"
        "watch: none: the harness's planner slot does not call scope adapters, so an "
        "end-to-end check cannot see them; the eval gate is their check\n"
    )
    pass_gate(ws, "scope-v2", "scope-v1")
    cra("promote", "scope-v2", "--operator", "dee")
    assert cra("rollback", STAGE, "--from", "scope-v2", "--reason", "bad").startswith(
        "scope: rolled back to scope-v1\n"
    )
    assert "rejected (worse)" in cra("reject", "scope-v3", "--reason", "worse")
    assert cra("resolve", STAGE) == "scope-v1\n"
    lines = cra("history", STAGE).splitlines()
    assert [line.split()[1] for line in lines] == ["promote", "promote", "rollback", "reject"]
    assert "scope-v2 -> scope-v1" in lines[2] and "(bad)" in lines[2]
    assert json.loads(cra("export")) == export_metadata(ws)
    out = tmp_path / "meta.json"
    cra("export", "--out", str(out))
    assert json.loads(out.read_text()) == export_metadata(ws)
    refused = runner.invoke(cli, ["--workspace", str(ws.root), "adapters", "promote", "scope-v3"])
    assert refused.exit_code == 1
    assert refused.output == "error: scope-v3 was rejected; a rejected version is never promoted\n"


WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from engine.adapters.activation import (
        ActivationError, StageChangedError, promote, resolve, rollback,
    )
    from engine.core.workspace import Workspace

    ws = Workspace.open(Path(sys.argv[1]))
    role, rounds = sys.argv[2], int(sys.argv[3])
    done = refused = 0
    for i in range(rounds):
        try:
            if role == "promote":
                promote(ws, f"scope-v{i % 4 + 1}", operator=role)
            else:
                rollback(ws, "scope", resolve(ws, "scope"), operator=role)
            done += 1
        except ActivationError as exc:
            if not isinstance(exc, StageChangedError) and not any(
                text in str(exc) for text in ("already the active", "no version is active")
            ):
                raise
            refused += 1
    print(json.dumps({"done": done, "refused": refused}))
    """
)


@pytest.mark.slow
def test_one_active_under_concurrent_promote_and_rollback(ws: Workspace) -> None:
    _add_version(ws, STAGE, 4)
    # Four promotions first: however the workers interleave, at least three rollbacks can land.
    for version in range(1, 5):
        promote(ws, f"scope-v{version}")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(ws.root), role, "150"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("promote", "rollback")
    ]
    watcher = sqlite3.connect(ws.root / "cra.sqlite", timeout=30)
    checks = 0
    while any(proc.poll() is None for proc in procs) or checks == 0:
        (active,) = watcher.execute(
            "SELECT COUNT(*) FROM adapter_versions WHERE stage = 'scope' AND status = 'active'"
        ).fetchone()
        assert active <= 1
        checks += 1
    outcomes = []
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        outcomes.append(json.loads(out))
    promoted, rolled = outcomes
    assert promoted["done"] > 0 and rolled["done"] > 0

    records = _records(ws)
    flips = [r for r in records if r["action"] in ("promote", "rollback")]
    assert len(flips) == 4 + promoted["done"] + rolled["done"]
    assert sum(r["action"] == "rollback" for r in flips) == rolled["done"]
    for before, after in zip(flips, flips[1:], strict=False):
        assert after["from_id"] == before["to_id"]
    active = [name for name, status in _statuses(ws).items() if status == "active"]
    assert [version_row(ws, active[0]).id] == [flips[-1]["to_id"]]


def test_planning_stages_have_no_adapters_to_list_promote_or_roll_back(ws: Workspace) -> None:
    """meta/step/test planning are the base fine-tune's (LoRA Training Strategy §2.6): the adapter
    commands refuse them naming the rule, even for a version recorded before the rule (no
    promotion); the agent still resolves a planning stage to its base."""
    legacy = _add_version(ws, "meta_plan", 1)
    with pytest.raises(NotALoraStage, match="meta_plan has no adapter to promote .meta_plan-v1."):
        promote(ws, legacy)
    with pytest.raises(NotALoraStage, match="step_plan has no adapter history: planning"):
        history(ws, "step_plan")
    with pytest.raises(NotALoraStage, match="test_plan has no adapter to roll back"):
        rollback(ws, "test_plan", "test_plan-v1")
    assert resolve(ws, "meta_plan") == "reasoning"
    result = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "adapters", "list", "--stage", "meta_plan"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: meta_plan has no adapter versions: planning")
    assert "export-base --role reasoning" in result.output
