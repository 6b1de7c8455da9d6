"""`cra curate-data`: the review gate, review verdicts, duplicates, the held-out split, domain
balance, replay, the files and their manifest, never overwriting, and plan criteria. Every test
builds its items in a real workspace database and reviews them through the review module."""

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.cli_curate import curate_data, datasets
from engine.core.stages import NotALoraStage
from engine.core.workspace import Workspace
from engine.training_data.curate import CuratedDataset, CurateReport, curate
from engine.training_data.curation_errors import CurateError
from engine.training_data.dataset_files import (
    DatasetFilesError,
    open_dataset,
    read_rows,
    sha256,
    write_dataset_folder,
)
from engine.training_data.dataset_manifest import DatasetManifest
from engine.training_data.items import Message, TrainingItem
from engine.training_data.plan_model import (
    DataCriteria,
    Hyperparameters,
    PlannedStage,
    TrainingPlan,
)
from engine.training_data.plans import save_plan
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

for _command in (curate_data, datasets):
    if _command.name not in cli.commands:
        cli.add_command(_command)

_VOCAB = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "su", "te") for b in range(60)]
_START = datetime(2025, 1, 1, tzinfo=UTC)


def _words(seed: object, count: int = 40) -> str:
    rng = random.Random(str(seed))
    return " ".join(rng.choice(_VOCAB) for _ in range(count))


def _date(hours: int) -> str:
    return (_START + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item(
    n: int,
    *,
    stage: str = "scope",
    domain: str | None = None,
    repo: str | None = None,
    task: str | None = None,
    hours: int | None = None,
    question: str | None = None,
    source: str = "synthetic",
    origin: str = "commit",
    kind: str = "sft",
) -> TrainingItem:
    """Item `n`: by default its own task, dated n hours after the start, in one of six
    domains (two repos each), with text no other item shares."""
    domain = domain or f"dom{n % 6}"
    return TrainingItem(
        stage=stage,
        kind=kind,
        source=source,
        origin=origin,
        repo=repo or f"{domain}-repo{n % 2}",
        domain=domain,
        task_key=task or f"task-{n}",
        task_date=_date(n if hours is None else hours),
        prompt=[
            Message(role="system", content="You judge the files a task concerns."),
            Message(role="user", content=question or _words(f"q{n}")),
        ],
        chosen=[Message(role="assistant", content=_words(f"good{n}"))],
        rejected=[Message(role="assistant", content=_words(f"bad{n}"))]
        if kind == "preference"
        else None,
    )


def _workspace(tmp_path: Path, **curation: object) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir(parents=True, exist_ok=True)
    lines = ["[curation]"] + [f"{key} = {json.dumps(value)}" for key, value in curation.items()]
    (root / "cra.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Workspace.open(root)


def _review(
    ws: Workspace, stage: str = "scope", by_position: dict[int, str] | None = None
) -> dict[int, int]:
    """Draw a round of 15 and decide every item: accept unless `by_position` says otherwise.
    Returns the round's example id at each position."""
    round_id = draw_sample(ws, stage, 15, seed=7)
    by_position = by_position or {}
    drawn = dict(
        ws.db.execute(
            "SELECT position, example_id FROM review_items WHERE round_id = ?", [round_id]
        ).fetchall()
    )
    for position in drawn:
        decide(ws, round_id, position, by_position.get(position, "accept"))
    return drawn


def _ids(ws: Workspace, stage: str = "scope") -> list[int]:
    return [
        r[0] for r in ws.db.execute("SELECT id FROM examples WHERE stage = ? ORDER BY id", [stage])
    ]


def _one(report: CurateReport) -> CuratedDataset:
    assert not report.blocked, report.blocked
    (done,) = report.curated
    return done


def _lines(ws: Workspace, dataset_id: str, name: str) -> list[dict]:
    text = (ws.datasets_dir / dataset_id / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _split_items(ws: Workspace, dataset_id: str) -> dict[str, list[dict]]:
    """The examples rows on each side of a dataset, read back through its lineage."""
    out: dict[str, list[dict]] = {"train.jsonl": [], "eval.jsonl": []}
    for entry in _lines(ws, dataset_id, "lineage.jsonl"):
        row = next(ws.db.query("SELECT * FROM examples WHERE id = ?", [entry["example_id"]]))
        out[entry["file"]].append(row)
    return out


def test_the_review_gate_blocks_until_a_fresh_round_is_fully_decided(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n) for n in range(40)])
    blocked = curate(ws, stage="scope").blocked
    assert [b.stage for b in blocked] == ["scope"]
    assert "no spot-check sample of scope" in blocked[0].reason

    round_id = draw_sample(ws, "scope", 10, seed=1)
    for position in range(1, 6):
        decide(ws, round_id, position, "accept")
    assert "5 of 10 items reviewed" in curate(ws, stage="scope").blocked[0].reason

    for position in range(6, 11):
        decide(ws, round_id, position, "reject")
    reason = curate(ws, stage="scope").blocked[0].reason
    assert "5 of 10 rejected" in reason and "review_max_reject_rate" in reason
    assert not ws.datasets_dir.exists() or not any(ws.datasets_dir.iterdir())

    _review(ws)
    assert _one(curate(ws, stage="scope")).id == "scope-d1"
    again = curate(ws, stage="scope")
    assert not again.curated
    assert "was the spot-check of dataset scope-d1" in again.blocked[0].reason
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "curate-data"])
    assert result.exit_code == 1
    assert "blocked scope (sft): " in result.output


