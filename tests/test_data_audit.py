"""`cra data audit` and curation's refusal, over a real workspace database.

Items go in through the store as derivation puts them there; a `derivations` row records stages
dropped for the token budget as `cra data build` records them. The audit's numbers are checked
one by one, its text and JSON through the real CLI, and curation against a stage whose
candidates break the contract.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_hostile_text_cli import HOSTILE, assert_neutralised
from test_training_contracts import SCOPE_OK, STEP_OK, STEP_USER, TASK

from app.cli import cli
from engine.core.workspace import Workspace
from engine.training_data.audit import audit
from engine.training_data.curate import curate
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide, draw_sample
from engine.training_data.store import add_items

PKG_A, PKG_B = "a" * 64, "b" * 64


def scope_item(
    n: int,
    answer: dict,
    *,
    repo: str = "textkit",
    package: str = PKG_A,
    sha: str | None = None,
    user: str | None = None,
    source: str = "synthetic",
) -> TrainingItem:
    """Scope item `n` of commit `sha` (its own by default) brought by `package`."""
    sha = sha or f"{n:040x}"
    return TrainingItem(
        stage="scope",
        kind="sft",
        source=source,
        origin="commit",
        repo=repo,
        domain=f"dom{n % 6}",
        task_key=f"{package[:12]}:{sha}",
        task_date=f"2025-01-01T{n % 24:02d}:00:00Z",
        package_digest=package,
        sha=sha,
        prompt=[
            Message(role="system", content="You classify files."),
            Message(role="user", content=user or f"Task:\n{TASK} ({n})\n\nFiles:\nREADME.md"),
        ],
        chosen=[Message(role="assistant", content=json.dumps(answer))],
    )


def step_item(n: int, answer: dict) -> TrainingItem:
    return TrainingItem(
        stage="step_plan",
        kind="sft",
        source="synthetic",
        origin="commit",
        repo="textkit",
        domain="text",
        task_key=f"step-{n}",
        task_date="2025-01-01T00:00:00Z",
        prompt=[
            Message(role="system", content="You plan steps."),
            Message(role="user", content=STEP_USER),
        ],
        chosen=[Message(role="assistant", content=json.dumps(answer))],
    )


def ids(ws: Workspace) -> dict[int, int]:
    """Example id by the position it was added in."""
    rows = ws.db.execute("SELECT id FROM examples ORDER BY id").fetchall()
    return {position: row[0] for position, row in enumerate(rows)}


@pytest.fixture
def filled(workspace: Workspace) -> Workspace:
    """Ten scope items: 0-5 sound, 6-7 with nothing to change, 8 with a test candidate and an
    e-mail and trailer in its prompt, 9 the same content as 0 from another package; 0 and 1
    are the same commit, 1 brought by package B. Two step_plan items, one repeating its part
    title. A derivation dropped two scope examples and one step_plan example for the budget."""
    items = [scope_item(n, {**SCOPE_OK, "relevant": [f"m{n}.py"]}) for n in range(6)]
    items[1] = scope_item(1, {**SCOPE_OK, "relevant": ["m1.py"]}, package=PKG_B, sha=f"{0:040x}")
    items += [scope_item(n, {**SCOPE_OK, "relevant": []}, repo="attrs") for n in (6, 7)]
    leaky = f"Task:\n{TASK}\n\nCo-authored-by: Jane Doe <jane@mail.org>\n\nFiles:\nREADME.md"
    test_candidate = {**SCOPE_OK, "irrelevant": ["tests/test_slug.py"]}
    items.append(scope_item(8, test_candidate, user=leaky, source="harness"))
    items.append(
        scope_item(
            9,
            {**SCOPE_OK, "relevant": ["m0.py"]},
            package=PKG_B,
            user=f"Task:\n{TASK} (0)\n\nFiles:\nREADME.md",
        )
    )
    items += [
        step_item(0, STEP_OK),
        step_item(
            1,
            {
                "steps": [
                    {
                        "description": "Change textkit/slug.py: slugify",
                        "file": "textkit/slug.py",
                        "symbols": [],
                    }
                ]
            },
        ),
    ]
    add_items(workspace.db, items)
    skipped = [
        {
            "what": f"{stage} example",
            "stage": stage,
            "reason": "N tokens exceed the stage's budget of N; it is not truncated",
            "detail": "...",
        }
        for stage in ("scope", "scope", "step_plan")
    ]
    skipped.append({"what": "commit", "stage": None, "reason": "no gold answer", "detail": ""})
    with workspace.db.conn:
        workspace.db["derivations"].insert(
            {
                "package_digest": PKG_A,
                "sha": "f" * 40,
                "derived_at": "2025-01-02T00:00:00Z",
                "examples": 0,
                "pairs": 0,
                "skipped_json": json.dumps(skipped),
            }
        )
    return workspace


def test_the_audit_counts_each_stage(filled: Workspace):
    """Counts by source, origin and repo; answer shapes; each rule's items, rate and examples;
    token lengths and budget drops; duplicates within and across packages; personal data."""
    at = ids(filled)
    report = audit(filled)
    assert [stage.stage for stage in report.stages] == ["scope", "step_plan"]
    scope, steps = report.stages
    assert scope.items == 10
    assert scope.by_source == {"synthetic": 9, "harness": 1}
    assert scope.by_origin == {"commit": 10}
    assert scope.by_repo == {"textkit": 8, "attrs": 2}
    assert scope.shapes["relevant"] == {0: 2, 1: 8}
    assert scope.shapes["create"] == {0: 10}
    assert scope.shapes["supporting"] == {1: 10}
    rules = {tally.rule: tally for tally in scope.rules}
    assert rules["scope_nothing_to_change"].items == 2
    assert rules["scope_nothing_to_change"].rate == 0.2
    assert rules["scope_nothing_to_change"].examples == [at[6], at[7]]
    assert rules["scope_test_file"].examples == [at[8]]
    assert rules["prompt_email"].examples == rules["prompt_trailer"].examples == [at[8]]
    assert rules["empty_answer"].items == 0
    assert "plan_empty" not in rules
    assert scope.degenerate == 3
    assert scope.degenerate_rate == pytest.approx(0.3)
    assert scope.worst is not None and scope.worst.rule == "scope_nothing_to_change"
    assert scope.tokens.budget == 32768
    assert scope.tokens.min is not None and scope.tokens.min <= scope.tokens.median
    assert scope.tokens.median <= scope.tokens.p95 <= scope.tokens.max
    assert scope.tokens.over_budget == 0
    assert scope.tokens.dropped_by_budget == 2
    assert scope.duplicates.within_package == 0
    assert scope.duplicates.across_packages == 1
    assert scope.duplicates.examples == [at[9]]
    assert scope.duplicates.commits_in_several_packages == 1
    assert scope.personal_data.items == 1
    assert scope.personal_data.with_email == scope.personal_data.with_trailer == [at[8]]
    assert scope.personal_data.trailer_keys == {"Co-authored-by": 1}
    assert steps.items == 2
    assert steps.shapes == {"steps": {1: 2}}
    assert [t.examples for t in steps.rules if t.rule == "plan_step_repeats_title"] == [[at[11]]]
    assert steps.tokens.dropped_by_budget == 1


def test_one_stage_is_audited_alone(filled: Workspace):
    """`--stage` narrows the audit; a stage without items is reported empty, not left out."""
    assert [stage.stage for stage in audit(filled, "step_plan").stages] == ["step_plan"]
    (empty,) = audit(filled, "precision").stages
    assert (empty.items, empty.degenerate_rate, empty.tokens.median) == (0, 0.0, None)


def cra(ws: Workspace, *args: str):
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), "data", "audit", *args])


def test_the_cli_prints_a_block_per_stage_and_json(filled: Workspace):
    """Text: a block per stage with each rule's count, rate and example ids. JSON: the same
    report, as the engine computes it."""
    at = ids(filled)
    text = cra(filled)
    assert text.exit_code == 0, text.output
    assert text.output.startswith("scope: 10 items, 3 degenerate (30.0 %)\n")
    assert "\nstep_plan: 2 items, 1 degenerate (50.0 %)\n" in text.output
    line = next(line for line in text.output.splitlines() if "scope_nothing_to_change" in line)
    assert line.split()[1:3] == ["2", "20.0"]
    assert line.endswith(f"e.g. {at[6]}, {at[7]}")
    assert "answers, relevant (value:items): 0:2 1:8" in text.output
    assert "2 dropped by derivation" in text.output
    shown = cra(filled, "--json", "--stage", "scope")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == audit(filled, "scope").model_dump(mode="json")


def test_an_unknown_stage_is_refused_in_one_line(filled: Workspace):
    result = cra(filled, "--stage", "nosuch")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: unknown stage 'nosuch'; the stages are task_analysis, scope, precision, "
        "meta_plan, step_plan, test_plan, planning_dpo, execute_code"
    ]


def test_a_hostile_repository_name_is_neutralised(workspace: Workspace):
    """The repository's name comes from a package's manifest: it is printed neutralised."""
    add_items(workspace.db, [scope_item(0, SCOPE_OK, repo=HOSTILE)])
    result = CliRunner().invoke(
        cli, ["--workspace", str(workspace.root), "data", "audit"], color=True
    )
    assert result.exit_code == 0
    assert_neutralised(result)


def curation_workspace(tmp_path: Path, limit: float) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text(
        f"[curation]\nmax_domain_share = 1.0\nmax_degenerate_rate = {limit}\n", encoding="utf-8"
    )
    return Workspace.open(root)


def fill_and_review(ws: Workspace, degenerate: int) -> None:
    """40 scope items, the first `degenerate` with nothing to change; a round of 15, accepted."""
    items = [
        scope_item(n, {**SCOPE_OK, "relevant": [] if n < degenerate else [f"m{n}.py"]})
        for n in range(40)
    ]
    add_items(ws.db, items)
    round_id = draw_sample(ws, "scope", 15, seed=7)
    for position in range(1, 16):
        decide(ws, round_id, position, "accept")


def test_curation_refuses_a_stage_above_the_degenerate_limit(tmp_path: Path):
    """4 of 40 candidates (10 %) with nothing to change, above a 5 % limit: the stage is
    refused, naming the rule, its rate, the limit and where to look; nothing is written."""
    ws = curation_workspace(tmp_path, 0.05)
    fill_and_review(ws, 4)
    report = curate(ws, stage="scope")
    assert report.curated == []
    (blocked,) = report.blocked
    assert blocked.reason == (
        "4 of 40 scope candidates (10.0 %) are degenerate, above [curation] "
        "max_degenerate_rate (5.0 %); most break scope_nothing_to_change (4, 10.0 %: nothing "
        "to change and nothing to create); see `cra data audit --stage scope`"
    )
    assert ws.db["datasets"].count == 0


def test_degenerate_items_under_the_limit_are_left_out_and_counted(tmp_path: Path):
    """1 of 40 (2.5 %) under a 5 % limit: curated, without that item, counted in the manifest."""
    ws = curation_workspace(tmp_path, 0.05)
    fill_and_review(ws, 1)
    report = curate(ws, stage="scope")
    assert report.blocked == []
    (done,) = report.curated
    assert done.manifest.counts.degenerate == 1
    first = ids(ws)[0]
    used = {row[0] for row in ws.db.execute("SELECT example_id FROM dataset_examples")}
    assert first not in used
    counts = done.manifest.counts
    dropped = counts.exact_duplicates + counts.near_duplicates + counts.dropped_for_balance
    assert len(used) == counts.candidates - counts.degenerate - dropped
