"""Precision's curriculum (LoRA Training Strategy §7.2, SFT + curriculum): curation orders a
precision dataset's train rows easy to hard and records it, and the trainer reads them in that
order.

Items live in a real workspace database and are reviewed through the review module; the trainer
is TRL's SFTTrainer on the tiny local Qwen2 model the training tests build.
"""

import json
import random
from pathlib import Path

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTTrainer

from engine.core.workspace import Workspace
from engine.training.backend_trl import Settings, pick_precision, training_args
from engine.training.contract import Hyper, RunSpec
from engine.training.job import Job
from engine.training.tiny_model import build_tiny_model
from engine.training_data.curate import curate
from engine.training_data.curriculum import difficulty
from engine.training_data.dataset_files import open_dataset, read_rows
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

SCOPE = json.dumps({"relevant": ["pkg/a.py"], "create": [], "supporting": [], "irrelevant": []})


def _answer(rng: random.Random) -> str:
    tiers = {}
    for tier in ("primary", "supporting", "excluded"):
        tiers[tier] = {
            f"pkg/m{f}.py": [f"s{f}_{k}" for k in range(rng.randint(0, 5))]
            for f in range(rng.randint(1, 3))
        }
    return json.dumps(tiers)


def _item(n: int, stage: str = "precision") -> TrainingItem:
    rng = random.Random(n)
    return TrainingItem(
        stage=stage,
        kind="sft",
        source="synthetic",
        origin="commit",
        repo=f"repo{n % 4}",
        domain=f"dom{n % 4}",
        task_key=f"task-{n}",
        task_date=f"2025-04-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
        prompt=[
            Message(role="system", content="You tier symbols."),
            Message(
                role="user", content=f"task {n}: " + " ".join(str(rng.random()) for _ in "abcdef")
            ),
        ],
        chosen=[Message(role="assistant", content=_answer(rng) if stage == "precision" else SCOPE)],
    )


def _curated(tmp_path: Path, stage: str) -> str:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text("[curation]\nmax_domain_share = 1.0\n", encoding="utf-8")
    ws = Workspace.open(root)
    add_items(ws.db, [_item(n, stage) for n in range(40)])
    round_id = draw_sample(ws, stage, 15, seed=2)
    for position in range(1, 16):
        decide(ws, round_id, position, "accept")
    (done,) = curate(ws, stage=stage).curated
    return done.id


def test_a_precision_dataset_trains_easy_to_hard_and_says_so(tmp_path: Path) -> None:
    """Train rows are sorted by candidate symbols, then primary symbols; the manifest records
    the order and its measure; a scope dataset keeps the dataset order (task date, then
    content) and records none."""
    dataset_id = _curated(tmp_path, "precision")
    ws = Workspace.open(tmp_path / "ws")
    stored = open_dataset(ws, dataset_id)
    assert stored.manifest.curriculum is not None
    assert stored.manifest.curriculum.order == "easy_to_hard"
    assert "candidate symbols" in stored.manifest.curriculum.measure
    train = read_rows(ws.db, stored)["train.jsonl"]
    keys = [difficulty(row) for row in train]
    assert keys == sorted(keys) and keys[0][0] < keys[-1][0]
    assert [row.example_id for row in train] != sorted(row.example_id for row in train)

    other = tmp_path / "other"
    other.mkdir()
    scope_id = _curated(other, "scope")
    scope_ws = Workspace.open(other / "ws")
    scope = open_dataset(scope_ws, scope_id)
    assert scope.manifest.curriculum is None
    rows = read_rows(scope_ws.db, scope)["train.jsonl"]
    assert [row.order for row in rows] == sorted(row.order for row in rows)


@pytest.mark.parametrize(("stage", "ordered"), [("precision", True), ("scope", False)])
def test_the_trainer_reads_a_curriculum_stage_in_the_dataset_order(
    tmp_path: Path, stage: str, ordered: bool
) -> None:
    """TRL's trainers sample randomly by default; a precision run samples sequentially, so the
    first batches are the dataset's first rows; another stage's run still shuffles."""
    base = tmp_path / "tiny"
    build_tiny_model(base)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"row {n}"},
                {"role": "assistant", "content": f"answer {n}"},
            ]
        }
        for n in range(24)
    ]
    spec = RunSpec(
        stage=stage,
        method="sft",
        base_model="reasoning",
        base_model_path=str(base),
        dataset_id=f"{stage}-d1",
        dataset_path=f"datasets/{stage}-d1",
        dataset_sha256="0" * 64,
        hyper=Hyper(batch_size=1, max_length=64, seed=3),
    )
    job = Job(spec, tmp_path / "run", base, rows, None, 0)
    settings = Settings(False, "adamw_torch", False)
    args = training_args(job, settings, pick_precision(settings, half=False), use_cpu=True)
    assert args.train_sampling_strategy == ("sequential" if ordered else "random")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    seen = []
    for batch in trainer.get_train_dataloader():
        text = tokenizer.decode(batch["input_ids"][0])
        seen.append(int(text.split("row ", 1)[1].split("<", 1)[0]))
    assert (seen == list(range(24))) == ordered
    assert sorted(seen) == list(range(24))
