"""Plan artifacts become training data (LoRA Training Strategy §6.8): a good or fine plan a meta
plan example for the base export, a replaced bad plan a planning DPO pair beside its replacement,
each with its label's evidence; a bad plan without a replacement makes nothing.

The histories are real git repositories generated here (the plan-artifact tests' `History`);
the demo package's plan flows through `cra data build` in a real workspace.
"""

from datetime import datetime
from pathlib import Path

import pytest
from test_plan_artifacts import IMPLEMENTATION, PLAN, History

from engine.core.workspace import Workspace
from engine.harness.package import CorpusPackage
from engine.intake.approval import approve_package
from engine.intake.manifest import ManifestV1, PlanRef
from engine.training_data.derive import build_training_data
from engine.training_data.plan_items import plan_artifact_items
from engine.training_data.store import item_from_row


def _package(history: History) -> CorpusPackage:
    """The generated repository as an approved package whose manifest lists its plans."""
    head = history.commit(9, "Tidy the README", {"README.md": "# textkit\n\nSlugs.\n"})
    manifest = ManifestV1(
        schema_version=1,
        name="cachekit",
        head=head,
        python_version="3.11",
        test_command="pytest",
        domain="text",
        license="MIT",
        commits=[
            {
                "sha": head,
                "parent": head,
                "date": datetime(2024, 5, 10),
                "subject": "Tidy the README",
                "files_changed": 1,
                "lines_added": 1,
                "lines_deleted": 0,
                "planning_type": "step_plan",
            }
        ],
        plan_artifacts=history.artifacts().values(),
        created_at=datetime(2024, 6, 1),
    )
    return CorpusPackage(digest="d" * 64, root=history.repo.parent, manifest=manifest)


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path)


def test_a_replaced_plan_pairs_with_its_replacement_and_a_good_plan_is_an_example(
    history: History,
) -> None:
    """cache-v1 was replaced by cache-v2 (bad): a planning DPO pair on v1's prompt, v2 chosen;
    cache-v2 was implemented cleanly (good): a meta plan example whose prompt holds the cleaned
    commit message and the file tree before the plan, and whose answer is the plan's text."""
    first = history.commit(
        1, "Plan the slug cache\n\nSigned-off-by: A <a@x.org>", {"docs/plans/cache-v1.md": PLAN}
    )
    second = history.commit(
        2,
        "Replace the cache plan (#12)",
        {"docs/plans/cache-v1.md": None, "docs/plans/cache-v2.md": "Cache in textkit.cache.\n"},
    )
    history.commit(3, "Add a slug cache", IMPLEMENTATION)
    package = _package(history)
    artifacts = {a.path: a for a in package.manifest.plan_artifacts}
    assert artifacts["docs/plans/cache-v1.md"].replaced_by == PlanRef(
        path="docs/plans/cache-v2.md", added_in=second
    )
    assert artifacts["docs/plans/cache-v2.md"].replaced_by is None

    items, skipped = plan_artifact_items(package)

    assert skipped == []
    by_stage = {item.stage: item for item in items}
    assert set(by_stage) == {"planning_dpo", "meta_plan"}
    pair = by_stage["planning_dpo"]
    assert (pair.kind, pair.origin, pair.sha) == ("preference", "plan_artifact", first)
    assert pair.chosen[0].content == "Cache in textkit.cache."
    assert pair.rejected is not None and pair.rejected[0].content == PLAN.strip()
    assert (
        pair.evidence
        == f"replaced by docs/plans/cache-v2.md ({second[:7]}); the replacement is chosen"
    )
    user = pair.prompt[-1].content
    assert "Task:\nPlan the slug cache" in user and "a@x.org" not in user
    assert "textkit/slug.py\n" in user and "docs/plans" not in user
    example = by_stage["meta_plan"]
    assert (example.kind, example.sha, example.chosen[0].content) == (
        "sft",
        second,
        "Cache in textkit.cache.",
    )
    assert example.evidence is not None and example.evidence.startswith("implemented in")
    assert "Task:\nReplace the cache plan" in example.prompt[-1].content
    assert "#12" not in example.prompt[-1].content


def test_an_abandoned_bad_plan_makes_nothing(history: History) -> None:
    """A bad plan with no replacement has no accepted plan to pair with: no item, and why."""
    history.commit(1, "Plan the slug cache", {"docs/plans/cache.md": PLAN})
    items, skipped = plan_artifact_items(_package(history))
    assert items == []
    assert len(skipped) == 1 and skipped[0].startswith("docs/plans/cache.md: bad with no")


@pytest.mark.slow
def test_the_demo_plan_flows_into_the_base_fine_tune_data(
    ws: Workspace, valid_package: Path
) -> None:
    """The demo repository's docs/plans/truncate.md, good, becomes a meta plan example with its
    evidence when `cra data build` runs; a second build adds nothing."""
    approve_package(ws, valid_package)
    build_training_data(ws)
    rows = list(ws.db.query("SELECT * FROM examples WHERE origin = 'plan_artifact'"))
    items = [item_from_row(row) for row in rows]
    assert [(i.stage, i.kind) for i in items] == [("meta_plan", "sft")]
    assert items[0].chosen[0].content.startswith("# Plan: truncate long text")
    assert items[0].evidence is not None and "implemented in" in items[0].evidence
    assert "Task:\nPlan the truncate helper" in items[0].prompt[-1].content
    report = build_training_data(ws)
    assert sum(p.examples_added for p in report.packages) == 0
