"""Frozen eval sets: the newest held-out tasks of a stage, frozen by content hash, never trained
on by any later dataset of any stage, marked underpowered under their target, and the
`cra eval set` lines. Items are stored in a real workspace database and curated for real."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from engine.core.workspace import Workspace
from engine.evaluation.eval_set import (
    EvalSetError,
    build_eval_set,
    list_eval_sets,
    load_eval_set,
)
from engine.evaluation.runs import EvalRunError, start_eval
from engine.training_data.curate import curate
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

_START = datetime(2025, 1, 1, tzinfo=UTC)


def _item(n: int, stage: str, repo: str = "lib") -> TrainingItem:
    """Task `task-n`'s item of `stage` from `repo`, dated n hours after the start, with text
    of its own."""
    return TrainingItem(
        stage=stage,
        kind="sft",
        source="synthetic",
        origin="commit",
        repo=repo,
        domain="dom",
        task_key=f"task-{n}",
        task_date=(_START + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        prompt=[
            Message(role="system", content=f"You answer for {stage}."),
            Message(role="user", content=f"{stage} question number {n} in {repo} " * 3),
        ],
        chosen=[Message(role="assistant", content=f"{stage} answer number {n} in {repo} " * 3)],
    )


def _workspace(
    tmp_path: Path,
    eval_share: float,
    scope_size: int,
    max_eval_share: float = 0.9,
    **curation: object,
) -> Workspace:
    """A workspace whose eval sets may take most tasks (`max_eval_share`), unless a test is
    about that cap."""
    root = tmp_path / "ws"
    root.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in curation.items())
    (root / "cra.toml").write_text(
        f"[curation]\nmax_domain_share = 1.0\neval_share = {eval_share}\n{extra}"
        "[training_data]\nreview_min_sample = 1\n"
        f"[evaluation]\nmax_eval_share = {max_eval_share}\n"
        f"[evaluation.eval_sizes]\nscope = {scope_size}\n",
        encoding="utf-8",
    )
    return Workspace.open(root)


def _accept_sample(ws: Workspace, stage: str) -> None:
    round_id = draw_sample(ws, stage, 5, seed=1)
    for (position,) in ws.db.execute(
        "SELECT position FROM review_items WHERE round_id = ?", [round_id]
    ).fetchall():
        decide(ws, round_id, position, "accept")


def _split_tasks(ws: Workspace, dataset_id: str) -> dict[str, set[str]]:
    """The task keys on each side of a dataset, read back through its lineage file."""
    sides: dict[str, set[str]] = {"train.jsonl": set(), "eval.jsonl": set()}
    lineage = (ws.datasets_dir / dataset_id / "lineage.jsonl").read_text().splitlines()
    for entry in map(json.loads, lineage):
        key = ws.db.execute(
            "SELECT task_key FROM examples WHERE id = ?", [entry["example_id"]]
        ).fetchone()[0]
        sides[entry["file"]].add(key)
    return sides


def test_a_task_in_a_scope_eval_set_never_trains_a_later_task_analysis_dataset(
    tmp_path: Path,
) -> None:
    """The scope eval set holds the newest tasks; a task_analysis dataset curated afterwards
    over the same tasks has them on its eval side, none in train, though its own split holds
    nothing out (eval_share 0)."""
    ws = _workspace(tmp_path, eval_share=0.0, scope_size=4)
    add_items(ws.db, [_item(n, "scope") for n in range(20)])
    built = build_eval_set(ws, "scope")
    held = {f"task-{n}" for n in range(16, 20)}
    assert set(built.eval_set.tasks) == held

    add_items(ws.db, [_item(n, "task_analysis") for n in range(20)])
    _accept_sample(ws, "task_analysis")
    [dataset] = curate(ws, stage="task_analysis").curated
    sides = _split_tasks(ws, dataset.id)
    assert not sides["train.jsonl"] & held
    assert sides["eval.jsonl"] == held
    assert len(sides["train.jsonl"]) == 16


def test_a_task_held_out_by_one_stage_never_trains_another(tmp_path: Path) -> None:
    """A task on the eval side of a scope dataset stays out of a later task_analysis dataset's
    train, even when newer task_analysis tasks are what that dataset holds out itself."""
    ws = _workspace(tmp_path, eval_share=0.2, scope_size=1)
    add_items(ws.db, [_item(n, "scope") for n in range(10)])
    _accept_sample(ws, "scope")
    [scope] = curate(ws, stage="scope").curated
    scope_eval = _split_tasks(ws, scope.id)["eval.jsonl"]
    assert scope_eval == {"task-8", "task-9"}

    add_items(ws.db, [_item(n, "task_analysis") for n in range(20)])
    _accept_sample(ws, "task_analysis")
    [later] = curate(ws, stage="task_analysis").curated
    sides = _split_tasks(ws, later.id)
    assert not sides["train.jsonl"] & scope_eval
    assert scope_eval <= sides["eval.jsonl"]


def test_an_eval_set_is_frozen_and_moves_only_when_newer_tasks_come(tmp_path: Path) -> None:
    """A rebuild with the same newest tasks (new data for older tasks, or for another stage)
    makes no new version; newer tasks make a new version with its own file, and the first
    version's file and rows never change. Eval-repo tasks are always held."""
    ws = _workspace(tmp_path, eval_share=0.0, scope_size=4, eval_repos=["held"])
    add_items(ws.db, [_item(n, "scope") for n in range(10)] + [_item(0, "scope", repo="held")])
    first = build_eval_set(ws, "scope")
    assert first.new and first.eval_set.id == 1
    # task-0's second row (an eval-repo row) pins task-0; then the newest tasks fill the target.
    assert first.eval_set.tasks == ["task-0", "task-8", "task-9"]
    assert (first.eval_set.size, first.eval_set.underpowered) == (4, False)
    path = ws.root / first.eval_set.path
    assert path == ws.root / "eval_sets" / "scope" / first.eval_set.sha256[:12] / "eval.jsonl"
    data = path.read_bytes()

    add_items(ws.db, [_item(-5, "scope"), _item(3, "precision")])
    add_items(ws.db, [_item(n, "task_analysis") for n in range(50)])
    again = build_eval_set(ws, "scope")
    assert (again.new, again.eval_set.id, again.eval_set.sha256) == (
        False,
        1,
        first.eval_set.sha256,
    )

    add_items(ws.db, [_item(40, "scope")])
    newer = build_eval_set(ws, "scope")
    assert newer.new and newer.eval_set.id == 2
    assert newer.eval_set.tasks == ["task-0", "task-40", "task-9"]
    assert path.read_bytes() == data
    assert load_eval_set(ws, 1).sha256 == first.eval_set.sha256
    assert [s.id for s in list_eval_sets(ws, "scope")] == [1, 2]
    with pytest.raises(Exception, match="eval_set_rows is append-only"):
        ws.db.execute("DELETE FROM eval_set_rows WHERE eval_set_id = 1")

    path.write_bytes(data.replace(b"question", b"Question", 1))
    with pytest.raises(EvalSetError, match="eval sets are never edited"):
        load_eval_set(ws, 1)


