"""The spot-check in the engine and on the command line: seeded stratified samples, decisions,
notes, the gate on curation, the per-stage status and the guidelines.

Items are real rows added through `add_items` to a real workspace database; `bulk_pairs` writes
many at once with one executemany (the pane's 100,000-pair tests and the bench use it).
"""

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.cli_review import review
from engine.core.stages import STAGES
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training_data.guidelines import (
    EVERY_STAGE,
    GUIDELINES,
    guideline_sections,
    guideline_text,
)
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import (
    ReviewError,
    decide,
    draw_sample,
    latest_round,
    review_gate,
    round_summary,
    set_note,
    verdicts,
)
from engine.training_data.review_status import round_items, stage_counts, stage_statuses
from engine.training_data.store import add_items

if "review" not in cli.commands:
    cli.add_command(review)

CODE_BEFORE = """\
def load(path):
    data = json.loads(path.read_text())
    return data["name"]
"""
CHOSEN_CODE = """\
def load(path: Path) -> str:
    data = json.loads(path.read_text())
    try:
        return data["name"]
    except KeyError as exc:
        raise ConfigError(f"{path}: no key 'name'") from exc
"""
REJECTED_CODE = """\
def load(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
        return data.get("name", "")
    except Exception:
        return ""
"""


def edits(replace: str) -> str:
    edit = {"path": "src/textkit/config.py", "search": CODE_BEFORE, "replace": replace}
    return json.dumps([{**edit, "delete": False}], indent=2)


def short_edit(replace: str) -> str:
    return json.dumps([{"path": "a.py", "search": "    pass", "replace": replace}], indent=2)


def item(n: int = 0, **changes) -> TrainingItem:
    """An execute_code pair whose chosen edit is fail-fast and whose rejected one swallows
    errors; `changes` turn it into anything else."""
    values = dict(
        stage="execute_code",
        kind="preference",
        source="harness",
        origin="harness_code",
        repo="textkit",
        domain="text",
        task_key=f"textkit:{n:04d}",
        task_date="2026-01-02T03:04:05Z",
        sha=f"{n:040x}",
        alignment=0.9,
        prompt=[
            Message(role="system", content="You carry out a coding task on the files shown."),
            Message(
                role="user",
                content="Files before the change:\n### src/textkit/config.py\n```\n"
                f"{CODE_BEFORE}```\n\nTask:\nRaise ConfigError naming a missing key ({n})",
            ),
        ],
        chosen=[Message(role="assistant", content=edits(CHOSEN_CODE))],
        rejected=[Message(role="assistant", content=edits(REJECTED_CODE))],
    )
    values.update(changes)
    return TrainingItem(**values)


def sft(n: int = 0, stage: str = "scope", **changes) -> TrainingItem:
    """An SFT example of `stage` (scope by default)."""
    answer = {
        "relevant": ["src/textkit/config.py"],
        "supporting": ["src/textkit/errors.py"],
        "irrelevant": ["src/textkit/slug.py"],
    }
    values = dict(
        kind="sft",
        source="synthetic",
        origin="commit",
        stage=stage,
        alignment=None,
        prompt=[
            Message(role="system", content="You classify a repository's files for a task."),
            Message(role="user", content=f"Task:\nRaise ConfigError ({n})\n\nRepository files:"),
        ],
        chosen=[Message(role="assistant", content=json.dumps(answer, indent=2))],
        rejected=None,
    )
    values.update(changes)
    return item(n, **values)


