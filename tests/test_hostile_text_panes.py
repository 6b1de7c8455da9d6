"""Untrusted text reaches the screen neutralised in every pane that shows it, driven by Pilot.

The hostile string of `test_hostile_text_cli` is written where each pane's data comes from (a
logged prompt and answer, a review note, an attempt's reason, plan, test output and raw
response, a package's manifest and folder, a run's log and reason, a dataset's manifest, an
activation's reason, a rejection's reason). What the screen draws (every strip the compositor
renders) must hold none of its controls raw, and show them as escapes.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from eval_fixtures import add_version
from pilot_wait import until as wait_until
from test_datasets_pane import PaneApp as DatasetsApp
from test_datasets_pane import manifest, record
from test_harness_progress import add_attempts, add_campaign, attempt, write_artifacts
from test_hostile_text_cli import HOSTILE, RAW, hostile_package
from test_ingest_pane import settled as ingest_settled
from test_review_engine import item, sft
from test_training_pane import PaneApp as TrainingApp
from test_training_pane import add_dataset, add_run
from textual.app import App
from textual.pilot import Pilot

from app.app import CraApp
from engine.adapters.activation import reject
from engine.core.workspace import Workspace
from engine.harness.progress import TEST_OUTPUT
from engine.training.contract import LOG_FILE
from engine.training_data.items import Message
from engine.training_data.review import draw_sample, set_note
from engine.training_data.store import add_items
from screens.harness_attempt import AttemptScreen
from screens.review import ReviewScreen
from screens.widgets.attempt_list import AttemptList
from screens.widgets.confirm import ConfirmScreen

SIZE = (160, 50)


def drawn(app: App) -> str:
    """Every line the screen in view draws, as the terminal would receive its text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def has_raw(app: App) -> bool:
    return any(raw in drawn(app) for raw in RAW)


async def until(pilot: Pilot, condition: Callable[[], bool], what: str) -> None:
    """`pilot_wait.until`, failing with what the app drew."""
    await wait_until(pilot, condition, what, detail=lambda: drawn(pilot.app))


async def shows_neutralised(pilot: Pilot, *visible: str) -> None:
    """Wait until the screen draws every one of `visible`; then no control may be raw."""
    await until(pilot, lambda: all(v in drawn(pilot.app) for v in visible), f"{visible}")
    assert not has_raw(pilot.app), drawn(pilot.app)


async def test_review_pane(ws: Workspace):
    """A logged SFT item: its prompt, answer, repo, task and note; a pair's diff."""
    prompt = [Message(role="user", content=f"Task:\n{HOSTILE}")]
    answer = [Message(role="assistant", content=f"answer {HOSTILE}")]
    add_items(
        ws.db,
        [sft(0, repo=f"repo {HOSTILE}", task_key=f"key {HOSTILE}", prompt=prompt, chosen=answer)],
    )
    round_id = draw_sample(ws, "scope", 1, seed=1)
    set_note(ws, round_id, 1, f"note {HOSTILE}")
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        assert isinstance(app.screen, ReviewScreen)
        await shows_neutralised(pilot, "answer pwn \\x1b[2J", "note pwn \\x1b", "repo pwn \\x1b")


async def test_review_pane_pair(ws: Workspace):
    """A pair whose chosen and rejected answers differ by hostile text, side by side."""
    chosen = [Message(role="assistant", content=f"chosen\n{HOSTILE}")]
    add_items(ws.db, [item(0, chosen=chosen)])
    draw_sample(ws, "execute_code", 1, seed=1)
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await shows_neutralised(pilot, "pwn \\x1b[2J\\x1b]0;pwned\\x07")