def test_rejected_items_are_left_out_and_flipped_pairs_swapped(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    items = [
        _item(n, stage="planning_dpo", kind="preference", source="harness", origin="harness_plan")
        for n in range(40)
    ]
    add_items(ws.db, items)
    ids = _ids(ws, "planning_dpo")
    drawn = _review(ws, "planning_dpo", {1: "reject", 2: "flip"})
    rejected, flipped = drawn[1], drawn[2]

    done = _one(curate(ws))
    assert done.manifest.format == "preference" and done.manifest.stage == "planning_dpo"
    assert (done.manifest.counts.excluded_by_review, done.manifest.counts.flipped_by_review) == (
        1,
        1,
    )
    lineage = _lines(ws, done.id, "lineage.jsonl")
    assert rejected not in {entry["example_id"] for entry in lineage}
    assert len(lineage) == len(ids) - 1
    (entry,) = [e for e in lineage if e["example_id"] == flipped]
    assert entry["flipped"] is True
    row = _lines(ws, done.id, entry["file"])[entry["line"] - 1]
    original = items[ids.index(flipped)]
    assert row["chosen"][0]["content"] == original.rejected[0].content
    assert row["rejected"][0]["content"] == original.chosen[0].content
    held = {r[0] for r in ws.db.execute("SELECT example_id FROM dataset_examples")}
    assert held == set(ids) - {rejected}


def test_exact_and_near_duplicates_go_keeping_the_oldest(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    base = _words("shared", 80)
    near = base.split()
    near[40] = "changed"
    original = _item(100, question=base, hours=1)
    prompt = [original.prompt[0], Message(role="user", content=" ".join(near))]
    items = [_item(n) for n in range(36)]
    items += [
        original,
        # The same prompt and answer under another task: the same row, an exact duplicate.
        original.model_copy(update={"task_key": "task-101", "task_date": _date(2)}),
        # One word of 120 changed: a near duplicate.
        original.model_copy(
            update={"task_key": "task-102", "task_date": _date(3), "prompt": prompt}
        ),
    ]
    add_items(ws.db, items)
    _review(ws)
    done = _one(curate(ws, stage="scope"))
    counts = done.manifest.counts
    assert (counts.exact_duplicates, counts.near_duplicates) == (1, 1)
    tasks = {row["task_key"] for side in _split_items(ws, done.id).values() for row in side}
    assert "task-100" in tasks and not tasks & {"task-101", "task-102"}

    # A new item equal to a row of the first dataset is an exact duplicate of it; the two
    # duplicates left out the first time are candidates again and go again, against its rows.
    add_items(ws.db, [items[0].model_copy(update={"task_key": "again"})])
    add_items(ws.db, [_item(n) for n in range(200, 240)])
    _review(ws)
    second = _one(curate(ws, stage="scope"))
    assert (second.manifest.counts.exact_duplicates, second.manifest.counts.near_duplicates) == (
        2,
        1,
    )
    assert "again" not in {
        row["task_key"] for side in _split_items(ws, second.id).values() for row in side
    }


def _check_split(ws: Workspace, dataset_id: str, eval_repos: set[str]) -> None:
    sides = _split_items(ws, dataset_id)
    train_tasks = {row["task_key"] for row in sides["train.jsonl"]}
    eval_tasks = {row["task_key"] for row in sides["eval.jsonl"]}
    assert not train_tasks & eval_tasks
    assert not {row["repo"] for row in sides["train.jsonl"]} & eval_repos
    manifest = open_dataset(ws, dataset_id).manifest
    newest_train = max(row["task_date"] for row in sides["train.jsonl"])
    assert newest_train < manifest.split.cutoff
    chronological = [
        row for row in sides["eval.jsonl"] if row["task_date"] >= manifest.split.cutoff
    ]
    assert chronological
    assert all(row["task_date"] > newest_train for row in chronological)


def test_no_task_or_eval_repo_on_both_sides_and_eval_is_newer(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, eval_repos=["dom5-repo1"], eval_share=0.1)
    items = []
    for n in range(60):
        # Two items per task; tasks 26, 27 and 28 share the newest date of those left.
        task = n // 2
        items.append(_item(n, task=f"task-{task}", hours=min(task, 26), domain=f"dom{task % 6}"))
    add_items(ws.db, items)
    _review(ws)
    done = _one(curate(ws, stage="scope"))
    _check_split(ws, done.id, {"dom5-repo1"})
    sides = _split_items(ws, done.id)
    eval_tasks = {row["task_key"] for row in sides["eval.jsonl"]}
    assert {"task-26", "task-27", "task-28"} <= eval_tasks  # a tie at the cutoff goes to eval
    assert "task-25" not in eval_tasks
    assert {row["repo"] for row in sides["eval.jsonl"]} >= {"dom5-repo1"}
    assert done.manifest.split.eval_repos == ["dom5-repo1"]

    # The next round: an old task of the first eval side stays eval, and a task that was in
    # train but now has the newest item turns eval, so its old rows are not replayed.
    old_eval = next(row for row in sides["eval.jsonl"] if row["task_key"] == "task-26")
    old_train = sides["train.jsonl"][0]
    later = [_item(n, hours=100 + n) for n in range(300, 350)]
    later.append(_item(400, task=old_eval["task_key"], hours=0, domain="dom1"))
    later.append(_item(401, task=old_train["task_key"], hours=500, domain="dom2"))
    add_items(ws.db, later)
    _review(ws)
    second = _one(curate(ws, stage="scope"))
    _check_split(ws, second.id, {"dom5-repo1"})
    again = _split_items(ws, second.id)
    assert old_eval["task_key"] in {row["task_key"] for row in again["eval.jsonl"]}
    assert old_train["task_key"] in {row["task_key"] for row in again["eval.jsonl"]}
    assert second.manifest.counts.replay > 0


def test_no_domain_exceeds_the_cap_and_too_few_domains_are_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, max_domain_share=0.2)
    items = [_item(n, domain="big") for n in range(40)]
    items += [_item(n, domain=f"small{n % 6}") for n in range(40, 64)]
    add_items(ws.db, items)
    _review(ws)
    done = _one(curate(ws, stage="scope"))
    train = done.manifest.domains["train"]
    assert sum(train.values()) == done.manifest.counts.train
    assert all(count <= 0.2 * done.manifest.counts.train for count in train.values())
    assert done.manifest.counts.dropped_for_balance > 0
    assert train["big"] == max(train.values())
    rows = _split_items(ws, done.id)["train.jsonl"]
    assert Counter(row["domain"] for row in rows) == Counter(train)

    narrow = _workspace(tmp_path / "narrow", max_domain_share=0.2)
    add_items(narrow.db, [_item(n, domain=f"d{n % 3}") for n in range(40)])
    _review(narrow)
    (blocked,) = curate(narrow, stage="scope").blocked
    assert "3 domain(s) (d0, d1, d2)" in blocked.reason
    assert "[curation] max_domain_share" in blocked.reason
    assert not list(narrow.db.query("SELECT id FROM datasets"))


def test_a_second_dataset_replays_from_the_first_and_leaves_it_untouched(
    tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n) for n in range(48)])
    _review(ws)
    first = _one(curate(ws, stage="scope"))
    assert first.manifest.replay.share == 0 and first.manifest.replay.parents == []
    folder = ws.datasets_dir / first.id
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    add_items(ws.db, [_item(n, hours=1000 + n) for n in range(100, 130)])
    _review(ws)
    second = _one(curate(ws, stage="scope"))
    assert second.id == "scope-d2"
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    replay = second.manifest.replay
    assert replay.parents == [first.id]
    assert 0.10 <= replay.share <= 0.20
    assert replay.share == second.manifest.counts.replay / second.manifest.counts.train
    first_train = set((folder / "train.jsonl").read_text(encoding="utf-8").splitlines())
    train_lines = (ws.datasets_dir / second.id / "train.jsonl").read_text().splitlines()
    replayed = [e for e in _lines(ws, second.id, "lineage.jsonl") if e["replay_from"]]
    assert len(replayed) == second.manifest.counts.replay
    assert all(e["replay_from"] == first.id and e["file"] == "train.jsonl" for e in replayed)
    assert all(train_lines[e["line"] - 1] in first_train for e in replayed)
    flags = dict(
        ws.db.execute(
            "SELECT example_id, replay FROM dataset_examples WHERE dataset_id = ?", [second.id]
        ).fetchall()
    )
    assert {i for i, flag in flags.items() if flag} == {e["example_id"] for e in replayed}
    train = second.manifest.domains["train"]
    assert all(count <= 0.2 * second.manifest.counts.train for count in train.values())


