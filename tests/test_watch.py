"""The watch after a promotion, over a real approved package: the planning DPO's held-out tasks
run through the real harness and sandboxed tests in a background job, with the model before
the promotion and the promoted version in the planner slot.

The models answer from a stand-in vLLM server at the GPU-server boundary (one version answers
each task with the commit's gold plan and edits, the others with prose), or from the tiny model
served by the CPU stand-in. The rates, the rollback and its record come from the real code path.
"""

import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from eval_fixtures import accept_sample, add_version, pass_gate, planning_pairs
from fake_vllm import FakeVllm
from peft import LoraConfig, get_peft_model
from pilot_wait import wait_for
from transformers import AutoModelForCausalLM
from workspaces import HARNESS, NO_DRIVES, approve_and_validate

from app.cli import cli
from engine.adapters.activation import history, resolve, version_by_id
from engine.core.hashing import sha256_file
from engine.core.workspace import Workspace
from engine.evaluation.eval_set import build_eval_set, load_eval_set, newest_eval_set
from engine.harness.gold import gold_output
from engine.harness.package import load_package
from engine.harness.task_validation import find_commit
from engine.promotion.switch import promote_version
from engine.promotion.watch import reconcile_watches, watch_tasks
from engine.reports.morning import morning_report, report_text
from engine.runners.watch import main as watch_worker_main
from engine.training.tiny_model import build_tiny_model
from engine.training_data.curate import curate
from engine.training_data.derive import build_training_data
from engine.training_data.store import add_items

STAGE = "planning_dpo"
CONFIG = (
    NO_DRIVES + HARNESS + "[curation]\nmax_domain_share = 1.0\neval_share = 0.5\n"
    "[training_data]\nreview_min_sample = 1\n"
)
EVAL_SET_CONFIG = "[evaluation]\nmax_eval_share = 0.5\n[evaluation.eval_sizes]\nplanning_dpo = 6\n"
"""Half the demo's planning tasks, six or more, in the eval set the watch runs."""
PROSE = "I would rather not plan this."


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]) -> Path:
    """A workspace root with the demo package approved, its commits validated, and a
    planning_dpo dataset curated with half its tasks held out."""
    base = tmp_path_factory.mktemp("watch")
    package = copy_package(base)
    root = base / "ws"
    root.mkdir()
    (root / "cra.toml").write_text(CONFIG + EVAL_SET_CONFIG, encoding="utf-8")
    ws = Workspace.open(root)
    approve_and_validate(ws, package)
    build_training_data(ws)
    add_items(ws.db, planning_pairs(ws))
    build_eval_set(ws, STAGE)
    accept_sample(ws, STAGE)
    report = curate(ws, stage=STAGE, format="preference")
    assert [done.id for done in report.curated] == [f"{STAGE}-d1"], report.blocked
    ws.db.conn.close()
    return root


def _workspace(root: Path, extra: str) -> Workspace:
    (root / "cra.toml").write_text(CONFIG + extra, encoding="utf-8")
    return Workspace.open(root)


@pytest.fixture
def served(tmp_path: Path, curated: Path) -> Iterator[tuple[Workspace, FakeVllm]]:
    """The curated workspace served by a stand-in vLLM on which only planning_dpo-v1 plans
    well: it answers each task with the commit's gold plan and edits, every other model with
    prose. planning_dpo-v1 and -v2 are registered on the task set's dataset."""
    root = tmp_path / "ws"
    shutil.copytree(curated, root, symlinks=True)
    (root / "models" / "reasoning").mkdir(parents=True)
    (root / "models" / "reasoning" / "config.json").write_text("{}")
    with FakeVllm(str(root / "models" / "reasoning")) as fake:
        ws = _workspace(
            root,
            f'[serving]\nbase_url = "{fake.url}"\nbases.reasoning = "models/reasoning"\n'
            '[evaluation]\nbackend = "server"\n',
        )
        gold = {}
        for task in load_eval_set(ws, newest_eval_set(ws, STAGE).id).tasks():
            package = load_package(ws, task.package_digest)
            commit = find_commit(package, task.sha)
            output = gold_output(package.repo, commit.parent, commit.sha, list(commit.test_files))
            assert output.output is not None
            gold[commit.subject] = output.output.model_dump_json()

        def answer(model: str, messages: list[dict[str, str]]) -> str:
            if model != f"{STAGE}-v1":
                return PROSE
            prompt = messages[-1]["content"]
            return next(plan for subject, plan in gold.items() if subject in prompt)

        fake.answer = answer
        for version in (1, 2):
            add_version(ws, STAGE, version, dataset_id=f"{STAGE}-d1")
        yield ws, fake


