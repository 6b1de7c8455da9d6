"""`cra demo --run`: the whole loop on a fresh demo workspace, without a person, in a real
subprocess: approve, gold campaign, examples and pairs, spot-check, build scope's frozen eval
set, curate, train a tiny adapter on the CPU, evaluate it against the base on that set, promote
it, roll it back. The demo's history gives each LoRA stage at least a full review round of
items."""

import json
import os
import subprocess
import sys
from pathlib import Path

import demo_counts

from engine.adapters.activation import history, resolve
from engine.config import TrainingDataConfig
from engine.demo.loop import DEMO_NOTE
from engine.workspace import Workspace

RESOLVED = len(demo_counts.USABLE)
UNUSABLE = len(demo_counts.KEPT) - RESOLVED
LORA_STAGES = ("task_analysis", "scope", "precision", "execute_code")
ROUND = TrainingDataConfig().review_sample_size

STEPS = (
    "1. approved textkit from ",
    "2. gold harness campaign 1 started",
    f"   campaign 1 done: {RESOLVED} resolved, {UNUSABLE} unusable",
    "3. training data: ",
    f"4. spot-check round 1 of scope: {ROUND} items drawn, decided by the stage contract's "
    f"checks: {ROUND} accepted, 0 rejected",
    "   eval set 1 (scope, reasoning base): ",
    "5. curated dataset scope-d1",
    "6. training run 1 started on scope-d1 (tiny model, CPU)",
    "   run 1 done at step ",
    "7. eval runs 1, 2 started (base, then scope-v1)",
    "   eval 1 of base: ",
    "   eval 2 of scope-v1: ",
    "   gate: scope-v1 underpowered against base",
    "8. promoted scope-v1 over its 'underpowered' gate decision: no server is running at "
    "http://127.0.0.1:8765",
    "9. rolled scope back to reasoning: the base model serves scope now; nothing to load",
    "the loop is done: scope-v1 was trained, evaluated, promoted and rolled back",
)


def test_demo_run_walks_the_whole_loop(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cra"), "--workspace", str(root), "demo", "--run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    shown = [
        line
        for line in lines
        if line.startswith(("1", "2", "3", "4", "5", "6", "7", "8", "9", "   ", "the loop"))
    ]
    assert len(shown) == len(STEPS), result.stdout
    for line, start in zip(shown, STEPS, strict=True):
        assert line.startswith(start), (line, start)

    ws = Workspace.open(root)
    assert resolve(ws, "scope") == "reasoning"
    assert [h["action"] for h in history(ws, "scope")] == ["promote", "rollback"]
    [version] = ws.db["adapter_versions"].rows
    assert (version["name"], version["status"], version["dataset_id"]) == (
        "scope-v1",
        "inactive",
        "scope-d1",
    )
    runs = list(ws.db["eval_runs"].rows_where(order_by="id"))
    assert [(run["target"], run["status"]) for run in runs] == [
        ("base", "done"),
        ("scope-v1", "done"),
    ]
    assert set(json.loads(runs[1]["metrics_json"])) == {"accuracy", "relevant_recall", "valid_rate"}
    assert {run["eval_set_id"] for run in runs} == {1}
    trace = subprocess.run(
        [
            str(Path(sys.executable).parent / "cra"),
            "--workspace",
            str(root),
            "adapters",
            "trace",
            "scope-v1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dataset = ws.db["datasets"].get("scope-d1")
    assert f"on dataset scope-d1 (manifest sha256 {dataset['manifest_sha256']})" in trace
    assert "  trained by run 1 (sft, done)" in trace
    [package] = ws.db["packages"].rows
    assert f"package textkit, manifest sha256 {package['digest']}, approved" in trace
    for (sha,) in ws.db.execute(
        "SELECT DISTINCT sha FROM examples WHERE id IN (SELECT example_id FROM dataset_examples)"
    ):
        assert f"          {sha[:12]} " in trace
    for row in ws.db["package_files"].rows:
        assert f"{row['sha256']}  {row['path']}" in trace
    report = subprocess.run(
        [
            str(Path(sys.executable).parent / "cra"),
            "--workspace",
            str(root),
            "report",
            "--since",
            "1h",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for expected in (
        "Packages · 1 approved, 0 rejected",
        "approved textkit by demo",
        f"campaign 1 (gold, gold) done: {RESOLVED}/{RESOLVED} resolved (100%)",
        "Datasets curated · 1",
        "Training runs · 1 ended, 0 failed",
        "run 1 scope sft on scope-d1 done at step",
        "gate: scope-v1 underpowered against base: underpowered: 2 paired examples",
        "scope promoted scope-v1 over its 'underpowered' gate decision (base → scope-v1 by demo): "
        "demo loop: the tiny demo model cannot gain",
        "Adapters · 1 promoted, 1 rolled back",
        "scope rollback scope-v1 → base by demo: demo loop",
    ):
        assert expected in report, (expected, report)
    counts = dict(
        ws.db.execute("SELECT stage || ' ' || kind, COUNT(*) FROM examples GROUP BY 1").fetchall()
    )
    assert counts == {
        **{f"{stage} sft": n for stage, n in demo_counts.SFT_EXAMPLES.items()},
        "execute_code preference": demo_counts.CODEFAVOR_PAIRS,
    }
    for stage in LORA_STAGES:
        assert ws.db["examples"].count_where("stage = ?", [stage]) >= ROUND, stage
    decided = set(ws.db.execute("SELECT decision, note FROM review_items").fetchall())
    assert decided == {("accept", DEMO_NOTE)}
    assert "not read by a person" in DEMO_NOTE
