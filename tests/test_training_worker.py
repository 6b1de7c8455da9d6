"""The training worker as the console runs it: a real subprocess training a tiny local model.

A tiny Qwen2 model with a tokenizer trained on the spot stands in for the bases; two dataset
folders written here (SFT and preference rows, each with its manifest) stand in for
`cra curate-data`'s. Runs are a few dozen steps of CPU training each.
"""

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pilot_wait import wait_for
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.training.adapter_io import generate, load_base, load_with_adapter
from engine.training.backend_trl import Settings, effective_settings
from engine.training.contract import (
    ADAPTER_DIR,
    BACKEND_FILE,
    CHECKPOINTS_DIR,
    LOG_FILE,
    METRICS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    STOP_FILE,
    TARGET_MODULES,
    BackendChoice,
    Hyper,
    RunResult,
    RunSpec,
    StepRecord,
)
from engine.training.tiny_model import IM_END, PAD, build_tiny_model
from engine.training.worker import newest_checkpoint
from engine.training_data.dataset_manifest import (
    Counts,
    DatasetManifest,
    FileRecord,
    Replay,
    ReviewRecord,
    Split,
)

BASE = "models/tiny"
SYSTEM = {"role": "system", "content": "You plan code changes."}
TASKS = [
    ("Fix the failing test in parser.py.", "1. Read parser.py\n2. Change parse_line"),
    ("Add a push method to Stack.", "1. Edit stack.py\n2. Add push"),
    ("Rename add to plus.", "1. Rename add\n2. Run pytest"),
    ("Raise ValueError on None.", "1. Check value\n2. Raise ValueError"),
]
PROBE = [SYSTEM, {"role": "user", "content": TASKS[0][0]}]
WAIT_S = 300


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def write_dataset(ws: Path, dataset_id: str, stage: str, rows: list[dict]) -> str:
    """A dataset folder as `cra curate-data` writes it; returns its manifest's sha256."""
    folder = ws / "datasets" / dataset_id
    folder.mkdir(parents=True)
    train = "".join(json.dumps(row) + "\n" for row in rows).encode()
    eval_ = (json.dumps(rows[0]) + "\n").encode()
    lineage = b""
    files = {"train.jsonl": train, "eval.jsonl": eval_, "lineage.jsonl": lineage}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = DatasetManifest(
        id=dataset_id,
        stage=stage,
        base_model="reasoning",
        format="preference" if "prompt" in rows[0] else "sft",
        created_at="2026-05-01T08:00:00Z",
        created_by="test",
        plan_id=None,
        review=ReviewRecord(round_id=1, reviewed=len(rows), rejected=0, flipped=0),
        files={
            name: FileRecord(
                sha256=hashlib.sha256(data).hexdigest(), rows=data.count(b"\n"), bytes=len(data)
            )
            for name, data in files.items()
        },
        counts=Counts(
            candidates=len(rows) + 1,
            excluded_by_review=0,
            flipped_by_review=0,
            exact_duplicates=0,
            near_duplicates=0,
            dropped_for_balance=0,
            train=len(rows),
            eval=1,
            replay=0,
        ),
        sources={"train": {"synthetic": len(rows)}, "eval": {"synthetic": 1}},
        domains={"train": {"text": len(rows)}, "eval": {"text": 1}},
        split=Split(eval_share=0.2, cutoff=None, eval_repos=[], train_tasks=4, eval_tasks=1),
        replay=Replay(target_share=0.0, share=0.0, parents=[]),
        near_duplicate_threshold=0.9,
        max_domain_share=1.0,
        seed=0,
    )
    data = manifest.model_dump_json(indent=2).encode()
    (folder / "manifest.json").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace folder holding the tiny base and an SFT and a preference dataset."""
    root = tmp_path_factory.mktemp("workspace")
    build_tiny_model(root / BASE)
    sft = [{"messages": [SYSTEM, user(task), assistant(plan)]} for task, plan in TASKS]
    pairs = [
        {
            "prompt": [SYSTEM, user(task)],
            "chosen": [assistant(plan)],
            "rejected": [assistant("1. Rewrite everything")],
        }
        for task, plan in TASKS
    ]
    shas = {
        "scope-d1": write_dataset(root, "scope-d1", "scope", sft),
        "planning_dpo-d1": write_dataset(root, "planning_dpo-d1", "planning_dpo", pairs),
    }
    (root / "shas.json").write_text(json.dumps(shas))
    return root


def make_run(ws: Path, name: str, dataset_id: str, **hyper: object) -> Path:
    """A run folder with its spec.json, as the console writes it."""
    shas = json.loads((ws / "shas.json").read_text())
    spec = RunSpec(
        stage=dataset_id.rsplit("-", 1)[0],
        method="dpo" if dataset_id.startswith("planning_dpo") else "sft",
        base_model="reasoning",
        base_model_path=BASE,
        dataset_id=dataset_id,
        dataset_path=f"datasets/{dataset_id}",
        dataset_sha256=shas[dataset_id],
        hyper=Hyper(
            rank=8,
            learning_rate=1e-2,
            gradient_accumulation=1,
            max_length=64,
            warmup_ratio=0,
            **hyper,
        ),
    )
    run_dir = ws / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / SPEC_FILE).write_text(spec.model_dump_json(indent=2))
    return run_dir


def start_worker(ws: Path, run_dir: Path) -> subprocess.Popen:
    """The worker as the console starts it; one thread is plenty for the tiny model."""
    return subprocess.Popen(
        [sys.executable, "-m", "engine.training.worker", str(run_dir)],
        cwd=ws,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_worker(ws: Path, run_dir: Path) -> int:
    return start_worker(ws, run_dir).wait(timeout=WAIT_S)


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], run_dir: Path) -> None:
    """Poll `ready` while the worker runs; fail with its log if it exits first."""
    try:
        wait_for(
            lambda: ready() or proc.poll() is not None,
            "the worker to get there",
            WAIT_S,
            every_s=0.01,
            detail=lambda: log(run_dir),
        )
    except AssertionError:
        proc.kill()
        raise
    if not ready():
        pytest.fail(f"worker exited ({proc.returncode}) first:\n{log(run_dir)}")


def log(run_dir: Path) -> str:
    return (run_dir / LOG_FILE).read_text()


def result(run_dir: Path) -> RunResult:
    assert (run_dir / RESULT_FILE).exists(), log(run_dir)
    return RunResult.model_validate_json((run_dir / RESULT_FILE).read_text())


def metrics(run_dir: Path) -> list[StepRecord]:
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return [StepRecord.model_validate_json(line) for line in lines]


def has_metrics(run_dir: Path) -> bool:
    path = run_dir / METRICS_FILE
    return path.exists() and path.read_text().endswith("\n")


def assert_adapter_changes_output(ws: Path, run_dir: Path) -> None:
    base_model, base_tokenizer = load_base(ws / BASE)
    before = generate(base_model, base_tokenizer, PROBE, max_new_tokens=12)
    model, tokenizer = load_with_adapter(ws / BASE, run_dir / ADAPTER_DIR)
    after = generate(model, tokenizer, PROBE, max_new_tokens=12)
    assert tokenizer.eos_token == IM_END
    assert generate(model, tokenizer, PROBE, max_new_tokens=12) == after
    assert after != before


def test_tiny_model_is_deterministic_and_loads_offline(tmp_path: Path) -> None:
    first = build_tiny_model(tmp_path / "a")
    second = build_tiny_model(tmp_path / "b")
    names = sorted(path.name for path in first.iterdir())
    assert names == sorted(path.name for path in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    model = AutoModelForCausalLM.from_pretrained(first, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(first, local_files_only=True)
    assert (tokenizer.eos_token, tokenizer.pad_token) == (IM_END, PAD)
    modules = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert set(TARGET_MODULES) <= modules
    text = tokenizer.apply_chat_template(PROBE, tokenize=False, add_generation_prompt=True)
    assert text.endswith(
        "<|im_start|>user\nFix the failing test in parser.py.<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_sft_run_stops_on_request_and_resumes_to_an_adapter(ws: Path) -> None:
    run_dir = make_run(ws, "sft", "scope-d1", max_steps=60, save_steps=1000)
    proc = start_worker(ws, run_dir)
    wait_until(proc, lambda: has_metrics(run_dir), run_dir)
    (run_dir / STOP_FILE).touch()
    assert proc.wait(timeout=WAIT_S) == 0, log(run_dir)

    stopped = result(run_dir)
    assert stopped.status == "stopped"
    assert 1 <= stopped.steps < 60
    assert stopped.adapter_dir is None and not (run_dir / ADAPTER_DIR).exists()
    assert newest_checkpoint(run_dir / CHECKPOINTS_DIR) == (
        run_dir / CHECKPOINTS_DIR / f"checkpoint-{stopped.steps}",
        stopped.steps,
    )
    assert [record.step for record in metrics(run_dir)] == list(range(1, stopped.steps + 1))

    (run_dir / STOP_FILE).unlink()
    assert run_worker(ws, run_dir) == 0, log(run_dir)
    done = result(run_dir)
    assert (done.status, done.backend, done.steps, done.max_steps) == ("done", "trl", 60, 60)
    assert done.adapter_dir == ADAPTER_DIR
    assert done.effective == {
        "quantize_4bit": "off (no CUDA)",
        "optimizer": "adamw_torch (no CUDA)",
        "bf16": "off (no CUDA)",
    }
    assert f"resuming from checkpoints/checkpoint-{stopped.steps} at step {stopped.steps}" in (
        log(run_dir)
    )
    assert "backend: trl (no CUDA)" in log(run_dir)
    choice = BackendChoice.model_validate_json((run_dir / BACKEND_FILE).read_bytes())
    assert choice == BackendChoice(backend="trl", why="no CUDA")
    records = metrics(run_dir)
    assert [record.step for record in records] == list(range(1, 61))
    assert all(record.max_steps == 60 and record.loss is not None for record in records)
    assert all(record.memory_mb and record.memory_mb > 0 for record in records)
    assert all(record.reward_margin is None for record in records)
    assert records[-1].eta_s == 0
    assert records[-1].elapsed_s >= records[stopped.steps - 1].elapsed_s
    assert done.final_loss == records[-1].loss
    assert_adapter_changes_output(ws, run_dir)

    assert run_worker(ws, run_dir) == 2
    assert "the run is already done" in log(run_dir).splitlines()[-1]


@pytest.mark.slow
def test_dpo_run_killed_then_rerun_resumes_from_the_newest_checkpoint(ws: Path) -> None:
    run_dir = make_run(ws, "dpo", "planning_dpo-d1", max_steps=30, save_steps=3)
    proc = start_worker(ws, run_dir)
    wait_until(proc, lambda: newest_checkpoint(run_dir / CHECKPOINTS_DIR)[1] >= 6, run_dir)
    proc.kill()
    proc.wait(timeout=WAIT_S)
    assert not (run_dir / RESULT_FILE).exists()
    checkpoint, step = newest_checkpoint(run_dir / CHECKPOINTS_DIR)
    before_kill = (run_dir / METRICS_FILE).read_text().splitlines()[:step]

    assert run_worker(ws, run_dir) == 0, log(run_dir)
    done = result(run_dir)
    assert (done.status, done.steps, done.max_steps) == ("done", 30, 30)
    assert f"resuming from checkpoints/{checkpoint.name} at step {step}" in log(run_dir)
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    assert lines[:step] == before_kill
    records = metrics(run_dir)
    assert [record.step for record in records] == list(range(1, 31))
    assert all(
        record.reward_margin is not None and record.reward_accuracy is not None
        for record in records
    )
    assert_adapter_changes_output(ws, run_dir)


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("rank", lambda spec: spec["hyper"].update(rank=0), "key hyper.rank: Input should be"),
        ("sha", lambda spec: spec.update(dataset_sha256="0" * 64), "differs from 0000"),
        ("stage", lambda spec: spec.update(stage="task_analysis"), "stage 'scope' (the run spec"),
        ("base", lambda spec: spec.update(base_model_path="models/none"), "has no config.json"),
        ("planning", lambda spec: spec.update(stage="meta_plan"), "meta_plan trains no LoRA"),
    ],
)
def test_a_bad_spec_or_dataset_exits_non_zero_with_the_reason(
    ws: Path, name: str, change: Callable[[dict], None], reason: str
) -> None:
    run_dir = make_run(ws, f"bad-{name}", "scope-d1", max_steps=2)
    spec = json.loads((run_dir / SPEC_FILE).read_text())
    change(spec)
    (run_dir / SPEC_FILE).write_text(json.dumps(spec))
    assert run_worker(ws, run_dir) == 2
    last = log(run_dir).splitlines()[-1]
    assert last.startswith("error: ") and reason in last
    assert not (run_dir / RESULT_FILE).exists()


def test_effective_settings_name_each_replacement() -> None:
    hyper = Hyper()
    assert effective_settings(hyper, cuda=True, bitsandbytes=True, bf16_supported=True) == (
        Settings(quantize_4bit=True, optimizer="adamw_8bit", bf16=True),
        {},
    )
    assert effective_settings(hyper, cuda=True, bitsandbytes=False, bf16_supported=False) == (
        Settings(quantize_4bit=False, optimizer="adamw_torch", bf16=False),
        {
            "quantize_4bit": "off (bitsandbytes is not installed)",
            "optimizer": "adamw_torch (bitsandbytes is not installed)",
            "bf16": "off (the GPU lacks bf16)",
        },
    )
    plain = Hyper(quantize_4bit=False, optimizer="adamw_torch", bf16=False)
    assert effective_settings(plain, cuda=False, bitsandbytes=False, bf16_supported=False) == (
        Settings(quantize_4bit=False, optimizer="adamw_torch", bf16=False),
        {},
    )