def _settled(ws: Workspace, watch_id: int) -> dict[str, Any]:

    def settled() -> dict[str, Any] | None:
        reconcile_watches(ws)
        row = ws.db["watch_runs"].get(watch_id)
        return None if row["status"] in ("queued", "running") else row

    return wait_for(settled, f"watch {watch_id} to settle", limit_s=240, every_s=0.3)


def _watch_cli(ws: Workspace, *args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "adapters", "watch", *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.mark.slow  # every demo commit validated and curated first
def test_a_drop_past_the_tolerance_rolls_the_stage_back_with_the_evidence(
    served: tuple[Workspace, FakeVllm],
) -> None:
    """v1 (gold plans) over the base (prose) is held; v2 (prose) over v1 resolves fewer tasks by
    more than the tolerance, so the watch rolls planning_dpo back to v1 as operator `watch`,
    naming both rates, n and the flipped tasks; v1's result from the first watch is the
    second's baseline."""
    ws, _ = served
    tasks = [task.name for task in watch_tasks(ws, version_by_id(ws, 1)).tasks]
    n = len(tasks)
    assert n > 5  # more tasks flip than the reason names
    pass_gate(ws, f"{STAGE}-v1", "base")
    first = promote_version(ws, f"{STAGE}-v1", operator="ana")
    assert first.watch.startswith(f"watch 1 started: {STAGE}-v1 against base on {n} held-out")
    held = _settled(ws, 1)
    assert (held["status"], held["verdict"], held["reason"]) == ("done", "held", "")
    baseline = ws.db["e2e_results"].get(held["baseline_result_id"])
    after = ws.db["e2e_results"].get(held["after_result_id"])
    assert (baseline["target"], baseline["resolved"], baseline["n"]) == ("base", 0, n)
    assert (after["target"], after["resolved"], after["n"]) == (f"{STAGE}-v1", n, n)
    assert resolve(ws, STAGE) == f"{STAGE}-v1"

    pass_gate(ws, f"{STAGE}-v2", f"{STAGE}-v1")
    second = promote_version(ws, f"{STAGE}-v2", operator="ana")
    assert second.watch.startswith(f"watch 2 started: {STAGE}-v2 against {STAGE}-v1")
    rolled = _settled(ws, 2)
    assert (rolled["status"], rolled["verdict"]) == ("done", "rolled_back")
    assert rolled["baseline_result_id"] == held["after_result_id"]
    assert ws.db["e2e_results"].count == 3
    assert resolve(ws, STAGE) == f"{STAGE}-v1"
    record = history(ws, STAGE)[-1]
    assert (record.id, record.action, record.operator) == (
        rolled["rollback_id"],
        "rollback",
        "watch",
    )
    assert (record.from_name, record.to_name) == (f"{STAGE}-v2", f"{STAGE}-v1")
    assert record.reason.startswith(
        f"watch 2: end-to-end resolved rate 1.000 ({n}/{n}) with {STAGE}-v1, 0.000 (0/{n}) "
        f"with {STAGE}-v2: a drop of 1.000, past the tolerance 0.050; {n} tasks flipped: "
    )
    named = [task for task in tasks if f"{task} resolved→failed" in record.reason]
    assert named == tasks[:5] and record.reason.endswith(f" and {n - 5} more")
    shown = _watch_cli(ws, "2")
    assert shown[1:] == [
        *(f"  {task}: resolved → failed" for task in tasks),
        f"  artifacts: {ws.root / 'watches' / '2'}",
    ]

    lines = _watch_cli(ws)
    assert lines == [
        f"watch 2 {STAGE}: {STAGE}-v2 against {STAGE}-v1 rolled back: resolved 1.000 → 0.000 "
        f"on {n} tasks (baseline from watch 1), {n} flipped, tolerance 0.050",
        f"watch 1 {STAGE}: {STAGE}-v1 against base held: resolved 0.000 → 1.000 on {n} tasks, "
        f"{n} flipped, tolerance 0.050",
    ]
    since = datetime.now(UTC) - timedelta(hours=1)
    text = report_text(morning_report(ws, since), since)
    assert "Watches after promotion · 1 held, 1 rolled back" in text
    assert lines[0] in text and lines[1] in text


@pytest.mark.slow  # every demo commit validated and curated first
def test_a_drop_within_the_tolerance_keeps_the_version(tmp_path: Path, curated: Path) -> None:
    """The tiny model served by the CPU stand-in, bare and with a planning_dpo adapter, resolves
    no task either way: no drop, the watch holds and the adapter keeps serving."""
    root = tmp_path / "ws"
    shutil.copytree(curated, root, symlinks=True)
    base = build_tiny_model(root / "models" / "base")
    ws = _workspace(
        root,
        '[training.base_models]\nreasoning = "models/base"\n'
        '[evaluation]\nbackend = "local"\nmax_tokens = 8\n',
    )
    torch.manual_seed(2)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    folder = ws.adapters_dir / STAGE / "v1"
    model.save_pretrained(folder)
    ws.db["adapter_versions"].insert(
        {
            "stage": STAGE,
            "version": 1,
            "name": f"{STAGE}-v1",
            "status": "candidate",
            "base_model": "reasoning",
            "base_model_path": "models/base",
            "rank": 8,
            "path": f"adapters/{STAGE}/v1",
            "dataset_id": f"{STAGE}-d1",
            "files_json": json.dumps(
                {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
            ),
            "created_at": "2026-11-21T02:00:00Z",
        }
    )
    pass_gate(ws, f"{STAGE}-v1", "base")
    promote_version(ws, f"{STAGE}-v1")
    row = _settled(ws, 1)
    assert (row["status"], row["verdict"]) == ("done", "held"), row["reason"]
    results = list(ws.db["e2e_results"].rows_where(order_by="id"))
    assert [(r["target"], r["resolved"]) for r in results] == [("base", 0), (f"{STAGE}-v1", 0)]
    outcomes = json.loads(results[1]["outcomes_json"])
    assert {o["outcome"] for o in outcomes} == {"failed"}, outcomes
    assert resolve(ws, STAGE) == f"{STAGE}-v1"
    assert [r.action for r in history(ws, STAGE)] == ["promote"]


@pytest.mark.slow  # every demo commit validated and curated first
def test_switched_off_or_for_a_stage_outside_the_planner_slot_no_watch_runs(
    tmp_path: Path, curated: Path
) -> None:
    """`[watch] enabled = false`: promoting a planning_dpo version starts nothing. A scope
    version is never watched: the harness does not call it. A version with no held-out tasks
    is promoted, and its watch is recorded failed, naming why."""
    root = tmp_path / "ws"
    shutil.copytree(curated, root, symlinks=True)
    ws = _workspace(root, "[watch]\nenabled = false\n")
    add_version(ws, STAGE, 1, dataset_id=f"{STAGE}-d1")
    add_version(ws, "scope", 1)
    pass_gate(ws, f"{STAGE}-v1", "base")
    pass_gate(ws, "scope-v1", "base")
    result = promote_version(ws, f"{STAGE}-v1")
    assert result.watch == "off ([watch] enabled = false); no end-to-end check runs"
    ws = _workspace(root, "")
    result = promote_version(ws, "scope-v1")
    assert result.watch.startswith("none: the harness's planner slot does not call scope")
    assert ws.db["watch_runs"].count == 0
    assert ws.db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'watch'").fetchone()[0] == 0
    assert _watch_cli(ws) == [
        "no watches yet: promoting a planning_dpo or execute_code version starts one"
    ]
    add_version(ws, "execute_code", 1)
    pass_gate(ws, "execute_code-v1", "base")
    result = promote_version(ws, "execute_code-v1")
    why = (
        "execute_code-v1: execute_code has no eval set, so no held-out tasks; "
        "`cra eval set build --stage execute_code` builds it"
    )
    assert result.watch == f"watch 1 could not start: {why}"
    assert resolve(ws, "execute_code") == "execute_code-v1"
    assert _watch_cli(ws) == [f"watch 1 execute_code: execute_code-v1 against base failed: {why}"]


@pytest.mark.slow  # every demo commit validated and curated first
def test_a_killed_watch_fails_at_reconcile_and_never_rolls_back(
    served: tuple[Workspace, FakeVllm],
) -> None:
    """The watch job is killed while the model answers its first task: reconcile marks the
    watch failed, the promoted version keeps serving and no rollback is recorded."""
    ws, fake = served
    asked, release = threading.Event(), threading.Event()

    def hang(model: str, messages: list[dict[str, str]]) -> str:
        asked.set()
        release.wait(60)
        return PROSE

    fake.answer = hang
    pass_gate(ws, f"{STAGE}-v1", "base")
    promote_version(ws, f"{STAGE}-v1")
    try:
        assert asked.wait(120), "the watch never asked the model"
        assert reconcile_watches(ws) == []
        job = ws.db.execute("SELECT pid FROM jobs WHERE kind = 'watch' AND ref_id = 1").fetchone()
        os.kill(job[0], signal.SIGKILL)
        row = _settled(ws, 1)
    finally:
        release.set()
    assert (row["status"], row["verdict"], row["reason"]) == (
        "failed",
        None,
        "the watch job ended before it decided; nothing was rolled back",
    )
    assert resolve(ws, STAGE) == f"{STAGE}-v1"
    assert [r.action for r in history(ws, STAGE)] == ["promote"]
    assert ws.db["e2e_results"].count == 0
    assert _watch_cli(ws) == [
        f"watch 1 {STAGE}: {STAGE}-v1 against base failed: the watch job ended before it "
        "decided; nothing was rolled back"
    ]


@pytest.mark.slow  # every demo commit validated and curated first
def test_a_drop_the_tolerance_allows_keeps_the_promoted_version(
    served: tuple[Workspace, FakeVllm],
) -> None:
    """With `[watch] tolerance = 1.0`, v2 resolving every task fewer than v1 is a drop of 1.000,
    not past the tolerance: the watch holds and v2 keeps serving."""
    ws, _ = served
    ws = Workspace.open(ws.root)
    config = (ws.root / "cra.toml").read_text() + "[watch]\ntolerance = 1.0\n"
    (ws.root / "cra.toml").write_text(config, encoding="utf-8")
    ws = Workspace.open(ws.root)
    pass_gate(ws, f"{STAGE}-v1", "base")
    promote_version(ws, f"{STAGE}-v1")
    assert _settled(ws, 1)["verdict"] == "held"
    pass_gate(ws, f"{STAGE}-v2", f"{STAGE}-v1")
    promote_version(ws, f"{STAGE}-v2")
    row = _settled(ws, 2)
    assert (row["status"], row["verdict"], row["rollback_id"]) == ("done", "held", None)
    assert _watch_cli(ws)[0].startswith(
        f"watch 2 {STAGE}: {STAGE}-v2 against {STAGE}-v1 held: resolved 1.000 → 0.000 on "
    )
    assert resolve(ws, STAGE) == f"{STAGE}-v2"
    assert [r.action for r in history(ws, STAGE)] == ["promote", "promote"]


@pytest.mark.slow  # every demo commit validated and curated first
def test_a_model_that_gives_no_answer_fails_the_watch_without_a_rollback(
    served: tuple[Workspace, FakeVllm],
) -> None:
    """The server takes no chat requests (HTTP 404): the watch cannot measure, fails naming
    why, records no result and rolls nothing back."""
    ws, fake = served
    fake.answer = None
    pass_gate(ws, f"{STAGE}-v1", "base")
    promote_version(ws, f"{STAGE}-v1")
    row = _settled(ws, 1)
    assert row["status"] == "failed"
    assert row["reason"].startswith("watch 1: base gave no answer for task ")
    assert "answered HTTP 404" in row["reason"]
    assert ws.db["e2e_results"].count == 0
    assert resolve(ws, STAGE) == f"{STAGE}-v1"
    assert [r.action for r in history(ws, STAGE)] == ["promote"]


def test_the_watch_job_takes_one_watch_id(capsys: pytest.CaptureFixture[str]) -> None:
    """The watch job's entry point refuses anything but one watch id: exit 2 and its usage."""
    assert watch_worker_main(["one"]) == 2
    assert watch_worker_main([]) == 2
    usage = "usage: python -m engine.runners.watch WATCH_ID\n"
    assert capsys.readouterr().err == usage * 2