def test_a_set_under_its_target_is_underpowered_and_never_holds_a_trained_task(
    tmp_path: Path,
) -> None:
    """Tasks a dataset trained on (any stage) are never held out afterwards, so a set built
    from what is left can fall under its target: it is built and marked underpowered."""
    ws = _workspace(tmp_path, eval_share=0.0, scope_size=15)
    add_items(ws.db, [_item(n, "task_analysis") for n in range(20)])
    _accept_sample(ws, "task_analysis")
    curate(ws, stage="task_analysis")
    add_items(ws.db, [_item(n, "scope") for n in range(30)])
    built = build_eval_set(ws, "scope").eval_set
    assert set(built.tasks) == {f"task-{n}" for n in range(20, 30)}
    assert (built.size, built.target_size, built.underpowered) == (10, 15, True)
    loaded = load_eval_set(ws, built.id)
    assert (loaded.size, loaded.underpowered) == (10, True)
    assert [row.line for row in loaded.rows] == list(range(1, 11))


def test_a_set_holds_at_most_its_share_of_the_stages_tasks(tmp_path: Path) -> None:
    """With the default cap (a fifth of the stage's tasks), 20 tasks give a set of the 4 newest
    however large its target, so 16 are left to train; it is marked underpowered."""
    ws = _workspace(tmp_path, eval_share=0.0, scope_size=200, max_eval_share=0.2)
    add_items(ws.db, [_item(n, "scope") for n in range(20)])
    built = build_eval_set(ws, "scope").eval_set
    assert built.tasks == [f"task-{n}" for n in (16, 17, 18, 19)]
    assert (built.size, built.target_size, built.underpowered) == (4, 200, True)
    _accept_sample(ws, "scope")
    curate(ws, stage="scope")
    train = _split_tasks(ws, "scope-d1")["train.jsonl"]
    assert train == {f"task-{n}" for n in range(16)}


