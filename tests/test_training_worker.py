"""The training worker as the console runs it: a real subprocess training a tiny local model.

A tiny Qwen2 model with a tokenizer trained on the spot stands in for the bases (two copies
with a chat template SFT cannot train with); two dataset folders written here (SFT and
preference rows, each with its manifest) stand in for `cra curate-data`'s. Runs are a few
dozen steps of CPU training each.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import torch
from pilot_wait import wait_for
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.training.adapter_io import generate, load_base, load_with_adapter
from engine.training.backend_trl import Precision, Settings, effective_settings, pick_precision
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
    UNSLOTH_CACHE_DIR,
    BackendChoice,
    Hyper,
    RunResult,
    RunSpec,
    StepRecord,
)
from engine.training.tiny_model import CHAT_TEMPLATE, IM_END, PAD, build_tiny_model
from engine.training.worker import OFFLINE_ENV, newest_checkpoint, worker_env
from engine.training_data.dataset_manifest import (
    Counts,
    DatasetManifest,
    FileRecord,
    Replay,
    ReviewRecord,
    Split,
)

BASE = "models/tiny"
UNMARKED_BASE = "models/tiny-unmarked"
UNTEMPLATED_BASE = "models/tiny-untemplated"
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
    """A workspace folder holding the tiny base, two copies of it whose chat template has no
    generation markers or is missing, and an SFT and a preference dataset."""
    root = tmp_path_factory.mktemp("workspace")
    build_tiny_model(root / BASE)
    shutil.copytree(root / BASE, root / UNMARKED_BASE)
    unmarked = CHAT_TEMPLATE.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
    (root / UNMARKED_BASE / "chat_template.jinja").write_text(unmarked)
    shutil.copytree(root / BASE, root / UNTEMPLATED_BASE)
    (root / UNTEMPLATED_BASE / "chat_template.jinja").unlink()
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


def assert_readable_by_all(folder: Path) -> None:
    """Every file 0644 and every folder 0755, the weights included (safetensors writes them
    0600), so a vLLM running as another user can load the adapter."""
    modes = {
        path.relative_to(folder).as_posix(): stat.S_IMODE(path.stat().st_mode)
        for path in [folder, *folder.rglob("*")]
    }
    assert "adapter_model.safetensors" in modes
    assert modes == {name: 0o755 if (folder / name).is_dir() else 0o644 for name in modes}, modes


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
    lines = log(run_dir).splitlines()
    assert lines[0].startswith("worker ") and lines[1] == (
        f"training set: the CPU set (no CUDA; torch {metadata.version('torch')}, "
        f"trl {metadata.version('trl')}, no unsloth)"
    )
    why = '[training] backend = "auto"; no CUDA: the CPU set'
    assert f"backend: trl ({why}); sft on 4 rows of scope-d1" in lines
    assert (
        "chat template: the tokenizer's, whose {% generation %} marks the assistant's turns"
        in lines
    )
    choice = BackendChoice.model_validate_json((run_dir / BACKEND_FILE).read_bytes())
    assert choice == BackendChoice(backend="trl", why=why)
    assert_readable_by_all(run_dir / ADAPTER_DIR)
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
        ("unsloth", lambda spec: spec.update(backend="unsloth"), '"unsloth" needs CUDA'),
        (
            "unmarked",
            lambda spec: spec.update(base_model_path=UNMARKED_BASE),
            "has no {% generation %} markers and is not one trl",
        ),
        (
            "untemplated",
            lambda spec: spec.update(base_model_path=UNTEMPLATED_BASE),
            "the tokenizer has no chat template, and sft trains on conversations",
        ),
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
    assert not (run_dir / BACKEND_FILE).exists(), "refused before a backend was taken"


def test_effective_settings_name_each_replacement() -> None:
    """The CPU set replaces 4-bit, the 8-bit optimiser and bf16; a GPU only bf16, where it
    lacks it (a GPU without bitsandbytes is refused before, by `pick_backend`)."""
    hyper = Hyper()
    assert effective_settings(hyper, cuda=True, bf16_supported=True) == (
        Settings(quantize_4bit=True, optimizer="adamw_8bit", bf16=True),
        {},
    )
    assert effective_settings(hyper, cuda=True, bf16_supported=False) == (
        Settings(quantize_4bit=True, optimizer="adamw_8bit", bf16=False),
        {"bf16": "off (the GPU lacks bf16)"},
    )
    assert effective_settings(hyper, cuda=False, bf16_supported=False) == (
        Settings(quantize_4bit=False, optimizer="adamw_torch", bf16=False),
        {
            "quantize_4bit": "off (no CUDA)",
            "optimizer": "adamw_torch (no CUDA)",
            "bf16": "off (no CUDA)",
        },
    )
    plain = Hyper(quantize_4bit=False, optimizer="adamw_torch", bf16=False)
    assert effective_settings(plain, cuda=False, bf16_supported=False) == (
        Settings(quantize_4bit=False, optimizer="adamw_torch", bf16=False),
        {},
    )


@pytest.mark.parametrize(
    ("bf16", "half", "precision"),
    [
        (True, True, Precision(dtype=torch.bfloat16, bf16=True, fp16=False)),
        (False, True, Precision(dtype=torch.float16, bf16=False, fp16=True)),
        (True, False, Precision(dtype=torch.bfloat16, bf16=True, fp16=False)),
        (False, False, Precision(dtype=torch.float32, bf16=False, fp16=False)),
    ],
)
def test_the_dtype_and_both_precision_flags_are_decided_together(
    bf16: bool, half: bool, precision: Precision
) -> None:
    """Unsloth (half) loads fp16 when bf16 is off, never bf16 with fp16 on, which its trainer
    refuses; trl loads float32 then. Both flags are always set: trl's default is bf16 = not
    fp16."""
    settings = Settings(quantize_4bit=False, optimizer="adamw_torch", bf16=bf16)
    assert pick_precision(settings, half=half) == precision


def test_the_worker_env_keeps_unsloths_cache_in_the_run_folder_and_stays_offline(
    tmp_path: Path,
) -> None:
    """Unsloth reads both at import and writes its cache into the current folder (the
    workspace) without the first; the second keeps its statistics call off the network."""
    env = worker_env(tmp_path / "runs" / "7")
    assert env == {
        **OFFLINE_ENV,
        "UNSLOTH_COMPILE_LOCATION": str(tmp_path.resolve() / "runs" / "7" / UNSLOTH_CACHE_DIR),
        "UNSLOTH_DISABLE_STATISTICS": "1",
    }
    assert Path(env["UNSLOTH_COMPILE_LOCATION"]).is_absolute()


def test_the_worker_loads_no_training_library_before_it_picks_its_backend() -> None:
    """Unsloth must be imported before transformers, trl and peft to patch them, after the
    worker has set its environment: the worker's modules and its reading of the training set
    load none of them."""
    code = (
        "import sys\n"
        "import engine.training.worker as worker\n"
        "worker.TrainingSet.detect().describe()\n"
        "print(sorted(m for m in ('transformers', 'trl', 'peft', 'unsloth') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