def test_files_are_trl_rows_whose_hashes_match_the_manifest(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n) for n in range(40)])
    _review(ws)
    done = _one(curate(ws, stage="scope", operator="night-shift"))
    folder = ws.datasets_dir / done.id
    manifest = DatasetManifest.model_validate_json((folder / "manifest.json").read_bytes())
    assert manifest == done.manifest and manifest.created_by == "night-shift"
    for name, record in manifest.files.items():
        data = (folder / name).read_bytes()
        assert (sha256(data), len(data), data.count(b"\n")) == (
            record.sha256,
            record.bytes,
            record.rows,
        )
    (stored,) = ws.db.execute("SELECT manifest_sha256 FROM datasets").fetchone()
    assert stored == sha256((folder / "manifest.json").read_bytes())
    for row in _lines(ws, done.id, "train.jsonl") + _lines(ws, done.id, "eval.jsonl"):
        assert list(row) == ["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert manifest.counts.train + manifest.counts.eval == 40
    assert manifest.sources == {
        "train": {"synthetic": manifest.counts.train},
        "eval": {"synthetic": manifest.counts.eval},
    }
    assert manifest.review.reviewed == 15
    lineage = _lines(ws, done.id, "lineage.jsonl")
    assert len(lineage) == 40 and set(lineage[0]) == {
        "file",
        "line",
        "example_id",
        "replay_from",
        "flipped",
    }


def test_a_dataset_is_never_overwritten_and_a_tampered_one_is_named(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    stray = ws.datasets_dir / "scope-d1"
    stray.mkdir(parents=True)
    (stray / "note.txt").write_text("not a dataset", encoding="utf-8")
    with pytest.raises(DatasetFilesError, match="never overwritten"):
        write_dataset_folder(ws.datasets_dir, "scope-d1", {"train.jsonl": b""})
    add_items(ws.db, [_item(n) for n in range(40)])
    _review(ws)
    done = _one(curate(ws, stage="scope"))
    assert done.id == "scope-d2"
    assert [p.name for p in stray.iterdir()] == ["note.txt"]
    assert sorted(p.name for p in ws.datasets_dir.iterdir()) == ["scope-d1", "scope-d2"]

    train = ws.datasets_dir / done.id / "train.jsonl"
    train.write_bytes(train.read_bytes().replace(b"assistant", b"Assistant", 1))
    add_items(ws.db, [_item(n, hours=1000 + n) for n in range(100, 130)])
    _review(ws)
    with pytest.raises(DatasetFilesError, match=r"scope-d2/train\.jsonl: sha256"):
        curate(ws, stage="scope")
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "datasets", "show", done.id])
    assert result.exit_code == 1 and "train.jsonl: sha256" in result.output