def test_the_cli_builds_lists_and_names_the_missing_set(tmp_path: Path) -> None:
    """`cra eval set build` prints the set's id, size, target and power, once; `list` lists the
    versions; `cra eval run` on a stage without a set says so and names the command."""
    ws = _workspace(tmp_path, eval_share=0.0, scope_size=5)
    add_items(ws.db, [_item(n, "scope") for n in range(3)])
    runner = CliRunner()
    base = ["--workspace", str(ws.root), "eval"]

    result = runner.invoke(cli, [*base, "run", "--stage", "scope"])
    assert result.exit_code != 0
    assert "scope has no eval set yet; `cra eval set build --stage scope` builds it" in (
        result.output
    )
    with pytest.raises(EvalRunError, match="no eval set yet"):
        start_eval(ws, stage="scope")

    result = runner.invoke(cli, [*base, "set", "build", "--stage", "scope"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "built eval set 1 (scope, reasoning base): 2 rows of 2 tasks, target 5, underpowered; "
        "sha256 "
    )
    result = runner.invoke(cli, [*base, "set", "build", "--stage", "scope"])
    assert result.output.startswith("unchanged, no new version: eval set 1 (scope")
    result = runner.invoke(cli, [*base, "set", "list"])
    assert result.exit_code == 0
    [line] = result.output.splitlines()
    assert "eval set 1 (scope, reasoning base): 2 rows of 2 tasks, target 5, underpowered" in line

    result = runner.invoke(cli, [*base, "set", "build", "--stage", "precision"])
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        "no held-out precision examples to build an eval set from (every task is trained on, "
        "rejected or none is derived): derive or import data from new tasks first"
    )


def test_the_datasets_pane_and_the_cli_word_a_build_alike(tmp_path: Path) -> None:
    """`e` in the Datasets pane and `cra eval set build` print a build's one line
    (`Built.line()`): `built …` the first time, `unchanged, no new version: …` after."""
    from screens.datasets import build_eval_sets

    ws = _workspace(tmp_path, eval_share=0.0, scope_size=5)
    add_items(ws.db, [_item(n, "scope") for n in range(3)])

    def scope_line() -> str:
        (line,) = [line for line in build_eval_sets(ws) if line.startswith(("built", "unch"))]
        return line

    assert scope_line().startswith("built eval set 1 (scope, reasoning base)")
    unchanged = scope_line()
    assert unchanged.startswith("unchanged, no new version: eval set 1 (scope")
    result = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "eval", "set", "build", "--stage", "scope"]
    )
    assert result.output == unchanged + "\n"
