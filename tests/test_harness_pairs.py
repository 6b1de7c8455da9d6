"""Harness preference pairs (LoRA Training Strategy §6.9): labelling rules over real attempt rows
and artifacts.

The demo package is approved once; each test works on a copy of that workspace, writes
campaign and attempt rows into its SQLite database and the attempts' artifacts (context.txt,
raw.txt) where the harness writes them, then builds pairs from them.
"""

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.core.config import TrainingDataConfig
from engine.core.timestamps import utc_now
from engine.core.workspace import RUNS_DIR, Workspace
from engine.harness.attempts import commit_message
from engine.harness.package import load_package
from engine.harness.pipeline import PlannerTask
from engine.harness.prompt import build_messages
from engine.harness.retrieve import count_tokens
from engine.harness.task_validation import task_name
from engine.intake.approval import approve_package
from engine.training_data.derive import build_training_data
from engine.training_data.harness_pairs import (
    AMBIGUOUS,
    NO_ARTIFACT,
    NO_PLAN,
    NO_RESOLVED,
    OTHER_CONTEXT,
    OVER_BUDGET,
    harness_pairs,
    plan_alignment,
)

SUBJECT = "Fold accented letters in slugify"
CONTEXT = "### textkit/slug.py\n```\ndef slugify(title): ...\n```\n"
OTHER = "### README.md\n```\n# textkit\n```\n"
CONFIG = TrainingDataConfig(planning_alignment_max=0.5, coding_alignment_min=0.8)
ALIGNED = {"file_precision": 1.0, "file_recall": 1.0, "symbol_precision": 1.0, "symbol_recall": 1.0}
MISALIGNED = {
    "file_precision": 0.0,
    "file_recall": 0.0,
    "symbol_precision": None,
    "symbol_recall": 0.0,
}
BETWEEN = {"file_precision": 1.0, "file_recall": 1.0, "symbol_precision": 0.5, "symbol_recall": 0.5}


def _plan(file: str, symbol: str) -> str:
    step = {"description": f"change {symbol}", "file": file, "symbols": [symbol]}
    return json.dumps({"summary": "s", "parts": [{"id": "p", "title": "t", "steps": [step]}]})


GOOD_PLAN = _plan("textkit/slug.py", "slugify")
BAD_PLAN = _plan("README.md", "nothing")