def _plan(data: DataCriteria, stage: str = "execute_code", base: str = "coding") -> TrainingPlan:
    return TrainingPlan(
        created_at="2026-01-01T00:00:00Z",
        created_by="op",
        assessed=[],
        stages=[
            PlannedStage(
                stage=stage,
                base_model=base,
                reason="weak",
                data=data,
                hyperparameters=Hyperparameters(
                    method="dpo",
                    rank=16,
                    alpha=32,
                    learning_rate=5e-6,
                    scheduler="cosine",
                    epochs=1,
                    max_length=4096,
                    dropout=0.05,
                ),
                expected_improvement="pass@1 up",
            )
        ],
    )


def test_a_plan_sets_stage_format_sources_and_minimum(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    harness = [
        _item(n, stage="execute_code", kind="preference", source="harness", origin="harness_code")
        for n in range(30)
    ]
    synthetic = [_item(n, stage="execute_code", source="synthetic") for n in range(30, 60)]
    add_items(ws.db, harness + synthetic)
    _review(ws, "execute_code")
    criteria = DataCriteria(format="preference", sources=["harness"], origins=["harness_code"])
    too_many = criteria.model_copy(update={"min_examples": 500})
    big_id, _ = save_plan(ws, _plan(too_many))
    (blocked,) = curate(ws, plan_ref=str(big_id)).blocked
    assert "fewer than the 500 needed (min_examples)" in blocked.reason
    with pytest.raises(CurateError, match="data for one base never trains the other"):
        curate(ws, plan_ref=str(save_plan(ws, _plan(criteria, base="reasoning"))[0]))
    with pytest.raises(CurateError, match="plans no scope dataset"):
        curate(ws, stage="scope", plan_ref=str(big_id))

    plan_id, path = save_plan(ws, _plan(criteria))
    done = _one(curate(ws, plan_ref=str(path)))
    manifest = done.manifest
    assert (manifest.stage, manifest.format, manifest.plan_id) == (
        "execute_code",
        "preference",
        plan_id,
    )
    assert manifest.base_model == "coding"
    held = {row["source"] for side in _split_items(ws, done.id).values() for row in side}
    assert held == {"harness"}
    assert manifest.counts.candidates == 30
    rows = _lines(ws, done.id, "train.jsonl")
    assert all(set(row) == {"prompt", "chosen", "rejected"} for row in rows)
    assert all(row["prompt"][-1]["role"] == "user" for row in rows)


def test_the_cli_curates_lists_and_shows(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n) for n in range(40)])
    _review(ws)
    runner = CliRunner()
    base = ["--workspace", str(ws.root)]
    result = runner.invoke(cli, [*base, "curate-data", "--stage", "scope", "--json"])
    assert result.exit_code == 0, result.output
    report = CurateReport.model_validate_json(result.output)
    assert [d.id for d in report.curated] == ["scope-d1"]
    listed = runner.invoke(cli, [*base, "datasets", "list", "--json"])
    assert [d["id"] for d in json.loads(listed.output)] == ["scope-d1"]
    shown = runner.invoke(cli, [*base, "datasets", "show", "scope-d1"])
    assert shown.exit_code == 0 and "files match the manifest" in shown.output
    rows = read_rows(ws.db, open_dataset(ws, "scope-d1"))
    assert len(rows["train.jsonl"]) == report.curated[0].manifest.counts.train
    unknown = runner.invoke(cli, [*base, "datasets", "show", "scope-d9"])
    assert unknown.exit_code == 1 and "no dataset has id 'scope-d9'" in unknown.output


