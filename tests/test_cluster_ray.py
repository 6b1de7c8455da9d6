"""Campaigns and gold validation on a real Ray cluster: a head and a worker node started on
this machine as separate process groups, loopback only. The rows and artifacts must be those a
local run records; pause, stop and resume work; a node killed mid-attempt loses nothing."""

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pilot_wait import wait_for
from ray_cluster import LocalCluster, wait_nodes
from test_campaigns import SLOW_PLANNER
from workspaces import HARNESS, open_workspace

from app.cli import cli
from engine.core.jobs import latest_job
from engine.core.workspace import Workspace
from engine.harness.campaigns import (
    CampaignSpec,
    campaign_row,
    create_campaign,
    pause_campaign,
    reconcile_campaigns,
    start_campaign,
    stop_campaign,
)
from engine.intake.approval import approve_package

pytestmark = pytest.mark.slow

VOLATILE_TASK = {"id", "validated_at"}
VOLATILE_ATTEMPT = {"started_at", "finished_at", "duration_s", "test_duration_s", "worker", "pid"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    found = LocalCluster(root=tmp_path_factory.mktemp("cluster"))
    try:
        found.start_head(cpus=1)
        found.add_node("node-b", cpus=1)
        wait_nodes(found.address, 2)
        yield found
    finally:
        found.stop()


def _on_ray(address: str, extra: str = "") -> str:
    return HARNESS + 'backend = "ray"\n' + extra + f'[harness.ray]\naddress = "{address}"\n'


def _rows(ws: Workspace, table: str, volatile: set[str]) -> list[dict[str, Any]]:
    order = "package_digest, sha" if table == "tasks" else "id"
    return [
        {k: v for k, v in row.items() if k not in volatile}
        for row in ws.db[table].rows_where(order_by=order)
    ]


def _files(ws: Workspace) -> list[str]:
    runs = ws.runs_dir
    return sorted(
        p.relative_to(runs).as_posix()
        for p in runs.rglob("*")
        if p.is_file() and ".locks" not in p.parts
    )


def _wait_status(ws: Workspace, campaign_id: int, wanted: set[str], limit_s: float = 400) -> str:
    def reached() -> str | None:
        reconcile_campaigns(ws)
        status = campaign_row(ws, campaign_id).status
        return status if status in wanted else None

    return wait_for(reached, f"campaign {campaign_id} to reach {wanted}", limit_s, every_s=0.5)


def _gold(ws: Workspace) -> int:
    digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
    spec = CampaignSpec(
        packages=[digest], pipeline="gold", model="gold", temperatures=[0], seeds=[1], workers=2
    )
    return create_campaign(ws, spec, "tester")


def _log(ws: Workspace, campaign_id: int) -> str:
    job = latest_job(ws, "campaign", campaign_id)
    assert job is not None
    return (ws.root / job.log_path).read_text(encoding="utf-8")


def test_a_gold_campaign_on_the_cluster_records_what_a_local_run_records(
    tmp_path: Path, short_package: Path, cluster: LocalCluster
) -> None:
    local = open_workspace(tmp_path / "local", HARNESS)
    remote = open_workspace(tmp_path / "remote", _on_ray(cluster.address))
    for ws in (local, remote):
        approve_package(ws, short_package)
        start_campaign(ws, _gold(ws))
    for ws in (local, remote):
        assert _wait_status(ws, 1, {"done", "failed"}) == "done", _log(ws, 1)
    assert _rows(remote, "tasks", VOLATILE_TASK) == _rows(local, "tasks", VOLATILE_TASK)
    assert _rows(remote, "attempts", VOLATILE_ATTEMPT) == _rows(local, "attempts", VOLATILE_ATTEMPT)
    outcomes = Counter(row["outcome"] for row in _rows(remote, "attempts", set()))
    assert outcomes["resolved"] >= 3 and set(outcomes) <= {"resolved", "unusable"}
    assert _files(remote) == _files(local)
    examples = "SELECT origin, stage, sha FROM examples ORDER BY origin, stage, sha"
    assert remote.db.execute(examples).fetchall() == local.db.execute(examples).fetchall()
    # Both nodes ran orders, each from its own copy of the package, verified on arrival.
    for name in ("head", "node-b"):
        node = Workspace.open(cluster.node_dir(name) / "ws")
        assert [row["name"] for row in node.db["packages"].rows] == ["textkit"], name
    nodes = list(remote.db["harness_nodes"].rows)
    assert len(nodes) == 2 and all(row["alive"] for row in nodes)
    assert {row["stage"] for row in remote.db["harness_workers"].rows} == {"exited"}


def test_gold_validation_on_the_cluster_prints_what_a_local_run_prints(
    tmp_path: Path, short_package: Path, cluster: LocalCluster
) -> None:
    outputs = []
    for name, config in (("local", HARNESS), ("remote", _on_ray(cluster.address))):
        ws = open_workspace(tmp_path / name, config)
        approve_package(ws, short_package)
        args = ["--workspace", str(ws.root), "harness", "validate", "textkit"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[1] == outputs[0]
    assert "usable" in outputs[0]


def _slow_planner(tmp_path: Path, sleep: float) -> tuple[str, Path]:
    log = tmp_path / "planner-calls.log"
    script = tmp_path / "planner.py"
    script.write_text(SLOW_PLANNER.format(log=str(log), sleep=sleep), encoding="utf-8")
    return f"[harness.command]\nargv = {json.dumps([sys.executable, str(script)])}\n", log


def _command_campaign(ws: Workspace) -> int:
    digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
    spec = CampaignSpec(
        packages=[digest], pipeline="command", model="agent", temperatures=[0.3, 0.9], seeds=[1]
    )
    return create_campaign(ws, spec, "tester")


def _running(ws: Workspace, campaign_id: int) -> list[dict[str, Any]]:
    return list(
        ws.db["attempts"].rows_where("campaign_id = ? AND state = 'running'", [campaign_id])
    )


def test_pause_stop_and_resume_on_the_cluster(
    tmp_path: Path, short_package: Path, cluster: LocalCluster
) -> None:
    planner, log = _slow_planner(tmp_path, sleep=2)
    ws = open_workspace(tmp_path / "ws", _on_ray(cluster.address) + planner)
    approve_package(ws, short_package)
    campaign_id = _command_campaign(ws)
    start_campaign(ws, campaign_id)
    # An attempt sent is marked running while it still waits in a node's queue, and a pause
    # takes those back: wait for one that has reached the planner on its node.
    wait_for(lambda: log.is_file() and log.read_text(), "an attempt planning on a node", 300)
    pause_campaign(ws, campaign_id)
    assert _wait_status(ws, campaign_id, {"paused", "failed"}) == "paused"
    assert _running(ws, campaign_id) == [], "a pause lets the running attempts finish"
    done_at_pause = ws.db["attempts"].count_where("state = 'done'")
    assert done_at_pause >= 1

    start_campaign(ws, campaign_id)
    wait_for(lambda: _running(ws, campaign_id), "an attempt running again", limit_s=300)
    stop_campaign(ws, campaign_id)
    assert _wait_status(ws, campaign_id, {"stopped", "failed"}) == "stopped"
    assert _running(ws, campaign_id) == [], "a stop puts the running attempts back"

    start_campaign(ws, campaign_id)
    assert _wait_status(ws, campaign_id, {"done", "failed"}) == "done", _log(ws, campaign_id)
    rows = _rows(ws, "attempts", set())
    assert {row["state"] for row in rows} == {"done"}
    calls = Counter(log.read_text().splitlines())
    usable = sum(row["outcome"] != "unusable" for row in rows)
    assert len(calls) == usable, "every usable attempt reached the planner"
    assert sum(n - 1 for n in calls.values()) <= 2, "only the stopped attempts ran again"


def test_a_node_killed_mid_attempt_loses_nothing(tmp_path: Path, short_package: Path) -> None:
    cluster = LocalCluster(root=tmp_path / "cluster")
    cluster.root.mkdir()
    try:
        cluster.start_head(cpus=1)
        cluster.add_node("victim", cpus=1)
        nodes = wait_nodes(cluster.address, 2)
        victim = next(n["NodeID"] for n in nodes if "node:__internal_head__" not in n["Resources"])
        planner, log = _slow_planner(tmp_path, sleep=4)
        ws = open_workspace(tmp_path / "ws", _on_ray(cluster.address) + planner)
        approve_package(ws, short_package)
        campaign_id = _command_campaign(ws)
        start_campaign(ws, campaign_id)

        def planning_on_victim() -> dict[str, Any] | None:
            rows = ws.db["harness_workers"].rows_where(
                "node_id = ? AND stage = 'plan' AND attempt_id IS NOT NULL", [victim]
            )
            return next(rows, None)

        caught = wait_for(planning_on_victim, "an attempt planning on the victim", limit_s=300)
        cluster.kill("victim")
        assert _wait_status(ws, campaign_id, {"done", "failed"}) == "done", _log(ws, campaign_id)
        rows = _rows(ws, "attempts", set())
        assert {row["state"] for row in rows} == {"done"}
        assert {row["outcome"] for row in rows} <= {"failed", "unusable"}
        lost = next(row for row in rows if row["id"] == caught["attempt_id"])
        calls = Counter(log.read_text().splitlines())
        key = f"{lost['task']} {lost['temperature']} {lost['seed']}"
        assert calls[key] == 2, "the lost attempt was redone once"
        assert all(n == 1 for k, n in calls.items() if k != key)
        assert f"attempt {lost['id']} ({lost['task']}): node {victim[:8]}" in _log(ws, campaign_id)
        alive = {row["node_id"]: row["alive"] for row in ws.db["harness_nodes"].rows}
        assert alive[victim] == 0
    finally:
        cluster.stop()


def test_cluster_status_checks_every_node_on_the_node(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    ws = open_workspace(tmp_path / "ws", _on_ray(cluster.address))
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "cluster", "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"cluster at {cluster.address} (backend 'ray'), 1 CPUs per task"
    assert sum(line.endswith("1 CPUs  1 at once  ready") for line in lines) == 2
    assert lines[-1] == "2 tasks at once on the ready nodes"
    missing = open_workspace(tmp_path / "other", HARNESS)
    result = CliRunner().invoke(cli, ["--workspace", str(missing.root), "cluster", "status"])
    assert result.exit_code == 1
    assert "no cluster is configured: set [harness.ray] address" in result.output
