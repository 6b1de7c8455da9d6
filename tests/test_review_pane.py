"""The Review pane driven by Pilot over a real workspace database, and the pure functions that
lay out what it draws (readable answers, the aligned chosen/rejected diff).

Every key is checked against the database the engine wrote, not against the pane's own state.
"""

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pilot_wait import until
from review_items import demo_items
from rich.console import Console
from rich.text import Text
from test_review_engine import CHOSEN_CODE, REJECTED_CODE, edits, item, sft
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input, Static

from app.app import PANES, CraApp, Pane
from engine.core.workspace import Workspace
from engine.training_data.items import Message
from engine.training_data.review import decide, draw_sample
from engine.training_data.review_status import round_items
from engine.training_data.store import add_items
from screens.review import NoteScreen, ReviewScreen
from screens.review_lines import RowsView
from screens.review_view import DiffRow, aligned, marked_line, readable, task_line
from screens.widgets.confirm import ConfirmScreen

SIZE = (120, 40)


def console_workspace(root: Path, sample_size: int = 15) -> Workspace:
    root.mkdir()
    (root / "cra.toml").write_text(
        f"[usb]\nmount_roots = []\n\n[training_data]\nreview_sample_size = {sample_size}\n"
        f"review_min_sample = {min(sample_size, 10)}\n",
        encoding="utf-8",
    )
    return Workspace.open(root)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return console_workspace(tmp_path / "workspace", sample_size=3)


def panes_with_seed(seed: int) -> list[Pane]:
    """The console's panes, the Review pane drawing samples with a fixed seed."""
    return [
        replace(p, build=lambda app: ReviewScreen(app.workspace, lambda: seed))
        if p.mode == "review"
        else p
        for p in PANES
    ]


async def open_pane(pilot: Pilot) -> ReviewScreen:
    await pilot.press("3")
    screen = pilot.app.screen
    assert isinstance(screen, ReviewScreen)
    await until(pilot, lambda: screen.settled, "the pane to settle")
    return screen


async def press(pilot: Pilot, screen: ReviewScreen, *keys: str) -> None:
    """Press `keys`, then wait until every write is applied and the pane has re-read."""
    await pilot.press(*keys)
    await pilot.pause()
    await until(pilot, lambda: screen.settled, "the pane to settle")


def decisions(ws: Workspace, round_id: int) -> list[str | None]:
    return [i.decision for i in round_items(ws.db, round_id)[1]]


def text_of(screen: ReviewScreen, selector: str) -> str:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


def notifications(app: CraApp) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


# -- keys ---------------------------------------------------------------------------------


