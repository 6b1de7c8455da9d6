"""`cra data export-base`: the reasoning base's full fine-tune data (LoRA Training Strategy §2.6,
§12.3).

Every test builds planning items in a real workspace database, reviews them through the review
module and exports to a real folder."""

import hashlib
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.cli_data import data
from engine.core.workspace import Workspace
from engine.training_data.base_export import BaseExportError, export_base
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

if data.name not in cli.commands:
    cli.add_command(data)

_VOCAB = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri") for b in range(60)]
PLANNING = ("meta_plan", "step_plan", "test_plan")


def _words(seed: object, count: int = 40) -> str:
    rng = random.Random(str(seed))
    return " ".join(rng.choice(_VOCAB) for _ in range(count))


def _item(n: int, stage: str, answer: str | None = None) -> TrainingItem:
    """Planning item `n` of `stage`: task n (shared by the three stages), dated n hours in."""
    return TrainingItem(
        stage=stage,
        kind="sft",
        source="synthetic",
        origin="commit",
        repo=f"repo{n % 3}",
        domain=f"dom{n % 3}",
        task_key=f"task-{n}",
        task_date=f"2025-03-{1 + n // 24:02d}T{n % 24:02d}:00:00Z",
        prompt=[
            Message(role="system", content=f"You write the {stage}."),
            Message(role="user", content=_words(f"{stage}-q{n}")),
        ],
        chosen=[Message(role="assistant", content=answer or _words(f"{stage}-a{n}"))],
    )


def _review(ws: Workspace, stage: str, reject: int = 0) -> list[int]:
    """A round of 15 on `stage`, its first `reject` positions rejected; their example ids."""
    round_id = draw_sample(ws, stage, 15, seed=11)
    drawn = dict(
        ws.db.execute(
            "SELECT position, example_id FROM review_items WHERE round_id = ?", [round_id]
        ).fetchall()
    )
    for position in drawn:
        decide(ws, round_id, position, "reject" if position <= reject else "accept")
    return [drawn[position] for position in range(1, reject + 1)]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text("[curation]\neval_share = 0.2\n", encoding="utf-8")
    ws = Workspace.open(root)
    items = [_item(n, stage) for stage in PLANNING for n in range(30)]
    items.append(
        _item(99, "meta_plan", answer=items[0].chosen[0].content).model_copy(
            update={"prompt": items[0].prompt}
        )
    )
    add_items(ws.db, items)
    return ws


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_export_is_chat_jsonl_with_manifest_and_lineage(ws: Workspace, tmp_path: Path) -> None:
    """Reviewed planning items of the three stages go out as `{"messages": [...]}` rows; a
    rejected item and an exact duplicate stay out; a task is eval for every stage or none; each
    line's item is in lineage.jsonl; the manifest names the rounds and hashes; it is recorded."""
    rejected = _review(ws, "meta_plan", reject=1)
    for stage in ("step_plan", "test_plan"):
        _review(ws, stage)
    out = tmp_path / "export" / "reasoning-1"
    out.parent.mkdir()

    export = export_base(ws, "reasoning", out, operator="night-shift")

    assert sorted(path.name for path in out.iterdir()) == [
        "eval.jsonl",
        "lineage.jsonl",
        "manifest.json",
        "train.jsonl",
    ]
    assert not [path for path in out.parent.iterdir() if path.name.startswith(".")]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "chat-jsonl" and manifest["created_by"] == "night-shift"
    for name in ("train.jsonl", "eval.jsonl", "lineage.jsonl"):
        data = (out / name).read_bytes()
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    train, eval_ = _lines(out / "train.jsonl"), _lines(out / "eval.jsonl")
    assert all(set(row) == {"messages"} for row in train + eval_)
    assert all(
        [m["role"] for m in row["messages"]] == ["system", "user", "assistant"] for row in train
    )
    lineage = _lines(out / "lineage.jsonl")
    assert len(lineage) == len(train) + len(eval_)
    stages = {entry["stage"] for entry in lineage}
    assert stages == set(PLANNING)
    ids = {entry["example_id"] for entry in lineage}
    assert not ids & set(rejected)
    meta = manifest["stages"]["meta_plan"]
    assert meta["excluded_by_review"] == 1 and meta["rejected"] == 1
    assert meta["candidates"] == 31 and meta["exact_duplicates"] + meta["excluded_by_review"] >= 1
    rows = [json.dumps(row, sort_keys=True) for row in train + eval_]
    assert len(set(rows)) == len(rows)
    task_of = dict(ws.db.execute("SELECT id, task_key FROM examples").fetchall())
    eval_tasks = {task_of[e["example_id"]] for e in lineage if e["file"] == "eval.jsonl"}
    train_tasks = {task_of[e["example_id"]] for e in lineage if e["file"] == "train.jsonl"}
    assert eval_tasks and not eval_tasks & train_tasks
    by_line = {(e["file"], e["line"]): e["example_id"] for e in lineage}
    first = ws.db["examples"].get(by_line[("train.jsonl", 1)])
    assert json.loads(first["prompt_json"])[-1]["content"] == train[0]["messages"][1]["content"]
    assert sum(manifest["sources"]["train"].values()) == len(train)
    assert {s["review_round_id"] for s in manifest["stages"].values()} == {1, 2, 3}

    row = ws.db["base_exports"].get(export.id)
    assert (row["role"], row["path"], row["train_count"]) == ("reasoning", str(out), len(train))
    recorded = ws.db.execute(
        "SELECT COUNT(*) FROM base_export_examples WHERE export_id = ?", [export.id]
    ).fetchone()[0]
    assert recorded == len(lineage)

    with pytest.raises(BaseExportError, match="already exists"):
        export_base(ws, "reasoning", out)


def test_a_stage_whose_gate_is_shut_refuses_the_export(ws: Workspace, tmp_path: Path) -> None:
    """An unreviewed planning stage blocks the export, naming the gate's reason; nothing is
    written or recorded."""
    _review(ws, "meta_plan")
    with pytest.raises(BaseExportError, match="step_plan cannot be exported: no spot-check"):
        export_base(ws, "reasoning", tmp_path / "out")
    assert not (tmp_path / "out").exists() and ws.db["base_exports"].count == 0


def test_the_coding_role_has_no_planning_data_and_the_cli_says_so(
    ws: Workspace, tmp_path: Path
) -> None:
    """`--role coding` is refused with the reason; the reasoning export runs from the CLI."""
    base = ["--workspace", str(ws.root), "data", "export-base"]
    result = CliRunner().invoke(cli, [*base, "--role", "coding", "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert result.output.startswith("error: the coding base has no planning data to export")
    for stage in PLANNING:
        _review(ws, stage)
    result = CliRunner().invoke(cli, [*base, "--role", "reasoning", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"exported reasoning-base-e1 to {tmp_path / 'r'}: ")