def test_planning_stages_are_never_curated_into_a_lora_dataset(tmp_path: Path) -> None:
    """meta/step/test planning items are reviewed, but curation (by stage, by plan, or of every
    stage) never makes a LoRA dataset of them: they are the base fine-tune's (LoRA Training Strategy
    §2.6)."""
    ws = _workspace(tmp_path)
    add_items(ws.db, [_item(n, stage="meta_plan") for n in range(40)])
    _review(ws, "meta_plan")
    with pytest.raises(NotALoraStage, match="meta_plan has no LoRA dataset: planning .* full"):
        curate(ws, stage="meta_plan")
    plan_id, _ = save_plan(
        ws,
        _plan(
            DataCriteria(format="sft", sources=["synthetic"]), stage="meta_plan", base="reasoning"
        ),
    )
    with pytest.raises(NotALoraStage, match="export-base --role reasoning"):
        curate(ws, plan_ref=str(plan_id))
    with pytest.raises(CurateError, match="no examples or pairs of a LoRA stage"):
        curate(ws)
    result = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "curate-data", "--stage", "step_plan"]
    )
    assert result.exit_code == 1 and result.output.startswith("error: step_plan has no LoRA")
    add_items(ws.db, [_item(n) for n in range(40, 80)])
    _review(ws)
    assert [done.manifest.stage for done in curate(ws).curated] == ["scope"]
    assert ws.db.execute("SELECT COUNT(*) FROM datasets WHERE stage = 'meta_plan'").fetchone() == (
        0,
    )