async def test_keys_record_decisions_and_move_to_the_next_undecided(ws):
    add_items(ws.db, [item(n) for n in range(4)])
    round_id = draw_sample(ws, "execute_code", 4, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        assert (screen.stage, screen.position) == ("execute_code", 1)
        await press(pilot, screen, "a")
        assert decisions(ws, round_id) == ["accept", None, None, None]
        assert screen.position == 2
        await press(pilot, screen, "r")
        assert screen.position == 3
        await press(pilot, screen, "k")
        assert screen.position == 2
        await press(pilot, screen, "a")
        assert screen.position == 3, "the next undecided item after 2"
        await press(pilot, screen, "s")
        assert screen.position == 4
        await press(pilot, screen, "f")
        assert screen.position == 3, "round again to the skipped item"
        assert decisions(ws, round_id) == ["accept", "accept", "skip", "flip"]
        await press(pilot, screen, "down", "down", "up")
        assert screen.position == 3
        await press(pilot, screen, "j", "j", "j")
        assert screen.position == 4, "next stops at the last item"
        assert "Round 1 · item 4/4 · execute_code · pair" in text_of(screen, "#item-head")
        assert "Decision ⇄ flipped by operator" in text_of(screen, "#item-head")


async def test_keys_pressed_faster_than_writes_are_applied_in_order(ws):
    add_items(ws.db, [item(n) for n in range(5)])
    round_id = draw_sample(ws, "execute_code", 5, seed=2)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await pilot.press("r", "r", "a", "f", "r")
        await until(pilot, lambda: screen.settled, "the writes")
        assert decisions(ws, round_id) == ["reject", "reject", "accept", "flip", "reject"]
        decided = (f"Every item of round {round_id} is decided.", "information")
        await until(pilot, lambda: decided in notifications(app), "the round's end")
        assert "Gate ✗ blocked" in text_of(screen, "#gate")
        assert "3 of 5 rejected (60%): with 90% confidence" in text_of(screen, "#gate")


async def test_a_note_is_written_in_a_modal_and_saved(ws):
    add_items(ws.db, [item(n) for n in range(2)])
    round_id = draw_sample(ws, "execute_code", 2, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, NoteScreen)
        await pilot.press(*"keeps junk", "enter")
        await until(pilot, lambda: screen.settled, "the note")
        assert round_items(ws.db, round_id)[1][0].note == "keeps junk"
        assert "Note keeps junk" in text_of(screen, "#item-head")
        assert screen.position == 1, "a note is not a decision"
        await pilot.press("n")
        assert app.screen.query_one("#note", Input).value == "keeps junk"
        await pilot.press(*" too", "escape")
        await until(pilot, lambda: screen.settled, "the pane")
        assert round_items(ws.db, round_id)[1][0].note == "keeps junk"
        await pilot.press("n")
        app.screen.query_one("#note", Input).value = "  "
        await pilot.press("enter")
        await until(pilot, lambda: screen.settled, "the note to be cleared")
        assert round_items(ws.db, round_id)[1][0].note is None
        assert decisions(ws, round_id) == [None, None]


async def test_flip_on_an_sft_example_is_refused(ws):
    add_items(ws.db, [sft(1), sft(2)])
    round_id = draw_sample(ws, "scope", 2, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        assert screen.stage == "scope"
        await press(pilot, screen, "f")
        assert notifications(app) == [
            (
                "Item 1 is an SFT example: flip swaps the chosen and rejected answers of a "
                "pair. Accept or reject it instead.",
                "warning",
            )
        ]
        assert decisions(ws, round_id) == [None, None] and screen.position == 1
        assert "Answer · " in screen.query_one("#answer").border_title


async def test_stages_switch_with_brackets_and_wrap_around(ws):
    add_items(ws.db, [item(n) for n in range(3)] + [sft(10), sft(11)])
    scope_round = draw_sample(ws, "scope", 2, seed=1)
    code_round = draw_sample(ws, "execute_code", 3, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        assert screen.stage == "scope", "the first stage with an open round"
        assert screen.round is not None and screen.round.round_id == scope_round
        await press(pilot, screen, "left_square_bracket")
        assert screen.stage == "task_analysis" and screen.round is None
        assert "No items of task_analysis yet." in text_of(screen, "#empty")
        await press(pilot, screen, "left_square_bracket")
        assert screen.stage == "execute_code"
        assert screen.round is not None and screen.round.round_id == code_round
        assert "Round 2 · item 1/3 · execute_code" in text_of(screen, "#item-head")
        await press(pilot, screen, "a")
        await press(pilot, screen, "right_square_bracket", "right_square_bracket")
        assert screen.stage == "scope" and screen.position == 1
        await press(pilot, screen, "a")
        assert decisions(ws, code_round) == ["accept", None, None]
        assert decisions(ws, scope_round) == ["accept", None]


async def test_drawing_a_sample_asks_first(ws):
    add_items(ws.db, [sft(n) for n in range(5)])
    app = CraApp(ws, [], panes=panes_with_seed(41))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        assert screen.stage == "scope" and screen.round is None
        assert "scope holds 5 items (0 pairs); no sample" in text_of(screen, "#empty")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await until(pilot, lambda: screen.settled, "the pane")
        assert ws.db.execute("SELECT COUNT(*) FROM review_rounds").fetchone()[0] == 0
        await pilot.press("d", "y")
        await until(pilot, lambda: screen.round is not None and screen.settled, "the new round")
        row = ws.db.execute("SELECT stage, requested, seed FROM review_rounds").fetchone()
        assert tuple(row) == ("scope", 3, 41)
        assert screen.round.total == 3 and screen.position == 1
        drawn = ("Round 1 of scope drawn.", "information")
        await until(pilot, lambda: drawn in notifications(app), "the draw's notification")
        await press(pilot, screen, "a", "a")
        await pilot.press("d")
        body = str(app.screen.query_one(".dialog-body", Static).content)
        assert "Draw 2 of the 2 unreviewed items of scope" in body
        assert "A round of fewer than 3 items gets no verdict" in body
        assert "Round 1 still has 1 undecided items" in body
        await pilot.press("y")
        await until(pilot, lambda: screen.round.round_id == 2 and screen.settled, "round 2")
        assert screen.round.total == 2


async def test_drawing_with_nothing_to_draw_says_why_without_asking(ws):
    add_items(ws.db, [sft(1)])
    draw_sample(ws, "scope", 1, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await press(pilot, screen, "d")
        assert app.screen is screen
        await press(pilot, screen, "left_square_bracket", "d")
        assert notifications(app) == [
            ("No sample of scope to draw: all 1 of its items have been drawn before.", "warning"),
            (
                "No sample of task_analysis to draw: it has no items yet: derive them with "
                "`cra data build`.",
                "warning",
            ),
        ]


async def test_decisions_made_elsewhere_show_when_the_pane_comes_back(ws):
    add_items(ws.db, [item(n) for n in range(3)])
    round_id = draw_sample(ws, "execute_code", 3, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await pilot.press("1")
        decide(ws, round_id, 1, "reject")
        await open_pane(pilot)
        assert screen.items[0].decision == "reject"
        assert "1 decided, 1 rejected, 2 to go" in text_of(screen, "#item-head")


async def test_a_decision_from_the_cli_shows_in_view_and_the_item_stays(ws):
    """The pane looks every second: a decision made by `cra review decide` in another process
    shows in the heading while the pane is in view, and the item being read is not redrawn."""
    add_items(ws.db, [item(n) for n in range(3)])
    round_id = draw_sample(ws, "execute_code", 3, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await press(pilot, screen, "j")
        answer = screen.query_one("#answer", RowsView)
        shown, lines = answer.shown, answer.virtual_size
        cli = [sys.executable, "-m", "app", "--workspace", str(ws.root), "review", "decide"]
        subprocess.run([*cli, str(round_id), "1", "reject"], check=True, capture_output=True)
        await until(
            pilot,
            lambda: "1 decided, 1 rejected, 2 to go" in text_of(screen, "#item-head"),
            "the decision made elsewhere",
        )
        assert screen.position == 2
        assert (answer.shown, answer.virtual_size) == (shown, lines)


async def test_a_round_drawn_elsewhere_is_announced(ws):
    """A new round of the stage in view, drawn by another process, replaces the old one with a
    warning: the gate reads only the newest round."""
    add_items(ws.db, [item(n) for n in range(6)])
    first = draw_sample(ws, "execute_code", 3, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        second = draw_sample(ws, "execute_code", 3, seed=2)
        await until(pilot, lambda: screen.round and screen.round.round_id == second, "round")
        warning = (
            f"Round {second} of execute_code was drawn elsewhere; round {first} is no longer "
            "the one the gate reads.",
            "warning",
        )
        # The pane's notification reaches the app's list as a message of its own, a moment later.
        await until(pilot, lambda: warning in notifications(app), "the warning")


async def test_a_round_drawn_here_is_not_announced_as_drawn_elsewhere(ws):
    add_items(ws.db, [item(n) for n in range(6)])
    draw_sample(ws, "execute_code", 3, seed=1)
    app = CraApp(ws, [], panes=panes_with_seed(2))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        first = screen.round.round_id
        await pilot.press("d", "y")
        await until(pilot, lambda: screen.round.round_id != first, "the new round")
        assert [m for m, _ in notifications(app) if "drawn elsewhere" in m] == []


async def test_the_guidelines_panel_toggles_and_follows_the_stage(ws):
    add_items(ws.db, [item(1), sft(2)])
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        panel = screen.query_one("#guidelines")
        assert not panel.display
        await press(pilot, screen, "g")
        assert panel.display
        assert text_of(screen, "#guidelines-body").startswith("scope\n")
        await press(pilot, screen, "right_square_bracket")
        assert "Guidelines · precision" in panel.border_title
        assert "Reject when" in text_of(screen, "#guidelines-body")
        await press(pilot, screen, "g")
        assert not panel.display


async def test_keys_without_a_round_warn(ws):
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await press(pilot, screen, "a", "n")
        assert notifications(app) == [
            ("No item to decide: draw a sample first (d).", "warning"),
            ("No item to write a note on: draw a sample first (d).", "warning"),
        ]


# -- the layout ---------------------------------------------------------------------------

CODE_COMMIT = "Count words with the shared tokenizer"


def code_round(tmp_path: Path) -> Workspace:
    """A round of the real execute_code items (the SFT example and the CodeFavor pair) of one
    demo commit: long prompts that end in their task."""
    ws = console_workspace(tmp_path / "workspace")
    items = demo_items(tmp_path / "repo", [CODE_COMMIT])
    add_items(ws.db, [i for i in items if i.stage == "execute_code"])
    draw_sample(ws, "execute_code", 2, seed=3)
    return ws


async def test_the_layout_follows_every_resize(tmp_path):
    """Opened at 100×30 the prompt and answers are stacked and the strip is one row of marks;
    grown to 160×50 they sit side by side and regrow to the new height with the strip's four
    rows back; shrunk again while another pane is shown, the pane comes back stacked and
    compact; the guidelines beside a wide item stack it too. The task line is always there."""
    app = CraApp(code_round(tmp_path), [])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pane(pilot)
        strip, prompt, answer = (screen.query_one(s) for s in ("#strip", "#prompt", "#answer"))
        assert f"Task  {CODE_COMMIT}" in text_of(screen, "#task")
        assert screen.layout_name == "stacked, compact"
        assert strip.region.height == 2
        assert prompt.region.x == answer.region.x and prompt.region.bottom <= answer.region.y
        small = prompt.region, answer.region

        await pilot.resize_terminal(160, 50)
        await until(pilot, lambda: screen.layout_name == "side by side", "the wide layout")
        await pilot.pause()
        assert strip.region.height == 5, "names, items, round, reject rate, gate"
        assert prompt.region.y == answer.region.y and prompt.region.right <= answer.region.x
        assert prompt.region.bottom == answer.region.bottom == 49, "down to the footer"
        assert prompt.region.height > 2 * small[0].height
        assert answer.region.height > small[1].height
        assert screen.query_one("#task").region.bottom <= prompt.region.y
        assert f"Task  {CODE_COMMIT}" in text_of(screen, "#task")

        await pilot.press("g")
        await until(pilot, lambda: screen.layout_name == "stacked", "the guidelines to stack it")
        await pilot.press("g")
        await until(pilot, lambda: screen.layout_name == "side by side", "wide again")

        await pilot.press("1")
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        await open_pane(pilot)
        await until(pilot, lambda: screen.layout_name == "stacked, compact", "the small layout")
        await pilot.pause()
        assert strip.region.height == 2
        assert (prompt.region, answer.region) == small


async def test_stacked_the_focused_panel_takes_the_room(tmp_path):
    """Stacked, the answers have the focus and two thirds of the height; `tab` gives both to
    the prompt, which opens at its user message (the system prompt above it). A stage
    switch and back gives the focus to the answers again."""
    ws = code_round(tmp_path)
    add_items(ws.db, [sft(1), sft(2)])
    app = CraApp(ws, [])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_pane(pilot)
        prompt, answer = screen.query_one("#prompt", RowsView), screen.query_one("#answer")
        assert app.focused is answer
        assert answer.region.height > prompt.region.height
        assert prompt.scroll_offset.y > 0, "the system prompt is scrolled past"
        assert prompt.render_line(0).text.strip() == "user"
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is prompt
        assert prompt.region.height > answer.region.height
        await press(pilot, screen, "right_square_bracket")
        await press(pilot, screen, "left_square_bracket")
        assert screen.stage == "execute_code"
        assert app.focused is answer


def test_the_task_line_names_the_task_of_every_stage(tmp_path):
    """Each derived item's task line is its commit's subject, wherever the prompt puts the
    task (first, or after the files); a step plan's adds its part; a prompt without a
    `Task:` section says so."""
    items = demo_items(tmp_path / "repo", ["Add wrap_lines to break a paragraph into lines"])
    assert {i.stage for i in items} >= {"task_analysis", "execute_code", "step_plan", "test_plan"}
    for each in items:
        line = task_line(each.prompt).plain
        assert line.startswith("Task  Add wrap_lines to break a paragraph into lines"), line
        assert ("   Part  " in line) == (each.stage == "step_plan"), line
    step = next(i for i in items if i.stage == "step_plan")
    assert task_line(step.prompt).plain.endswith("Part  Update textkit/wrap.py: wrap_lines")
    logged = [Message(role="user", content="Fix the flaky test in tests/test_io.py")]
    assert task_line(logged).plain == "Task  the prompt names none: read it below"


# -- what the pane draws ------------------------------------------------------------------


def test_edits_are_shown_as_code_lines():
    shown, reformatted = readable(edits(CHOSEN_CODE))
    assert reformatted
    lines = shown.splitlines()
    assert lines[:3] == ["# edit 1: edit src/textkit/config.py", "search:", "    def load(path):"]
    assert "replace:" in lines
    assert "        except KeyError as exc:" in lines
    created = json.dumps([{"path": "new.py", "search": "", "replace": "x = 1\n"}])
    assert readable(created)[0] == "# edit 1: create new.py\nreplace:\n    x = 1"
    gone = json.dumps([{"path": "old.py", "search": "", "replace": "", "delete": True}])
    assert readable(gone)[0] == "# edit 1: delete old.py"


def test_other_json_is_reindented_and_prose_left_alone():
    assert readable('{"a": [1]}') == ('{\n  "a": [\n    1\n  ]\n}', True)
    assert readable('{\n  "a": 1\n}') == ('{\n  "a": 1\n}', False)
    assert readable("<think>plan it</think> then") == ("<think>plan it</think> then", False)
    assert readable("42") == ("42", False)


def test_the_diff_aligns_equal_lines_and_pads_the_rest():
    chosen = "a\nb\nc\nd\n"
    rejected = "a\nB\nd\ne\n"
    assert aligned(chosen, rejected) == [
        DiffRow("a", "a"),
        DiffRow("b", "B"),
        DiffRow("c", None),
        DiffRow("d", "d"),
        DiffRow(None, "e"),
    ]
    rows = aligned(*(readable(edits(code))[0] for code in (CHOSEN_CODE, REJECTED_CODE)))
    changed = [row for row in rows if row.changed]
    assert '            return data["name"]' in [row.chosen for row in changed]
    assert any(row.rejected == "        except Exception:" for row in changed)
    assert all(not row.changed for row in rows[:6]), "the search text is the same on both sides"


def test_an_edited_line_shows_which_characters_changed():
    line = marked_line("x = compute(a, b)", "x = compute(a, c)", "green")
    assert line.style == "green"
    assert [(span.start, span.end, str(span.style)) for span in line.spans] == [(15, 16, "reverse")]
    other = marked_line("return None", "raise KeyError(key)", "green")
    assert other.style == "green" and not other.spans, "unlike lines: no characters marked"


class RowsApp(App[None]):
    CSS = "RowsView { scrollbar-gutter: stable; scrollbar-size-vertical: 2; }"

    def compose(self) -> ComposeResult:
        yield RowsView(id="rows")


async def test_rows_stay_level_when_one_side_wraps():
    app = RowsApp()
    async with app.run_test(size=(45, 4)) as pilot:
        view = app.query_one(RowsView)
        header = (Text("chosen"), Text("rejected"))
        view.show([(Text("x" * 45), Text("y")), (Text("a"), Text("b"))], 7, header)
        await pilot.pause()
        assert view.shown == 7 and view.line_count == 4
        lines = [view.render_line(y).text.rstrip() for y in range(6)]
        assert lines == [
            "chosen               │ rejected",
            "x" * 20 + " │ y",
            "x" * 20 + " │",
            "xxxxx                │",
            "a                    │ b",
            "",
        ]
        view.scroll_to(y=1, animate=False, immediate=True)
        await pilot.pause()
        assert [view.render_line(y).text.rstrip() for y in range(4)] == [
            "chosen               │ rejected",
            "x" * 20 + " │",
            "xxxxx                │",
            "a                    │ b",
        ], "the header stays on top as the rows scroll"