@pytest.fixture(scope="module")
def approved(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> Path:
    """A workspace root with the demo package approved, its database closed."""
    root = tmp_path_factory.mktemp("pairs") / "ws"
    package = copy_package(root.parent)
    ws = Workspace.open(root)
    approve_package(ws, package)
    ws.db.conn.close()
    return root


class Harness:
    """A workspace copy and the task the attempts belong to."""

    def __init__(self, root: Path) -> None:
        self.ws = Workspace.open(root)
        [row] = self.ws.db["packages"].rows
        self.package = load_package(self.ws, row["digest"])
        self.sha = next(c.sha for c in self.package.manifest.commits if c.subject == SUBJECT)
        self.task = task_name(self.package.digest, self.sha)
        self.seed = 0
        with self.ws.db.conn:
            self.ws.db["campaigns"].insert(
                {"id": 1, "created_at": utc_now(), "spec_json": "{}", "status": "done"}
            )

    def attempt(
        self,
        outcome: str,
        scores: dict[str, float | None],
        plan: str | None,
        context: str | None = CONTEXT,
        raw: str = "",
        state: str = "done",
    ) -> int:
        """Record an attempt row and write its artifacts; returns its id."""
        self.seed += 1
        row: dict[str, Any] = {
            "campaign_id": 1,
            "package_digest": self.package.digest,
            "package_name": "textkit",
            "sha": self.sha,
            "task": self.task,
            "pipeline": "command",
            "model": "planner",
            "temperature": 0.7,
            "seed": self.seed,
            "state": state,
            "outcome": outcome,
            "plan_json": plan,
            **scores,
        }
        with self.ws.db.conn:
            attempt_id = self.ws.db["attempts"].insert(row).last_pk
        out = self.ws.root / RUNS_DIR / self.task / "attempts" / str(attempt_id)
        out.mkdir(parents=True)
        if context is not None:
            (out / "context.txt").write_text(context, encoding="utf-8")
        (out / "raw.txt").write_text(raw or f"raw answer of attempt {attempt_id}", "utf-8")
        with self.ws.db.conn:
            self.ws.db["attempts"].update(
                attempt_id, {"artifacts": str(out.relative_to(self.ws.root))}
            )
        return attempt_id


@pytest.fixture
def harness(tmp_path: Path, approved: Path) -> Harness:
    root = tmp_path / "ws"
    shutil.copytree(approved, root, symlinks=True)
    return Harness(root)


def test_alignment_is_the_mean_of_the_defined_f1_scores():
    assert plan_alignment(ALIGNED) == 1.0
    assert plan_alignment(MISALIGNED) == 0.0
    assert plan_alignment(BETWEEN) == pytest.approx(0.75)
    half = {"file_precision": 0.5, "file_recall": 1.0, "symbol_precision": None}
    assert plan_alignment({**half, "symbol_recall": None}) == pytest.approx(2 / 3)
    none = {"file_precision": None, "file_recall": 0.0, "symbol_precision": None}
    assert plan_alignment({**none, "symbol_recall": 1.0}) is None


def test_a_misaligned_failed_plan_is_a_planning_pair(harness: Harness):
    chosen = harness.attempt("resolved", ALIGNED, GOOD_PLAN)
    rejected = harness.attempt("failed", MISALIGNED, BAD_PLAN)
    [item], skips = harness_pairs(harness.ws, CONFIG)
    assert skips == []
    assert (item.stage, item.kind, item.source, item.origin) == (
        "planning_dpo",
        "preference",
        "harness",
        "harness_plan",
    )
    assert (item.chosen_attempt_id, item.rejected_attempt_id, item.alignment) == (
        chosen,
        rejected,
        0.0,
    )
    assert json.loads(item.chosen[0].content) == {"plan": json.loads(GOOD_PLAN)}
    assert item.rejected is not None
    assert json.loads(item.rejected[0].content) == {"plan": json.loads(BAD_PLAN)}
    package = harness.package
    expected = build_messages(
        PlannerTask(
            task=harness.task,
            repo="textkit",
            instruction=commit_message(package, harness.sha),
            parent=next(c.parent for c in package.manifest.commits if c.sha == harness.sha),
            worktree="/anywhere",
            context=CONTEXT,
            context_tokens=count_tokens(CONTEXT),
            model="m",
            temperature=0,
            seed=0,
        )
    )
    assert [m.model_dump() for m in item.prompt] == expected
    assert SUBJECT in item.prompt[1].content and CONTEXT in item.prompt[1].content
    assert (item.repo, item.domain, item.task_date) == (
        "textkit",
        "text-processing",
        "2024-03-04T10:00:00Z",
    )
    assert (item.task_key, item.package_digest) == (
        f"textkit:{harness.sha}",
        package.digest,
    )


def test_an_aligned_failed_plan_is_a_coding_pair_of_raw_answers(harness: Harness):
    chosen = harness.attempt("resolved", ALIGNED, GOOD_PLAN, raw="the good edits")
    rejected = harness.attempt("failed", ALIGNED, GOOD_PLAN, raw="the botched edits")
    [item], _ = harness_pairs(harness.ws, CONFIG)
    assert (item.stage, item.origin, item.alignment) == ("execute_code", "harness_code", 1.0)
    assert (item.chosen_attempt_id, item.rejected_attempt_id) == (chosen, rejected)
    assert item.chosen[0].content == "the good edits"
    assert item.rejected is not None and item.rejected[0].content == "the botched edits"


def test_an_ambiguous_alignment_or_no_plan_makes_no_pair(harness: Harness):
    harness.attempt("resolved", ALIGNED, GOOD_PLAN)
    between = harness.attempt("failed", BETWEEN, GOOD_PLAN)
    malformed = harness.attempt("failed", dict.fromkeys(ALIGNED), None)
    items, skips = harness_pairs(harness.ws, CONFIG)
    assert items == []
    assert [(s.reason, s.detail) for s in skips] == [
        (AMBIGUOUS, f"failed attempt {between}: alignment 0.75"),
        (NO_PLAN, f"failed attempt {malformed}"),
    ]
    wide = TrainingDataConfig(planning_alignment_max=0.75, coding_alignment_min=0.8)
    [item], _ = harness_pairs(harness.ws, wide)
    assert (item.stage, item.rejected_attempt_id) == ("planning_dpo", between)


def test_partial_error_and_unusable_attempts_are_never_rejected_nor_chosen(harness: Harness):
    harness.attempt("partial", MISALIGNED, BAD_PLAN)
    harness.attempt("error", MISALIGNED, BAD_PLAN)
    harness.attempt("unusable", dict.fromkeys(ALIGNED), None)
    harness.attempt("failed", MISALIGNED, BAD_PLAN, state="running")
    failed = harness.attempt("failed", MISALIGNED, BAD_PLAN)
    items, skips = harness_pairs(harness.ws, CONFIG)
    assert items == []
    assert [(s.reason, s.detail) for s in skips] == [(NO_RESOLVED, f"failed attempt {failed}")]
    resolved = harness.attempt("resolved", ALIGNED, GOOD_PLAN)
    items, skips = harness_pairs(harness.ws, CONFIG)
    assert [(i.chosen_attempt_id, i.rejected_attempt_id) for i in items] == [(resolved, failed)]
    assert skips == []


def test_the_chosen_attempt_saw_the_same_context(harness: Harness):
    harness.attempt("resolved", ALIGNED, GOOD_PLAN, context=OTHER)
    same = harness.attempt("resolved", ALIGNED, GOOD_PLAN)
    harness.attempt("resolved", ALIGNED, GOOD_PLAN)
    rejected = harness.attempt("failed", MISALIGNED, BAD_PLAN)
    lonely = harness.attempt("failed", MISALIGNED, BAD_PLAN, context=CONTEXT + "more\n")
    lost = harness.attempt("failed", MISALIGNED, BAD_PLAN, context=None)
    items, skips = harness_pairs(harness.ws, CONFIG)
    assert [(i.chosen_attempt_id, i.rejected_attempt_id) for i in items] == [(same, rejected)]
    assert [(s.reason, s.detail.split(":")[0]) for s in skips] == [
        (OTHER_CONTEXT, f"failed attempt {lonely}"),
        (NO_ARTIFACT, f"failed attempt {lost}"),
    ]


def test_a_pair_over_the_stage_budget_is_skipped_not_truncated(harness: Harness):
    huge = CONTEXT + "x" * 100_000
    harness.attempt("resolved", ALIGNED, GOOD_PLAN, context=huge)
    failed = harness.attempt("failed", MISALIGNED, BAD_PLAN, context=huge)
    items, skips = harness_pairs(harness.ws, CONFIG)
    assert items == []
    assert [(s.stage, s.reason) for s in skips] == [("planning_dpo", OVER_BUDGET)]
    assert skips[0].detail.startswith(f"failed attempt {failed}: ")
    assert skips[0].detail.endswith(" tokens > 32768")


def test_building_twice_stores_each_pair_once(harness: Harness):
    harness.attempt("resolved", ALIGNED, GOOD_PLAN)
    rejected = harness.attempt("failed", MISALIGNED, BAD_PLAN)
    harness.attempt("failed", BETWEEN, GOOD_PLAN)
    [first] = build_training_data(harness.ws).packages
    assert (first.pairs_added, first.already_present) == ({"planning_dpo": 1}, 0)
    assert first.skipped == {f"harness pair: {AMBIGUOUS}": 1}
    [second] = build_training_data(harness.ws).packages
    assert (second.pairs_added, second.already_present) == ({"planning_dpo": 0}, 2)
    rows = list(harness.ws.db["examples"].rows)
    assert [(r["stage"], r["origin"], r["rejected_attempt_id"]) for r in rows] == [
        ("meta_plan", "plan_artifact", None),
        ("planning_dpo", "harness_plan", rejected),
    ], "the demo's truncate plan and the one pair, each stored once"
