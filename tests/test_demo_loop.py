"""`cra demo --run`: the whole loop on a fresh demo workspace, without a person, in a real
subprocess: approve, gold campaign, examples and pairs, spot-check, build scope's frozen eval
set, curate, train a tiny adapter on the CPU, evaluate it against the base on that set, promote
it, roll it back, then train a second candidate at a learning rate of 1e-12 and evaluate it. The
demo's history gives each LoRA stage at least a full review round of items. One loop runs for
the module (it takes minutes); each test reads its workspace and output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import demo_counts
import pytest

from engine.adapters.activation import history, resolve, version_row
from engine.core.config import TrainingDataConfig
from engine.core.workspace import Workspace
from engine.demo.loop import DEMO_NOTE
from engine.evaluation.example_scores import paired_metrics
from engine.evaluation.gate import decision_evidence, latest_decision
from engine.evaluation.paired import PairedDifference
from engine.evaluation.runs import eval_row

pytestmark = pytest.mark.slow  # the whole demo loop, minutes of work

RESOLVED = len(demo_counts.USABLE)
UNUSABLE = len(demo_counts.KEPT) - RESOLVED - len(demo_counts.TEST_ONLY)
LORA_STAGES = ("task_analysis", "scope", "precision", "execute_code")
ROUND = TrainingDataConfig().review_sample_size
MIN_EVAL_ROWS = 10
"""The fewest paired examples the gate decides on without calling the set underpowered."""

STEPS = (
    "1. approved textkit@",
    "2. gold harness campaign 1 started",
    f"   campaign 1 done: {RESOLVED} resolved, {UNUSABLE} unusable",
    "3. training data: ",
    f"4. spot-check round 1 of scope: {ROUND} items drawn, decided by the stage contract's "
    f"checks: {ROUND} accepted, 0 rejected",
    "   eval set 1 (scope, reasoning base): ",
    "5. curated dataset scope-d1",
    "6. training run 1 started on scope-d1 (tiny model, CPU, 200 steps at learning rate 0.01)",
    "   run 1 done at step 200, loss ",
    "7. eval runs 1, 2 started for scope-v1",
    "   eval 1 of base: accuracy 0.000, relevant_recall ",
    "   eval 2 of scope-v1: accuracy ",
    "   gate: scope-v1 pass against base",
    "     * accuracy         0.000 -> ",
    "     * relevant_recall  ",
    "       valid_rate       ",
    "8. promoted scope-v1: no server is running at http://127.0.0.1:",
    "9. rolled scope back to reasoning: the base model serves scope now; nothing to load",
    "10. training run 2 started on scope-d1 (tiny model, CPU, 200 steps at learning rate 1e-12)",
    "   run 2 done at step 200, loss ",
    "11. eval run 3 started for scope-v2",
    "   eval 1 of base: ",
    "   eval 3 of scope-v2: ",
    "   gate: scope-v2 no gain against base",
    "     * accuracy         0.000 -> 0.000  +0.000 [+0.000, +0.000]  n=10",
    "     * relevant_recall  ",
    "       valid_rate       ",
    "     no gain: no primary metric improves with 95 % confidence",
    "the loop is done: scope-v1 was trained, evaluated, promoted and rolled back",
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`cra demo --run` once, in a subprocess: the workspace's root and what it printed."""
    root = tmp_path_factory.mktemp("demo-loop") / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cra"), "--workspace", str(root), "demo", "--run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result.stdout


def test_demo_run_walks_the_whole_loop(demo_run: tuple[Path, str]) -> None:
    """Every step of the loop says what it did, in order, and leaves its records."""
    root, stdout = demo_run
    lines = stdout.splitlines()
    shown = [
        line
        for line in lines
        if line.startswith(("1", "2", "3", "4", "5", "6", "7", "8", "9", "   ", "the loop"))
        and not line.endswith(") improves with 95 % confidence")
    ]
    gains = [line for line in lines if line.endswith(") improves with 95 % confidence")]
    assert gains and all(line.startswith("     scope.") for line in gains), stdout
    assert len(shown) == len(STEPS), stdout
    for line, start in zip(shown, STEPS, strict=True):
        assert line.startswith(start), (line, start)

    ws = Workspace.open(root)
    assert resolve(ws, "scope") == "reasoning"
    assert [h.action for h in history(ws, "scope")] == ["promote", "rollback"]
    first, second = ws.db["adapter_versions"].rows_where(order_by="id")
    assert (first["name"], first["status"], first["dataset_id"]) == (
        "scope-v1",
        "inactive",
        "scope-d1",
    )
    assert (second["name"], second["dataset_id"]) == ("scope-v2", "scope-d1")
    runs = list(ws.db["eval_runs"].rows_where(order_by="id"))
    assert [(run["target"], run["status"]) for run in runs] == [
        ("base", "done"),
        ("scope-v1", "done"),
        ("scope-v2", "done"),
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
        "approved textkit@",
        f"campaign 1 (gold, gold) done: {RESOLVED}/{RESOLVED} resolved (100%)",
        "Datasets curated · 1",
        "Training runs · 2 ended, 0 failed",
        "run 1 scope sft on scope-d1 done at step",
        "eval 1 of base on eval set 1 done: accuracy 0.000, ",
        "gate: scope-v1 pass against base: scope.",
        "gate: scope-v2 no gain against base: no gain: no primary metric improves",
        "scope promote base → scope-v1 by demo: demo loop",
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


def _paired(ws: Workspace, candidate: str) -> tuple[str, dict[str, PairedDifference]]:
    """The gate's newest verdict on `candidate` and the paired differences it rests on (as
    recorded, at the gate's per-metric level), by metric; the recorded evidence is checked
    against pairing the two runs' stored scores again."""
    decision = latest_decision(ws, version_row(ws, candidate).id)
    assert decision is not None
    evidence = decision_evidence(decision)
    runs = [eval_row(ws, decision[key]) for key in ("candidate_eval_id", "baseline_eval_id")]
    assert evidence == paired_metrics(ws, "scope", *runs, confidence=evidence[0].confidence)
    return decision["decision"], {d.metric: d for d in evidence}


def test_demo_adapter_beats_the_base_and_the_1e12_candidate_does_not(
    demo_run: tuple[Path, str],
) -> None:
    """The demo's scope adapter, trained on the CPU from fixed seeds, beats the base on at
    least 10 held-out examples with the gate's confidence (a primary metric's paired interval
    above zero), so the gate passes it, with no primary metric lower; its training loss falls;
    and the candidate trained at a learning rate of 1e-12 answers as the base does: no metric
    gains, and the gate says no gain."""
    root, _ = demo_run
    ws = Workspace.open(root)
    verdict, learned = _paired(ws, "scope-v1")
    assert verdict == "pass"
    primary = [learned["accuracy"], learned["relevant_recall"]]
    assert all(d.n >= MIN_EVAL_ROWS and d.baseline == 0.0 for d in primary)
    assert any(d.gain for d in primary), {d.metric: d.interval() for d in primary}
    assert all(d.delta >= 0 for d in primary)
    verdict, flat = _paired(ws, "scope-v2")
    assert verdict == "no gain"
    assert flat["accuracy"].n >= MIN_EVAL_ROWS
    assert not any(d.gain for d in flat.values()), {m: d.interval() for m, d in flat.items()}
    assert all(d.delta == 0 for d in flat.values())
    run = ws.db["training_runs"].get(1)
    losses = [
        json.loads(line)["loss"]
        for line in (root / run["run_dir"] / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(losses) == 200
    assert max(losses[-10:]) < 0.5 * losses[0], losses
