"""execute_code trains SFT then DPO on one adapter (LoRA Training Strategy §1): a DPO run continues
the stage's SFT version, starting from its weights, and the version it makes records that parent.

A real workspace holds an execute_code SFT dataset and a preference dataset curated from
reviewed items; the base is the tiny local Qwen2 model the training tests build; the runs are
real worker processes training a few steps on the CPU.
"""

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from training_fixtures import wait_for_run

from app.cli import cli
from app.cli_train import train
from engine.adapters.activation import version_by_id
from engine.adapters.lineage import trace_lines
from engine.core.workspace import Workspace
from engine.training.run_view import TrainingRun
from engine.training.runs import (
    build_spec,
    start_run,
)
from engine.training.start_options import TrainingRunError, parse_settings
from engine.training.tiny_model import build_tiny_model
from engine.training_data.curate import curate
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

if train.name not in cli.commands:
    cli.add_command(train)

BASE = "models/coding-base"
SETTINGS = ["max_steps=3", "gradient_accumulation=1", "max_length=256", "save_steps=1000"]


def _item(n: int, preference: bool) -> TrainingItem:
    rng = random.Random(n)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu") for b in range(30)]
    answer = " ".join(rng.choice(words) for _ in range(12))
    return TrainingItem(
        stage="execute_code",
        kind="preference" if preference else "sft",
        source="harness" if preference else "synthetic",
        origin="harness_code" if preference else "commit",
        repo=f"repo{n % 5}",
        domain=f"dom{n % 5}",
        task_key=f"task-{n}",
        task_date=f"2025-02-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
        prompt=[
            Message(role="system", content="You edit code."),
            Message(role="user", content=" ".join(rng.choice(words) for _ in range(20))),
        ],
        chosen=[Message(role="assistant", content=answer)],
        rejected=[Message(role="assistant", content=f"{answer} broken")] if preference else None,
    )


def _accept_round(ws: Workspace) -> None:
    round_id = draw_sample(ws, "execute_code", 15, seed=5)
    for position in range(1, 16):
        decide(ws, round_id, position, "accept")


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with execute_code-d1 (SFT rows), execute_code-d2 (pairs) and the tiny base."""
    root = tmp_path_factory.mktemp("dpo") / "ws"
    ws = Workspace.open(root)
    add_items(ws.db, [_item(n, preference=False) for n in range(30)])
    _accept_round(ws)
    assert [d.id for d in curate(ws, stage="execute_code", format="sft").curated] == [
        "execute_code-d1"
    ]
    add_items(ws.db, [_item(n, preference=True) for n in range(100, 130)])
    _accept_round(ws)
    report = curate(ws, stage="execute_code", format="preference")
    assert [d.id for d in report.curated] == ["execute_code-d2"], report.blocked
    build_tiny_model(root / BASE)
    (root / "cra.toml").write_text(f'[training.base_models]\ncoding = "{BASE}"\n')
    ws.db.conn.close()
    return root


@pytest.fixture
def ws(tmp_path: Path, _template: Path) -> Workspace:
    shutil.copytree(_template, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")


def _wait_done(ws: Workspace, run_id: int) -> TrainingRun:
    """Reconcile until the run ends; fail with its log unless it is done."""
    return wait_for_run(ws, run_id, "done", ("running",))


def test_a_dpo_run_of_execute_code_without_an_sft_adapter_is_refused(ws: Workspace) -> None:
    """With no execute_code SFT version, the DPO run has nothing to continue: refused, with the
    rule, in the engine and as one line from `cra train start`."""
    with pytest.raises(TrainingRunError, match="no execute_code SFT adapter to continue"):
        build_spec(ws, "execute_code-d2", "execute_code")
    result = CliRunner().invoke(
        cli,
        ["--workspace", str(ws.root), "train", "start", "--dataset", "execute_code-d2"]
        + ["--stage", "execute_code"],
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: no execute_code SFT adapter to continue")
    assert "SFT then DPO on one adapter" in result.output
    with pytest.raises(TrainingRunError, match="only an execute_code DPO run continues"):
        build_spec(ws, "execute_code-d1", "execute_code", from_version="execute_code-v1")


def _lora_weights(model: Any) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {key: value.detach().clone() for key, value in get_peft_model_state_dict(model).items()}


@pytest.mark.slow
def test_the_dpo_run_continues_the_sft_adapter_and_records_it_as_parent(ws: Workspace) -> None:
    """SFT makes execute_code-v1; the DPO run on the pairs loads v1 trainable as its policy
    (its starting LoRA weights are v1's, so at the first step policy and reference agree and
    the reward margin is 0), trains it further, and registers v2 with v1 as its parent."""
    from engine.training.adapter_io import load_base
    from engine.training.backend_trl import continued_policy

    sft_run = start_run(ws, "execute_code-d1", "execute_code", overrides=parse_settings(SETTINGS))
    sft = _wait_done(ws, sft_run)
    assert sft.adapter_name == "execute_code-v1"
    v1 = version_by_id(ws, sft.adapter_id)
    v1_weights = load_file(ws.root / v1.path / "adapter_model.safetensors")
    assert any(
        key.endswith("lora_B.weight") and value.abs().sum() > 0 for key, value in v1_weights.items()
    )

    spec = build_spec(ws, "execute_code-d2", "execute_code", overrides=parse_settings(SETTINGS))
    assert (spec.method, spec.continues, spec.continues_path) == (
        "dpo",
        "execute_code-v1",
        v1.path,
    )
    assert spec.hyper.rank == 32
    base, _ = load_base(ws.root / BASE)
    start = _lora_weights(continued_policy(base, ws.root / spec.continues_path))
    assert start.keys() == v1_weights.keys()
    assert all(torch.equal(start[key], v1_weights[key]) for key in start)

    with pytest.raises(TrainingRunError, match="keeps its LoRA shape"):
        build_spec(ws, "execute_code-d2", "execute_code", overrides={"rank": 8})

    dpo_run = start_run(ws, "execute_code-d2", "execute_code", overrides=parse_settings(SETTINGS))
    dpo = _wait_done(ws, dpo_run)
    assert (dpo.method, dpo.adapter_name) == ("dpo", "execute_code-v2")
    log = (ws.root / dpo.run_dir / "train.log").read_text(encoding="utf-8")
    assert "continuing adapter execute_code-v1" in log
    metrics = (ws.root / dpo.run_dir / "metrics.jsonl").read_text(encoding="utf-8")
    first = json.loads(metrics.splitlines()[0])
    assert first["step"] == 1 and abs(first["reward_margin"]) < 1e-6

    v2 = version_by_id(ws, dpo.adapter_id)
    assert v2.parent_id == v1.id
    assert not (ws.root / v2.path / "ref").exists()
    v2_weights = load_file(ws.root / v2.path / "adapter_model.safetensors")
    assert v2_weights.keys() == v1_weights.keys()
    assert any(not torch.equal(v2_weights[key], v1_weights[key]) for key in v1_weights)
    assert "  continues execute_code-v1 (its weights trained further; " in "\n".join(
        trace_lines(ws, "execute_code-v2")
    )
    with pytest.raises(TrainingRunError, match="execute_code-v2 is a execute_code dpo adapter"):
        build_spec(ws, "execute_code-d2", "execute_code", from_version="execute_code-v2")
