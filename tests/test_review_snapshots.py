"""Snapshots of the Review pane at a fixed terminal size.

Deterministic by construction: samples are drawn with fixed seeds, every round's drawing time
is set to one known instant, and each screenshot waits until the pane has read the stages, the
round and the current item. Regenerate with
`pytest tests/test_review_snapshots.py --snapshot-update`, then read the SVGs' text.

The layout is taken at 160×50 (prompt and answers side by side) and 100×30 (stacked, the strip
and heading compact) on real demo items (`review_items`): a code pair, whose task closes its
prompt, and a text example; the task line, the prompt and the answers must all be on screen.
"""

from pathlib import Path

import pytest
from review_items import demo_items
from test_review_engine import bulk_pairs, item, sft
from test_review_pane import SIZE, console_workspace, open_pane
from textual.pilot import Pilot

from app.app import CraApp
from engine.core.workspace import Workspace
from engine.training_data.review import decide, draw_sample, set_note
from engine.training_data.store import add_items

DRAWN_AT = "2026-11-20T21:30:00Z"
DEMO_COMMITS = [
    "Count words with the shared tokenizer",
    "Let slugify join words with another separator",
    "Rename the case helpers to snake_case and camel_case",
]


def fixed_times(ws: Workspace) -> None:
    with ws.db.conn:
        ws.db.execute("UPDATE review_rounds SET drawn_at = ?", [DRAWN_AT])


def pair_workspace(tmp_path: Path) -> Workspace:
    """Three execute_code pairs drawn in round 1; the first accepted with a note."""
    ws = console_workspace(tmp_path / "workspace")
    add_items(ws.db, [item(n, repo=repo) for n, repo in enumerate(["textkit", "slugs", "attrs"])])
    round_id = draw_sample(ws, "execute_code", 3, seed=4)
    decide(ws, round_id, 1, "accept")
    set_note(ws, round_id, 1, "narrow except, good message")
    fixed_times(ws)
    return ws


def demo_round(tmp_path: Path, stage: str, kind: str) -> Workspace:
    """A round of every demo item of `stage` and `kind` from `DEMO_COMMITS`, seed 3."""
    ws = console_workspace(tmp_path / "workspace")
    items = demo_items(tmp_path / "repo", DEMO_COMMITS)
    chosen = [i for i in items if i.stage == stage and i.kind == kind]
    add_items(ws.db, chosen)
    draw_sample(ws, stage, len(chosen), seed=3)
    fixed_times(ws)
    return ws


async def _settled(pilot: Pilot) -> None:
    """The pane settled, then one more frame: a prompt opened at its user message scrolls
    after a refresh, and its scrollbar is drawn at the next."""
    await open_pane(pilot)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


def test_review_pair_with_a_code_diff(snap_compare, tmp_path):
    app = CraApp(pair_workspace(tmp_path), [])
    assert snap_compare(app, terminal_size=SIZE, run_before=_settled)


def test_review_code_pair_160x50(snap_compare, tmp_path):
    """A real CodeFavor pair side by side with its prompt: the task line above them (the task
    closes the prompt, after the file), the prompt's file and both whole answers on screen."""
    app = CraApp(demo_round(tmp_path, "execute_code", "preference"), [])
    assert snap_compare(app, terminal_size=(160, 50), run_before=_settled)


def test_review_code_pair_100x30(snap_compare, tmp_path):
    """The same pair stacked under a compact strip and heading: the task line, the prompt
    opened at its user message (the file), and both whole answers."""
    app = CraApp(demo_round(tmp_path, "execute_code", "preference"), [])
    assert snap_compare(app, terminal_size=(100, 30), run_before=_settled)


def test_review_text_item_160x50(snap_compare, tmp_path):
    """A real scope example: the task line, the whole prompt (its file list) and the whole
    answer."""
    app = CraApp(demo_round(tmp_path, "scope", "sft"), [])
    assert snap_compare(app, terminal_size=(160, 50), run_before=_settled)


def test_review_text_item_100x30(snap_compare, tmp_path):
    """The same example stacked: the task line, the prompt from its user message, the answer."""
    app = CraApp(demo_round(tmp_path, "scope", "sft"), [])
    assert snap_compare(app, terminal_size=(100, 30), run_before=_settled)


def test_review_pair_with_the_guidelines(snap_compare, tmp_path):
    app = CraApp(pair_workspace(tmp_path), [])

    async def run_before(pilot: Pilot) -> None:
        screen = await open_pane(pilot)
        await pilot.press("g")
        await pilot.pause()
        assert screen.query_one("#guidelines").display
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_review_sft_example(snap_compare, tmp_path):
    ws = console_workspace(tmp_path / "workspace")
    add_items(ws.db, [sft(n) for n in range(4)] + [sft(9, stage="precision")])
    draw_sample(ws, "scope", 4, seed=2)
    fixed_times(ws)
    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=_settled)


def test_review_small_stage_gate(snap_compare, tmp_path):
    """A stage of four items, all decided, one rejected: the gate asks for more items."""
    ws = console_workspace(tmp_path / "workspace")
    add_items(ws.db, [sft(n) for n in range(4)])
    round_id = draw_sample(ws, "scope", 15, seed=2)
    for position in range(1, 5):
        decide(ws, round_id, position, "reject" if position == 1 else "accept")
    fixed_times(ws)
    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=_settled)


def test_review_empty_stage(snap_compare, tmp_path):
    ws = console_workspace(tmp_path / "workspace")
    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=_settled)


@pytest.mark.slow
def test_review_100000_pairs(snap_compare, tmp_path):
    ws = console_workspace(tmp_path / "workspace")
    bulk_pairs(ws, 100_000)
    draw_sample(ws, "execute_code", 15, seed=1)
    fixed_times(ws)
    assert snap_compare(CraApp(ws, []), terminal_size=SIZE, run_before=_settled)