def bulk_pairs(ws: Workspace, count: int, stage: str = "execute_code") -> None:
    """`count` small pairs of `stage` over four repos and two sources, in one transaction."""
    prompt = json.dumps([{"role": "user", "content": "Task:\nFail on a missing key"}])
    chosen, rejected = (
        json.dumps([{"role": "assistant", "content": short_edit(code)}])
        for code in ("    raise KeyError(key)", "    return None")
    )
    base = "coding" if stage == "execute_code" else "reasoning"
    now = utc_now()
    ws.db.execute("PRAGMA synchronous = OFF")  # a test database: no fsync per spilled page
    with ws.db.conn:
        ws.db.conn.executemany(
            "INSERT INTO examples (stage, base_model, kind, source, origin, repo, domain, "
            "task_key, task_date, prompt_json, chosen_json, rejected_json, prompt_tokens, "
            "completion_tokens, content_hash, created_at) "
            "VALUES (?, ?, 'preference', ?, 'harness_code', ?, 'text', ?, "
            "'2026-01-02T03:04:05Z', ?, ?, ?, 5, 90, ?, ?)",
            (
                (
                    stage,
                    base,
                    ("harness", "synthetic")[n % 2],
                    f"repo{n % 4}",
                    f"task:{n:06d}",
                    prompt,
                    chosen,
                    rejected,
                    f"{n:064x}",
                    now,
                )
                for n in range(count)
            ),
        )


def strata_workspace(ws: Workspace) -> list[int]:
    """Execute_code pairs in five (source, repo) strata of 30, 10, 5, 2 and 1 items."""
    sizes = {
        ("harness", "textkit"): 30,
        ("harness", "slugs"): 10,
        ("synthetic", "textkit"): 5,
        ("synthetic", "attrs"): 2,
        ("logged", "cattrs"): 1,
    }
    items, n = [], 0
    for (source, repo), size in sizes.items():
        origin = {"harness": "harness_code", "synthetic": "codefavor", "logged": "logged_call"}
        for _ in range(size):
            items.append(item(n, source=source, repo=repo, origin=origin[source]))
            n += 1
    add_items(ws.db, items)
    return list(range(1, n + 1))


def drawn(ws: Workspace, round_id: int) -> list[int]:
    return [i.example_id for i in round_items(ws.db, round_id)[1]]


# -- sampling -----------------------------------------------------------------------------


def test_the_same_seed_draws_the_same_sample(tmp_path):
    first = Workspace.open(tmp_path / "one")
    second = Workspace.open(tmp_path / "two")
    strata_workspace(first)
    strata_workspace(second)
    a = drawn(first, draw_sample(first, "execute_code", 12, seed=7))
    b = drawn(second, draw_sample(second, "execute_code", 12, seed=7))
    assert a == b and len(a) == 12
    other = Workspace.open(tmp_path / "three")
    strata_workspace(other)
    assert drawn(other, draw_sample(other, "execute_code", 12, seed=8)) != a


def test_every_stratum_is_drawn_when_n_allows(workspace):
    strata_workspace(workspace)
    round_id = draw_sample(workspace, "execute_code", 8, seed=3)
    _, items = round_items(workspace.db, round_id)
    strata = Counter((i.source, i.repo) for i in items)
    assert len(items) == 8
    assert set(strata) == {
        ("harness", "textkit"),
        ("harness", "slugs"),
        ("synthetic", "textkit"),
        ("synthetic", "attrs"),
        ("logged", "cattrs"),
    }
    assert strata[("harness", "textkit")] >= strata[("harness", "slugs")] >= 1


def test_fewer_items_than_strata_takes_the_largest_strata(workspace):
    strata_workspace(workspace)
    _, items = round_items(workspace.db, draw_sample(workspace, "execute_code", 2, seed=1))
    assert {(i.source, i.repo) for i in items} == {("harness", "textkit"), ("harness", "slugs")}


def test_reviewed_items_are_never_drawn_again(workspace):
    ids = strata_workspace(workspace)
    first = set(drawn(workspace, draw_sample(workspace, "execute_code", 20, seed=1)))
    second = set(drawn(workspace, draw_sample(workspace, "execute_code", 20, seed=1)))
    assert not first & second
    rest = set(drawn(workspace, draw_sample(workspace, "execute_code", 100, seed=1)))
    assert first | second | rest == set(ids) and len(rest) == len(ids) - 40
    with pytest.raises(ReviewError, match="no unreviewed examples or pairs of stage execute_code"):
        draw_sample(workspace, "execute_code", 5, seed=1)


