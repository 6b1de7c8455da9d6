"""The review gate at 10-20 items: a reject-rate rule with a confidence bound and a minimum
sample, so one honest reject in a small round never blocks a stage for good.

The bound is a one-sided Clopper-Pearson lower bound computed with the standard library; it is
checked against closed forms and a published interval, and the table of rejects that block
matches the one in docs/operator-guide.md.
"""

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.cli_review import review
from engine.core.errors import ConfigError
from engine.core.workspace import Workspace
from engine.training_data.items import Message, TrainingItem
from engine.training_data.reject_bound import (
    binomial_tail,
    blocks,
    reject_rate_lower_bound,
    rejects_that_block,
)
from engine.training_data.review import decide, draw_sample, review_gate
from engine.training_data.store import add_items

if "review" not in cli.commands:
    cli.add_command(review)


def test_the_binomial_tail_matches_its_closed_forms():
    """P(X >= 0) = 1, P(X >= n) = p^n, P(X >= 1) = 1 - (1 - p)^n, and one exact sum."""
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert math.isclose(binomial_tail(10, 10, 0.3), 0.3**10, rel_tol=1e-12)
    assert math.isclose(binomial_tail(1, 10, 0.3), 1 - 0.7**10, rel_tol=1e-12)
    exact = sum(math.comb(20, i) * 0.2**i * 0.8 ** (20 - i) for i in range(7, 21))
    assert math.isclose(binomial_tail(7, 20, 0.2), exact, rel_tol=1e-12)
    assert binomial_tail(3, 500, 0.5) == pytest.approx(1.0)


def test_the_lower_bound_matches_known_values():
    """Closed forms at k = n (alpha^(1/n)) and k = 1 (1 - (1 - alpha)^(1/n)), zero rejects
    give 0, and 5 of 10 at 97.5 % gives the textbook 95 % interval's lower end, 0.1871."""
    assert math.isclose(reject_rate_lower_bound(10, 10, 0.9), 0.1 ** (1 / 10), rel_tol=1e-9)
    assert math.isclose(reject_rate_lower_bound(1, 10, 0.9), 1 - 0.9 ** (1 / 10), rel_tol=1e-9)
    assert reject_rate_lower_bound(0, 15, 0.9) == 0.0
    assert reject_rate_lower_bound(5, 10, 0.975) == pytest.approx(0.1871, abs=5e-5)
    assert reject_rate_lower_bound(1, 4, 0.9) == pytest.approx(0.0260, abs=5e-5)
    with pytest.raises(ValueError):
        reject_rate_lower_bound(3, 2, 0.9)


def test_the_operator_guides_table():
    """At the defaults (20 %, 90 %): 5 of 10, 6 of 15 and 7 of 20 rejects block, one fewer
    does not; blocking agrees with the lower bound being above the limit."""
    assert {n: rejects_that_block(n, 0.2, 0.9) for n in (10, 15, 20)} == {10: 5, 15: 6, 20: 7}
    for n in range(1, 31):
        for k in range(n + 1):
            assert blocks(k, n, 0.2, 0.9) == (reject_rate_lower_bound(k, n, 0.9) > 0.2)
    assert rejects_that_block(10, 1.0, 0.9) is None
    assert rejects_that_block(10, 0.0, 0.9) == 1


def _item(n: int) -> TrainingItem:
    return TrainingItem(
        stage="scope",
        kind="sft",
        source="synthetic",
        origin="commit",
        repo="textkit",
        domain="text",
        task_key=f"textkit:{n:040d}",
        task_date="2025-01-01T00:00:00Z",
        prompt=[Message(role="user", content=f"Which files does task {n} change?")],
        chosen=[Message(role="assistant", content=f'{{"relevant": ["f{n}.py"]}}')],
    )


def _decide_all(ws: Workspace, round_id: int, rejects: int) -> None:
    positions = [
        row[0]
        for row in ws.db.execute(
            "SELECT position FROM review_items WHERE round_id = ? ORDER BY position", [round_id]
        )
    ]
    for position in positions:
        decide(ws, round_id, position, "reject" if position <= rejects else "accept")


def test_one_reject_in_a_small_stage_asks_for_more_data_not_a_fix(workspace):
    """A stage of 4 items, one honestly rejected: the round is too small for a verdict and the
    gate says how many more items the stage needs; once they are derived it says to draw; a
    round of 10 from them with one reject lets the stage be curated."""
    add_items(workspace.db, [_item(n) for n in range(4)])
    round_id = draw_sample(workspace, "scope", 15, seed=1)
    _decide_all(workspace, round_id, rejects=1)
    gate = review_gate(workspace, "scope")
    assert not gate.ok
    assert gate.reason == (
        "round 1 of scope: 4 items decided, needs 6 more: a verdict takes at least 10 "
        "([training_data] review_min_sample); the stage has 0 unreviewed items and needs 10 "
        "more for a sample of 10: derive more data (`cra data build`, `cra import-logs`), then "
        "draw one"
    )
    add_items(workspace.db, [_item(n) for n in range(4, 10)])
    assert (
        "the stage has 6 unreviewed items and needs 4 more"
        in review_gate(workspace, "scope").reason
    )
    add_items(workspace.db, [_item(n) for n in range(10, 16)])
    assert review_gate(workspace, "scope").reason.endswith(
        "draw a new sample of at least 10 from its 12 unreviewed items "
        "(`cra review sample --stage scope`)"
    )
    second = draw_sample(workspace, "scope", 10, seed=2)
    _decide_all(workspace, second, rejects=1)
    gate = review_gate(workspace, "scope")
    assert gate.ok and gate.round_id == second


def test_cli_status_shows_the_gates_reason(workspace):
    """`cra review status` prints the new reason in the stage's line."""
    add_items(workspace.db, [_item(n) for n in range(4)])
    _decide_all(workspace, draw_sample(workspace, "scope", 15, seed=1), rejects=1)
    result = CliRunner().invoke(cli, ["--workspace", str(workspace.root), "review", "status"])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("scope ")]
    assert "blocked: round 1 of scope: 4 items decided, needs 6 more" in line


def test_a_sample_size_below_the_minimum_is_refused(tmp_path: Path):
    """A default round that could never get a verdict is a configuration mistake."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text("[training_data]\nreview_sample_size = 5\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"review_sample_size \(5\) must be at least review_min_sample \(10\)"
    ):
        Workspace.open(root)