@pytest.mark.slow
async def test_harness_attempt_list_and_attempt_view(ws: Workspace):
    """An attempt's reason in the list; in its view the heading, the plan, the diff, the test
    output and the raw response, each written by the code or the model under test."""
    campaign_id = add_campaign(ws, status="paused", reason=HOSTILE)
    folder = "runs/task/attempts/1"
    plan = {
        "summary": f"summary {HOSTILE}",
        "parts": [
            {
                "id": "core",
                "title": f"title {HOSTILE}",
                "steps": [{"description": HOSTILE, "file": "a.py", "symbols": ["slugify"]}],
            }
        ],
    }
    [attempt_id] = add_attempts(
        ws,
        [
            attempt(
                campaign_id,
                1,
                state="done",
                outcome="failed",
                finished_at="2025-06-01T12:20:00Z",
                reason=f"why {HOSTILE}",
                plan_json=json.dumps(plan),
                artifacts=folder,
            )
        ],
    )
    write_artifacts(
        ws,
        folder,
        {
            "patch.diff": f"+{HOSTILE}\n",
            TEST_OUTPUT: f"FAILED tests/test_x.py::test_{HOSTILE}\n",
            "raw.txt": f"raw {HOSTILE}",
            "report.json": json.dumps({"test": HOSTILE}, ensure_ascii=False),
        },
    )
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: app.screen.query_one(AttemptList).count == 1, "the attempt")
        await shows_neutralised(pilot, "why pwn \\x1b[2J")
        app.push_screen(AttemptScreen(ws, attempt_id))
        await until(pilot, lambda: app.screen.detail is not None, "the attempt to be read")
        await shows_neutralised(pilot, "why pwn \\x1b[2J", "summary pwn \\x1b[2J")
        for tab, visible in (
            ("d", "+pwn \\x1b[2J"),
            ("o", "test_pwn \\x1b[2J"),
            ("r", "raw pwn \\x1b[2J"),
            ("j", "pwn \\x1b[2J"),
        ):
            await pilot.press(tab)
            await shows_neutralised(pilot, visible)


@pytest.mark.slow
async def test_ingest_pane(ws: Workspace, valid_package: Path):
    """A package whose folder name, manifest description and first commit subject are
    hostile: the packages table, the heading, the checks; a confirmation quoting it."""
    hostile_package(valid_package)
    drive = valid_package.parent
    package = valid_package.rename(drive / f"kit {HOSTILE}")
    app = CraApp(ws, [drive])
    async with app.run_test(size=SIZE) as pilot:
        screen = await ingest_settled(pilot, package)
        screen.query_one("#packages").focus()
        await pilot.press("down")
        await shows_neutralised(pilot, "kit pwn \\x1b[2J")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await shows_neutralised(pilot, "kit pwn \\x1b[2J")


async def test_training_pane_log_and_reason(ws: Workspace):
    """A failed run's reason and its log, both written by the trainer from its data."""
    add_dataset(ws, "scope-d1", "scope")
    run_dir = add_run(ws, 1, "scope-d1", "scope", "failed", 3, reason=f"why {HOSTILE}")
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as log:
        log.write(f"log {HOSTILE}\n")
    async with TrainingApp(ws).run_test(size=SIZE) as pilot:
        await shows_neutralised(pilot, "why pwn \\x1b[2J", "log pwn \\x1b[2J")


async def test_datasets_pane(ws: Workspace):
    """A dataset whose curator and eval-only repos are hostile."""
    found = manifest(ws, "scope-d1", "scope", "2026-04-28T21:00:00Z", eval_repos=(HOSTILE,))
    record(ws, found.model_copy(update={"created_by": f"by {HOSTILE}"}))
    async with DatasetsApp(ws).run_test(size=SIZE) as pilot:
        await shows_neutralised(pilot, "by pwn \\x1b[2J", "repos: pwn \\x1b[2J")


@pytest.mark.slow
async def test_adapters_pane_history(ws: Workspace):
    """A rejection's reason and operator in the activation history."""
    add_version(ws, "scope", 1)
    reject(ws, "scope-v1", f"why {HOSTILE}", operator=f"op {HOSTILE}")
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        await until(pilot, lambda: app.screen.query_one("#stages").row_count, "the stages")
        app.screen.query_one("#stages").focus()
        await pilot.press("down")
        await shows_neutralised(pilot, "why pwn \\x1b[2J", "op pwn \\x1b")


@pytest.mark.slow
async def test_report_pane_and_notifications(ws: Workspace, valid_package: Path):
    """A rejection's reason in the morning report; a notification quoting hostile text is
    neutralised and never read as markup."""
    from engine.intake.approval import reject_package

    reject_package(ws, valid_package, reason=f"why {HOSTILE}", operator="night")
    app = CraApp(ws, [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await shows_neutralised(pilot, "why pwn \\x1b[2J")
        app.notify(f"note {HOSTILE} [b]not markup[/b]", title=HOSTILE)
        await pilot.pause()
        [toast] = app._notifications
        assert toast.message.startswith("note pwn \\x1b[2J\\x1b]0;pwned\\x07")
        assert toast.title.startswith("pwn \\x1b[2J") and not toast.markup