def test_a_sample_stays_within_its_stage(workspace):
    add_items(workspace.db, [item(1), sft(2), sft(3, stage="precision")])
    _, items = round_items(workspace.db, draw_sample(workspace, "scope", 10, seed=1))
    assert [i.example_id for i in items] == [2]
    assert round_summary(workspace.db, items[0].round_id).stage == "scope"


@pytest.mark.parametrize(
    ("stage", "n", "message"),
    [
        ("deploy", 5, "unknown stage 'deploy'; the stages are task_analysis"),
        ("scope", 0, "a sample needs at least one item, not 0"),
        ("scope", 5, "no unreviewed examples or pairs of stage scope"),
    ],
)
def test_a_sample_that_cannot_be_drawn_says_why(workspace, stage, n, message):
    add_items(workspace.db, [item(1)])
    with pytest.raises(ReviewError, match=message):
        draw_sample(workspace, stage, n, seed=1)


# -- decisions and notes ------------------------------------------------------------------


def test_decisions_and_notes_are_recorded_with_who_decided(workspace):
    add_items(workspace.db, [item(1), item(2), item(3), item(4)])
    round_id = draw_sample(workspace, "execute_code", 4, seed=1)
    decide(workspace, round_id, 1, "accept")
    decide(workspace, round_id, 2, "reject", operator="night shift")
    decide(workspace, round_id, 3, "flip")
    decide(workspace, round_id, 4, "skip")
    set_note(workspace, round_id, 2, "  swallows the KeyError  ")
    summary, items = round_items(workspace.db, round_id)
    assert [i.decision for i in items] == ["accept", "reject", "flip", "skip"]
    assert items[1].note == "swallows the KeyError" and items[0].note is None
    assert [i.decided_by for i in items][:2] == ["operator", "night shift"]
    assert (summary.decided, summary.undecided, summary.reject_rate) == (3, 1, 1 / 3)
    decide(workspace, round_id, 2, "accept")
    set_note(workspace, round_id, 2, " ")
    _, items = round_items(workspace.db, round_id)
    assert (items[1].decision, items[1].note) == ("accept", None)
    assert verdicts(workspace.db, "execute_code") == {
        items[0].example_id: "accept",
        items[1].example_id: "accept",
        items[2].example_id: "flip",
    }


def test_flip_is_refused_for_an_sft_example(workspace):
    add_items(workspace.db, [sft(1)])
    round_id = draw_sample(workspace, "scope", 1, seed=1)
    with pytest.raises(ReviewError, match="item 1 of round 1 is an SFT example: flip swaps"):
        decide(workspace, round_id, 1, "flip")
    assert round_items(workspace.db, round_id)[1][0].decision is None


@pytest.mark.parametrize(
    ("position", "decision", "message"),
    [(1, "maybe", "unknown decision 'maybe'"), (9, "accept", "round 1 has no item 9")],
)
def test_a_bad_decision_is_refused(workspace, position, decision, message):
    add_items(workspace.db, [item(1)])
    draw_sample(workspace, "execute_code", 1, seed=1)
    with pytest.raises(ReviewError, match=message):
        decide(workspace, 1, position, decision)


# -- the gate -----------------------------------------------------------------------------


def _dataset(ws: Workspace, round_id: int) -> None:
    with ws.db.conn:
        ws.db["datasets"].insert(
            {
                "id": "execute_code-1",
                "stage": "execute_code",
                "base_model": "coding",
                "format": "preference",
                "path": "datasets/execute_code-1.jsonl",
                "created_at": utc_now(),
                "manifest_sha256": "0" * 64,
                "review_round_id": round_id,
            }
        )


