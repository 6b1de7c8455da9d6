"""Eval runs over a real approved package: the stage's frozen eval set read back,
execute_code pass@1 and the planning DPO's resolved rate through the real harness, and the
eval job end to end on the tiny model served by the CPU stand-in.

Model answers come from the reference (what the dataset trains on) or from a stand-in OpenAI
endpoint at the GPU-server boundary; the harness, the sandboxed tests and the database are real.
"""

import hashlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from eval_fixtures import accept_sample, add_eval, planning_pairs
from fake_vllm import QuietServer
from peft import LoraConfig, get_peft_model
from pilot_wait import wait_for
from transformers import AutoModelForCausalLM
from workspaces import HARNESS, NO_DRIVES, approve_and_validate

from app.cli import cli
from engine.adapters.activation import version_row
from engine.core.hashing import sha256_file
from engine.core.jobs import spawn_job
from engine.core.stages import BASE_MODEL, NotALoraStage, as_stage
from engine.core.workspace import Workspace
from engine.evaluation.eval_run import EvalRun
from engine.evaluation.eval_set import EvalSet, build_eval_set, load_eval_set, newest_eval_set
from engine.evaluation.example_scores import load_scores
from engine.evaluation.runs import EvalRunError, list_evals, reconcile_evals, start_eval
from engine.harness.gold import gold_output
from engine.harness.package import load_package
from engine.harness.task_validation import find_commit
from engine.runners.evaluation import pass_at_1, resolved_rate
from engine.training.runs import reconcile_runs, run_row, start_run
from engine.training.tiny_model import build_tiny_model
from engine.training_data.curate import curate
from engine.training_data.derive import build_training_data
from engine.training_data.store import add_items

pytestmark = pytest.mark.slow  # every demo commit validated and curated before each test

CONFIG = (
    NO_DRIVES + HARNESS + "[curation]\nmax_domain_share = 1.0\neval_share = 0.5\n"
    # The demo package's few commits give rounds smaller than the gate's default minimum.
    "[training_data]\nreview_min_sample = 1\n"
    "[evaluation.eval_sizes]\nexecute_code = 3\nplanning_dpo = 3\n"
)


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]) -> Path:
    """A workspace root with the demo package approved, its commits validated, training data
    built, execute_code and planning_dpo eval sets of their newest 3 tasks built, and datasets
    of those stages curated with half the other tasks held out."""
    base = tmp_path_factory.mktemp("eval")
    valid_package = copy_package(base)
    root = base / "ws"
    root.mkdir()
    (root / "cra.toml").write_text(CONFIG, encoding="utf-8")
    ws = Workspace.open(root)
    approve_and_validate(ws, valid_package)
    build_training_data(ws)
    add_items(ws.db, planning_pairs(ws))
    for stage, kind in (("execute_code", "sft"), ("planning_dpo", "preference")):
        build_eval_set(ws, stage)
        accept_sample(ws, stage)
        report = curate(ws, stage=stage, format=kind)
        assert [done.id for done in report.curated] == [f"{stage}-d1"], report.blocked
    ws.db.conn.close()
    return root


@pytest.fixture
def ws(tmp_path: Path, curated: Path) -> Workspace:
    root = tmp_path / "ws"
    shutil.copytree(curated, root, symlinks=True)
    return Workspace.open(root)


def _run(eval_id: int, target: str = "execute_code-v1") -> EvalRun:
    """Eval run `eval_id` of version `target` as the scorers read it (never recorded)."""
    stage = as_stage(target.rsplit("-v", 1)[0])
    return EvalRun(
        id=eval_id,
        target=target,
        adapter_id=None,
        stage=stage,
        base_model=BASE_MODEL[stage],
        dataset_id=f"{stage}-d1",
        eval_sha256="0" * 64,
        backend="local",
        status="running",
        rows=None,
        metrics_json=None,
        reason="",
        out_dir=f"evals/{eval_id}",
        created_at=None,
        created_by=None,
        finished_at=None,
        eval_set_id=None,
    )


def _eval_set(ws: Workspace, stage: str) -> EvalSet:
    record = newest_eval_set(ws, stage)
    assert record is not None
    return load_eval_set(ws, record.id)


