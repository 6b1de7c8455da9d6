"""A review decision follows the content, not the item id.

Twins are items of one stage with the same content under different task keys: the same commit
derived from two packages before task identity was repository + commit (a database from then
keeps them), or the same logged call imported from two runs. A round never draws two items of
one content, nor an item whose twin was drawn; a rejected item's identical twin and its near
twins (at `[curation] near_duplicate_threshold`) never reach a dataset.
"""

import random
from pathlib import Path

import pytest

from engine.core.workspace import Workspace
from engine.training_data.curate import curate
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import ReviewError, decide, draw_sample, verdicts
from engine.training_data.review_status import stage_counts
from engine.training_data.store import add_items

_VOCAB = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri") for b in range(50)]


def _words(seed: object, count: int = 60) -> str:
    rng = random.Random(str(seed))
    return " ".join(rng.choice(_VOCAB) for _ in range(count))


def _item(n: int, task_key: str | None = None, question: str | None = None) -> TrainingItem:
    """Item `n` of scope: its own commit (dated n hours in) and text, unless told otherwise."""
    return TrainingItem(
        stage="scope",
        kind="sft",
        source="synthetic",
        origin="commit",
        repo="textkit",
        domain="text",
        task_key=task_key or f"textkit:{n:040d}",
        task_date=f"2025-01-{1 + n // 24:02d}T{n % 24:02d}:00:00Z",
        prompt=[
            Message(role="system", content="You judge the files a task concerns."),
            Message(role="user", content=question or _words(f"q{n}")),
        ],
        chosen=[Message(role="assistant", content=_words(f"a{n}"))],
    )


def _workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text(
        "[curation]\nmax_domain_share = 1.0\neval_share = 0.1\n", encoding="utf-8"
    )
    return Workspace.open(root)


def _id(ws: Workspace, task_key: str) -> int:
    return ws.db.execute("SELECT id FROM examples WHERE task_key = ?", [task_key]).fetchone()[0]


def _round(ws: Workspace, round_id: int) -> dict[int, int]:
    """Example id → position in round `round_id`."""
    return dict(
        ws.db.execute(
            "SELECT example_id, position FROM review_items WHERE round_id = ?", [round_id]
        ).fetchall()
    )


def _dataset_text(ws: Workspace, dataset_id: str) -> str:
    folder = ws.datasets_dir / dataset_id
    return (folder / "train.jsonl").read_text() + (folder / "eval.jsonl").read_text()


def test_a_rejected_items_twins_never_reach_a_dataset(tmp_path: Path) -> None:
    """Item 0 is rejected; then the same commit arrives from a second package (an identical
    twin under its old `digest:sha` key) and an item with one word of its prompt changed (a
    near twin). Neither is curated; the accepted items are."""
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n) for n in range(12)])
    round_id = draw_sample(ws, "scope", 12, seed=3)
    rejected = _id(ws, f"textkit:{0:040d}")
    for example_id, position in _round(ws, round_id).items():
        decide(ws, round_id, position, "reject" if example_id == rejected else "accept")
    original = _item(0)
    question = original.prompt[1].content
    near = question.replace(question.split()[30], "zz", 1)
    twin = original.model_copy(update={"task_key": f"{'d' * 64}:{0:040d}"})
    add_items(ws.db, [twin, _item(0, task_key="textkit:near", question=near)])
    twin_id, near_id = _id(ws, twin.task_key), _id(ws, "textkit:near")
    assert verdicts(ws.db, "scope")[twin_id] == "reject"
    assert near_id not in verdicts(ws.db, "scope")

    report = curate(ws, stage="scope")
    assert not report.blocked, report.blocked
    [dataset] = report.curated
    text = _dataset_text(ws, dataset.id)
    assert question not in text and near not in text
    assert _item(1).prompt[1].content in text
    assert dataset.manifest.counts.excluded_by_review == 3
    held = {row[0] for row in ws.db.execute("SELECT example_id FROM dataset_examples")}
    assert held.isdisjoint({rejected, twin_id, near_id})


def test_a_round_never_holds_two_items_of_one_content(tmp_path: Path) -> None:
    """Ten contents, five of them twice: a round of 30 draws ten items, one per content; the
    stage counts ten unreviewed; a twin of a drawn item is never drawn later."""
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n) for n in range(10)])
    add_items(
        ws.db,
        [
            _item(n).model_copy(
                update={"task_key": f"logged:{n}", "source": "logged", "origin": "logged_call"}
            )
            for n in range(5)
        ],
    )
    assert stage_counts(ws.db)["scope"].unreviewed == 10
    round_id = draw_sample(ws, "scope", 30, seed=1)
    hashes = [
        row[0]
        for row in ws.db.execute(
            "SELECT e.content_hash FROM review_items i JOIN examples e ON e.id = i.example_id "
            "WHERE i.round_id = ?",
            [round_id],
        )
    ]
    assert len(hashes) == len(set(hashes)) == 10
    counts = stage_counts(ws.db)["scope"]
    assert (counts.items, counts.reviewed, counts.unreviewed) == (15, 10, 0)
    with pytest.raises(ReviewError, match="no unreviewed examples or pairs of stage scope"):
        draw_sample(ws, "scope", 5, seed=2)
    add_items(ws.db, [_item(10)])
    later = draw_sample(ws, "scope", 5, seed=2)
    assert list(_round(ws, later)) == [_id(ws, f"textkit:{10:040d}")]