def test_the_gate_says_why_a_stage_may_not_be_curated(workspace):
    add_items(workspace.db, [item(n) for n in range(20)])
    gate = review_gate(workspace, "execute_code")
    assert not gate.ok and gate.round_id is None
    assert "no spot-check sample of execute_code has been drawn" in gate.reason
    round_id = draw_sample(workspace, "execute_code", 10, seed=1)
    decide(workspace, round_id, 1, "accept")
    decide(workspace, round_id, 2, "skip")
    gate = review_gate(workspace, "execute_code")
    assert not gate.ok and gate.round_id == round_id
    assert gate.reason == (
        "round 1 of execute_code: 1 of 10 items reviewed, 1 skipped; decide the rest before "
        "curating"
    )
    for position in range(2, 7):
        decide(workspace, round_id, position, "accept")
    for position in range(7, 11):
        decide(workspace, round_id, position, "reject")
    gate = review_gate(workspace, "execute_code")
    assert gate.ok, "4 of 10 do not show with 90 % confidence a rate above 20 %"
    assert gate.reason == (
        "round 1 of execute_code: 10 reviewed, 4 rejected (5 rejects of 10 would block at the "
        "20% limit)"
    )
    decide(workspace, round_id, 6, "reject")
    gate = review_gate(workspace, "execute_code")
    assert not gate.ok
    assert gate.reason == (
        "round 1 of execute_code: 5 of 10 rejected (50%): with 90% confidence the stage's "
        "reject rate is at least 27%, above the limit of 20% ([training_data] "
        "review_max_reject_rate); fix what produced the rejects (they stay out of curation); "
        "then draw a new sample of at least 10 from its 10 unreviewed items "
        "(`cra review sample --stage execute_code`)"
    )
    decide(workspace, round_id, 6, "flip")
    assert review_gate(workspace, "execute_code").ok
    _dataset(workspace, round_id)
    gate = review_gate(workspace, "execute_code")
    assert not gate.ok
    assert "round 1 of execute_code was the spot-check of dataset execute_code-1" in gate.reason
    assert not review_gate(workspace, "execute_code", "preference").ok
    assert review_gate(workspace, "execute_code", "sft").ok, "one round gates each format once"
    assert (
        review_gate(workspace, "execute_code").round_id
        == latest_round(workspace.db, "execute_code").round_id
    )


# -- status -------------------------------------------------------------------------------


def test_stage_counts_come_from_one_indexed_group_by(workspace):
    add_items(workspace.db, [item(1), item(2), sft(3), sft(4), sft(5, stage="precision")])
    draw_sample(workspace, "scope", 1, seed=1)
    counts = stage_counts(workspace.db)
    assert set(counts) == set(STAGES)
    assert (counts["execute_code"].items, counts["execute_code"].pairs) == (2, 2)
    assert (counts["scope"].items, counts["scope"].pairs, counts["scope"].unreviewed) == (2, 0, 1)
    assert counts["meta_plan"].items == 0
    plan = workspace.db.execute(
        "EXPLAIN QUERY PLAN SELECT stage, kind, COUNT(*) FROM examples GROUP BY stage, kind"
    ).fetchall()
    assert any("COVERING INDEX" in row[-1] for row in plan)


def test_stage_statuses_follow_every_stage_in_order(workspace):
    add_items(workspace.db, [item(1), item(2)])
    round_id = draw_sample(workspace, "execute_code", 2, seed=1)
    decide(workspace, round_id, 1, "reject")
    statuses = stage_statuses(workspace)
    assert [s.stage for s in statuses] == list(STAGES)
    code = statuses[STAGES.index("execute_code")]
    assert code.latest is not None and (code.latest.decided, code.latest.total) == (1, 2)
    assert not code.gate.ok and "1 of 2 items reviewed" in code.gate.reason
    assert statuses[0].latest is None and statuses[0].count.items == 0


# -- guidelines ---------------------------------------------------------------------------


def test_every_stage_has_guidelines_and_pairs_say_when_to_flip():
    assert set(GUIDELINES) == set(STAGES)
    for stage in STAGES:
        sections = dict(guideline_sections(stage))
        assert sections["Accept when"] and sections["Reject when"] and sections["Skip when"]
        assert sections["Flip (pairs only) when"][-len(EVERY_STAGE.flip) :] == EVERY_STAGE.flip
    assert GUIDELINES["planning_dpo"].flip and GUIDELINES["execute_code"].flip
    assert "mislabelled pair" in guideline_text("planning_dpo")