def test_the_eval_set_is_the_stages_frozen_rows_with_their_tasks(ws: Workspace) -> None:
    """The execute_code eval set reads back the rows it froze, each a prompt and the commit's
    code edits with its harness task, and the dataset curated after it trains on none of them."""
    eval_set = _eval_set(ws, "execute_code")
    data = (ws.root / "eval_sets/execute_code" / eval_set.sha256[:12] / "eval.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == eval_set.sha256
    assert (eval_set.stage, eval_set.base_model) == ("execute_code", "coding")
    assert eval_set.size == 3 == eval_set.target_size and not eval_set.underpowered
    row = eval_set.rows[0]
    assert [m["role"] for m in row.messages] == ["system", "user"]
    paths = [edit["path"] for edit in json.loads(row.reference)]
    assert any(path.startswith("textkit/") for path in paths)  # the commit's code edits,
    assert not any(path.startswith("tests/") for path in paths)  # never its tests
    assert row.task is not None and len(eval_set.tasks()) == 3
    trained = {
        line["example_id"]
        for line in map(
            json.loads,
            (ws.root / "datasets/execute_code-d1/lineage.jsonl").read_text().splitlines(),
        )
        if line["file"] == "train.jsonl"
    }
    assert not trained & {r.example_id for r in eval_set.rows}


def test_pass_at_1_applies_the_answer_and_runs_the_tasks_tests(ws: Workspace) -> None:
    eval_set = _eval_set(ws, "execute_code")
    gold = [(row, row.reference) for row in eval_set.rows]
    value, outcomes = pass_at_1(ws, _run(1), "m", ws.root / "evals" / "1", gold)
    assert value == 1.0, outcomes
    assert {o["outcome"] for o in outcomes} == {"resolved"}
    task_dir = ws.root / "evals/1/tasks" / f"line-{eval_set.rows[0].line}"
    assert "+++ b/textkit/" in (task_dir / "patch.diff").read_text()
    assert ws.db["attempts"].count == 0

    broken = [
        (row, row.reference.replace('"search": "', '"search": "nowhere ', 1))
        for row in eval_set.rows
    ]
    garbage = [(row, "not edits at all") for row in eval_set.rows]
    value, outcomes = pass_at_1(ws, _run(2), "m", ws.root / "evals" / "2", broken)
    assert value == 0.0 and {o["outcome"] for o in outcomes} == {"failed"}
    assert "do not apply" in outcomes[0]["reason"]
    value, outcomes = pass_at_1(ws, _run(3), "m", ws.root / "evals" / "3", garbage)
    assert value == 0.0 and {o["outcome"] for o in outcomes} == {"invalid"}


class _Planner:
    """An OpenAI-compatible endpoint that answers each task with the commit's gold plan and
    edits, or with prose: the stand-in for the model on the GPU server."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.models: list[str] = []
        planner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                planner.models.append(body["model"])
                prompt = body["messages"][-1]["content"]
                content = next(
                    (answer for key, answer in planner.answers.items() if key in prompt),
                    "I would rather not plan this.",
                )
                data = json.dumps(
                    {
                        "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 20},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = QuietServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def planner() -> Iterator[_Planner]:
    endpoint = _Planner({})
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


def test_planning_runs_each_eval_task_through_the_harness(ws: Workspace, planner: _Planner) -> None:
    eval_set = _eval_set(ws, "planning_dpo")
    tasks = eval_set.tasks()
    assert tasks
    for task in tasks:
        package = load_package(ws, task.package_digest)
        commit = find_commit(package, task.sha)
        gold = gold_output(package.repo, commit.parent, commit.sha, list(commit.test_files))
        assert gold.output is not None
        planner.answers[commit.subject] = gold.output.model_dump_json()
    value, outcomes = resolved_rate(
        ws,
        _run(4, "planning_dpo-v1"),
        planner.url,
        "planning_dpo-v1",
        ws.root / "evals/4",
        eval_set,
    )
    assert value == 1.0, outcomes
    assert set(planner.models) == {"planning_dpo-v1"}
    planner.answers.clear()
    value, outcomes = resolved_rate(
        ws,
        _run(5, "planning_dpo-v1"),
        planner.url,
        "planning_dpo-v1",
        ws.root / "evals/5",
        eval_set,
    )
    assert value == 0.0 and {o["outcome"] for o in outcomes} == {"failed"}
    assert ws.db["attempts"].count == 0


def test_start_refuses_what_cannot_be_evaluated(ws: Workspace) -> None:
    with pytest.raises(EvalRunError, match="no adapter version 'scope-v9'"):
        start_eval(ws, adapter="scope-v9")
    with pytest.raises(EvalRunError, match="needs a stage"):
        start_eval(ws)
    with pytest.raises(EvalRunError, match="scope has no eval set yet; `cra eval set build"):
        start_eval(ws, stage="scope")
    with pytest.raises(NotALoraStage, match="meta_plan has no evaluation: planning"):
        start_eval(ws, stage="meta_plan")
    with pytest.raises(EvalRunError, match="unknown eval backend"):
        start_eval(ws, stage="execute_code", backend="gpu")
    assert list_evals(ws) == []


def _wait_settled(ws: Workspace, eval_id: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        reconcile_evals(ws)
        row = ws.db["eval_runs"].get(eval_id)
        return None if row["status"] in ("queued", "running") else row

    return wait_for(settled, f"eval run {eval_id} to settle", every_s=0.2)


def test_a_run_that_cannot_reach_its_model_fails_with_the_reason(ws: Workspace) -> None:
    [eval_id] = start_eval(ws, stage="execute_code", backend="server")
    with pytest.raises(EvalRunError, match="still under way"):
        start_eval(ws, stage="execute_code")
    row = _wait_settled(ws, eval_id)
    assert row["status"] == "failed"
    assert "[serving] bases.coding is not set" in row["reason"]
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "eval", "status"])
    assert result.exit_code == 0 and f"{eval_id:>4} base" in result.output


def test_a_run_whose_job_died_fails_at_reconcile(ws: Workspace) -> None:
    eval_id = add_eval(ws, "execute_code", None, {}, dataset_id="execute_code-d1", status="running")
    job_id = spawn_job(ws, "eval", eval_id, ["sleep", "30", str(eval_id)])
    assert reconcile_evals(ws) == []
    os.kill(ws.db["jobs"].get(job_id)["pid"], signal.SIGKILL)
    row = _wait_settled(ws, eval_id)
    assert (row["status"], row["reason"]) == (
        "failed",
        "the eval job ended before this run finished; run it again",
    )
    assert ws.db["jobs"].get(job_id)["status"] == "failed"


def _tiny_adapter(ws: Workspace, base: Path) -> None:
    """Register execute_code-v1: a LoRA adapter on the tiny base, its files hashed."""
    torch.manual_seed(2)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    folder = ws.adapters_dir / "execute_code" / "v1"
    model.save_pretrained(folder)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
    ws.db["adapter_versions"].insert(
        {
            "stage": "execute_code",
            "version": 1,
            "name": "execute_code-v1",
            "status": "candidate",
            "base_model": "coding",
            "base_model_path": "models/base",
            "rank": 8,
            "path": "adapters/execute_code/v1",
            "dataset_id": "execute_code-d1",
            "files_json": json.dumps(files),
            "created_at": "2026-11-21T02:00:00Z",
        }
    )


def test_the_eval_job_scores_the_base_then_the_candidate_and_gates_it(ws: Workspace) -> None:
    base = build_tiny_model(ws.root / "models" / "base")
    config = CONFIG + (
        '[training.base_models]\ncoding = "models/base"\n'
        '[evaluation]\nbackend = "local"\nmax_tokens = 8\n'
    )
    (ws.root / "cra.toml").write_text(config, encoding="utf-8")
    ws = Workspace.open(ws.root)
    _tiny_adapter(ws, base)
    result = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "eval", "run", "--adapter", "execute_code-v1", "--wait"]
    )
    assert result.exit_code == 0, result.output
    runs = list(ws.db["eval_runs"].rows_where(order_by="id"))
    assert [(r["target"], r["status"]) for r in runs] == [
        ("base", "done"),
        ("execute_code-v1", "done"),
    ], runs
    rows = len(_eval_set(ws, "execute_code").rows)
    for run in runs:
        metrics = json.loads(run["metrics_json"])
        assert set(metrics) == {"valid_rate", "pass_at_1"}
        answers = (ws.root / run["out_dir"] / "answers.jsonl").read_text().splitlines()
        assert len(answers) == run["rows"] == rows
        assert all(json.loads(line)["answer"] for line in answers)
        scores = load_scores(ws, run["id"])
        assert [score.line for score in scores.values()] == list(range(1, rows + 1))
        for metric, value in metrics.items():
            counted = [s.counts[metric] for s in scores.values() if metric in s.counts]
            assert value == sum(h for h, _ in counted) / sum(o for _, o in counted), metric
    # Three tasks, both scoring alike: no longer a pass, as it was when a tie passed.
    assert "gate: execute_code-v1 underpowered against base" in result.output
    assert "under the floor of 10 below which an interval means nothing" in result.output
    assert "  * pass_at_1        " in result.output
    [decision] = ws.db["gate_decisions"].rows
    assert decision["decision"] == "underpowered"
    assert version_row(ws, "execute_code-v1").status == "candidate"
    assert (decision["baseline_eval_id"], decision["candidate_eval_id"]) == (
        runs[0]["id"],
        runs[1]["id"],
    )
    assert (
        ws.db["jobs"].get(ws.db.execute("SELECT MAX(id) FROM jobs").fetchone()[0])["status"]
        == "exited"
    )

    again = start_eval(ws, adapter="execute_code-v1")
    assert [ws.db["eval_runs"].get(i)["target"] for i in again] == ["execute_code-v1"]
    _wait_settled(ws, again[0])


def test_a_candidate_that_cannot_improve_is_not_passed(ws: Workspace) -> None:
    """The issue's core: a scope adapter trained on the tiny model at a learning rate of 1e-12
    answers every held-out row exactly as the base does, so after a real `cra eval run --wait`
    on a full-size eval set the gate says no gain, and it is not promoted without an override.
    (The strategy's minimums are switched off here, so it is the gain check that refuses it.)"""
    build_tiny_model(ws.root / "models" / "base")
    config = (
        "[usb]\nmount_roots = []\n[harness]\nflaky_runs = 1\n"
        "[curation]\nmax_domain_share = 1.0\neval_share = 0.2\n"
        "[training_data]\nreview_min_sample = 1\n"
        '[training.base_models]\nreasoning = "models/base"\n'
        '[evaluation]\nbackend = "local"\nmax_tokens = 8\nmax_eval_share = 0.5\n'
        "[evaluation.eval_sizes]\nscope = 10\n"
        '[gate.minimums]\n"scope.accuracy" = 0\n"scope.relevant_recall" = 0\n'
    )
    (ws.root / "cra.toml").write_text(config, encoding="utf-8")
    ws = Workspace.open(ws.root)
    eval_set = build_eval_set(ws, "scope").eval_set
    assert (eval_set.size, eval_set.underpowered) == (10, False)
    accept_sample(ws, "scope")
    assert [d.id for d in curate(ws, stage="scope", format="sft").curated] == ["scope-d1"]
    run_id = start_run(
        ws, "scope-d1", "scope", overrides={"learning_rate": 1e-12, "max_steps": 2}, force=True
    )

    def ended() -> bool:
        reconcile_runs(ws)
        return run_row(ws, run_id).status not in ("pending", "running", "stopping")

    wait_for(ended, "the training run to end", limit_s=300, every_s=0.5)
    run = run_row(ws, run_id)
    assert (run.status, run.adapter_name) == ("done", "scope-v1"), run.reason

    result = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "eval", "run", "--adapter", "scope-v1", "--wait"]
    )
    assert result.exit_code == 0, result.output
    base, mine = list(ws.db["eval_runs"].rows_where(order_by="id"))
    assert (base["target"], mine["target"], mine["rows"]) == ("base", "scope-v1", 10)
    answers = [
        [
            json.loads(line)["answer"]
            for line in (ws.root / run["out_dir"] / "answers.jsonl").read_text().splitlines()
        ]
        for run in (base, mine)
    ]
    assert answers[0] == answers[1]
    assert "gate: scope-v1 no gain against base" in result.output
    assert "  no gain: no primary metric improves with 95 % confidence" in result.output
    [decision] = ws.db["gate_decisions"].rows
    assert (decision["decision"], decision["underpowered"]) == ("no gain", 0)
    assert version_row(ws, "scope-v1").status == "candidate"
    refused = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "adapters", "promote", "scope-v1"]
    )
    assert refused.exit_code == 1
    assert "scope-v1's gate decision against base is no gain" in refused.output