def test_the_same_items_make_the_same_dataset_whatever_order_they_came_in(
    tmp_path: Path,
) -> None:
    """A dataset's rows are ordered by task date, then content, never by example id: ids follow
    the order a campaign's attempts happened to finish in, and a trainer fed the same rows in
    another order learns something else. Items sharing a date and a domain cap in force (six
    domains at most 0.2 of train each) still give byte-identical train and eval files."""
    items = [_item(n, hours=n // 4) for n in range(60)]
    files = []
    for name, order in (("first", items), ("second", items[::-1])):
        ws = _workspace(tmp_path / name, max_domain_share=0.2, eval_share=0.2)
        add_items(ws.db, order)
        round_id = draw_sample(ws, "scope", 15, seed=7)
        for position in range(1, 16):
            decide(ws, round_id, position, "accept")
        done = _one(curate(ws, stage="scope"))
        files.append(
            [
                (ws.datasets_dir / done.id / split).read_bytes()
                for split in ("train.jsonl", "eval.jsonl")
            ]
        )
    assert files[0] == files[1]
    assert files[0][0].count(b"\n") > 10


def test_a_stage_curates_that_stage_alone_and_the_report_sums_up_in_one_line(
    tmp_path: Path,
) -> None:
    """With two stages ready, `stage` curates that one alone and the other stays ready;
    without it every stage is curated. `summary()` says it all in one line: each dataset with
    its rows and the stages blocked, with the reason when the one stage asked for was."""
    ws = _workspace(tmp_path)
    add_items(
        ws.db,
        [_item(n) for n in range(40)] + [_item(n, stage="task_analysis") for n in range(100, 140)],
    )
    _review(ws, "scope")
    _review(ws, "task_analysis")

    report = curate(ws, stage="task_analysis")
    (done,) = report.curated
    assert done.id == "task_analysis-d1" and not report.blocked
    counts = done.manifest.counts
    assert report.summary() == (
        f"curated task_analysis-d1 ({counts.train:,} train, {counts.eval:,} eval rows)"
    )
    assert ws.db.execute("SELECT id FROM datasets").fetchall() == [("task_analysis-d1",)]
    assert curate(ws, stage="task_analysis").summary() == (
        "task_analysis (sft) not curated: round 2 of task_analysis was the spot-check of "
        "dataset task_analysis-d1: draw a new sample for this round of training"
    )

    everything = curate(ws)
    assert [d.id for d in everything.curated] == ["scope-d1"]
    scope = everything.curated[0].manifest.counts
    assert everything.summary() == (
        f"curated scope-d1 ({scope.train:,} train, {scope.eval:,} eval rows); "
        "blocked: task_analysis (sft)"
    )
    assert curate(ws).summary() == "nothing curated; blocked: task_analysis (sft), scope (sft)"