# -- the command line ---------------------------------------------------------------------


def run(ws: Workspace, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "review", *args])
    return result.exit_code, result.output


def test_cli_samples_decides_and_shows_a_round(workspace):
    add_items(workspace.db, [item(n) for n in range(20)] + [sft(30)])
    code, out = run(workspace, "sample", "--stage", "execute_code", "--seed", "5")
    assert code == 0, out
    assert out.startswith("round 1 of execute_code: 15 items drawn with seed 5")
    code, out = run(workspace, "decide", "1", "2", "reject", "--note", "silent fallback")
    assert (code, out) == (0, "round 1, item 2: reject (1/15 decided)\n")
    code, out = run(workspace, "show", "1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("round 1 of execute_code: seed 5, drawn ")
    assert "1/15 decided (0 accepted, 1 rejected, 0 flipped, 0 skipped)" in lines[0]
    assert len(lines) == 16 and "REJECT  note: silent fallback" in lines[2]
    data = json.loads(run(workspace, "show", "1", "--json")[1])
    assert data["items"][1]["decision"] == "reject" and data["round"]["seed"] == 5
    assert run(workspace, "note", "1", "3", "check the tests") == (
        0,
        "round 1, item 3: note saved\n",
    )
    assert run(workspace, "note", "1", "2", "") == (0, "round 1, item 2: note cleared\n")
    _, items = round_items(workspace.db, 1)
    assert (items[1].note, items[1].decision) == (None, "reject")
    assert (items[2].note, items[2].decision) == ("check the tests", None)


def test_cli_sample_size_comes_from_the_config(workspace):
    workspace.config_path.write_text(
        "[training_data]\nreview_sample_size = 3\nreview_min_sample = 3\n"
    )
    add_items(workspace.db, [item(n) for n in range(10)])
    code, out = run(workspace, "sample", "--stage", "execute_code")
    assert code == 0 and "3 items drawn with seed" in out
    assert round_summary(workspace.db, 1).total == 3


def test_cli_status_gives_each_stage_and_its_gate(workspace):
    add_items(workspace.db, [item(1), item(2), sft(3)])
    run(workspace, "sample", "--stage", "execute_code", "--seed", "1")
    run(workspace, "decide", "1", "1", "accept")
    code, out = run(workspace, "status")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == {"stage", *STAGES}
    assert lines["execute_code"].split()[1:7] == ["2", "2", "0", "1", "1/2", "0%"]
    assert "blocked: round 1 of execute_code: 1 of 2 items reviewed" in lines["execute_code"]
    assert "blocked: no spot-check sample of scope has been drawn" in lines["scope"]
    statuses = json.loads(run(workspace, "status", "--json")[1])
    assert statuses[STAGES.index("scope")]["count"]["items"] == 1


def test_cli_refusals_are_one_line_errors(workspace):
    add_items(workspace.db, [sft(1)])
    run(workspace, "sample", "--stage", "scope", "--seed", "1")
    code, out = run(workspace, "decide", "1", "1", "flip")
    assert code == 1
    assert out == (
        "error: item 1 of round 1 is an SFT example: flip swaps the chosen and rejected answers "
        "of a pair\n"
    )
    code, out = run(workspace, "show", "7")
    assert (code, out) == (1, "error: no review round has id 7\n")
    code, out = run(workspace, "sample", "--stage", "meta_plan")
    assert code == 1 and out.startswith("error: no unreviewed examples or pairs of stage meta_plan")


def test_cli_prints_a_stages_guidelines(workspace):
    code, out = run(workspace, "guidelines", "--stage", "execute_code")
    assert code == 0
    assert out.startswith("execute_code: The source of the changed files before the change")
    assert "Flip (pairs only) when:" in out and "Skip when:" in out
