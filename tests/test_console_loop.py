"""The whole loop in the console, by its keys, on the demo workspace: approve the demo package,
run a gold campaign, spot-check the examples it made, build the eval sets, curate, train a tiny
adapter on the CPU, evaluate it, promote it, roll it back, and read the night in the report.
Every part is real; the only stand-in is the tiny model itself."""

from functools import partial
from pathlib import Path

import demo_counts
import pytest
from pilot_wait import until
from test_ingest_pane import select, settled
from textual.pilot import Pilot
from textual.widgets import Input, Static

from app.app import CraApp
from engine.adapters.activation import history, resolve
from engine.core.config import TrainingDataConfig
from engine.core.stages import LORA_STAGES
from engine.demo.workspace import prepare_demo
from screens.harness_form import NewCampaignScreen
from screens.review import ReviewScreen
from screens.training_form import StartRunScreen
from screens.widgets.confirm import ConfirmScreen

pytestmark = pytest.mark.slow  # the whole demo loop through the console, minutes of work


SIZE = (140, 45)
wait = partial(until, limit_s=300)
"""`until` with room for the loop's campaign, training and evals on a loaded machine."""
ROUND = TrainingDataConfig().review_sample_size


async def confirm(pilot: Pilot) -> None:
    await wait(
        pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), "the question", limit_s=30
    )
    await pilot.press("y")


async def test_the_demo_loop_walks_through_the_console(tmp_path: Path) -> None:
    ws, drive = prepare_demo(tmp_path / "demo")
    app = CraApp(ws, [drive])
    async with app.run_test(size=SIZE) as pilot:
        ingest = await settled(pilot, drive / "textkit")
        await select(pilot, ingest, drive / "textkit")
        await pilot.press("a")
        await confirm(pilot)
        await wait(pilot, lambda: ws.db["packages"].count == 1, "the approval")

        await pilot.press("2")
        await pilot.press("n")
        await wait(pilot, lambda: isinstance(app.screen, NewCampaignScreen), "the form", limit_s=30)
        app.screen.query_one("#form-temperatures", Input).value = "0"
        await pilot.press("ctrl+s")
        await wait(pilot, lambda: ws.db["campaigns"].count == 1, "the campaign")
        await pilot.press("s")
        await wait(
            pilot, lambda: ws.db["campaigns"].get(1)["status"] == "done", "the campaign to finish"
        )
        scope = demo_counts.SFT_EXAMPLES["scope"]
        assert ws.db["examples"].count_where("stage = 'scope'") == scope

        await pilot.press("3")
        review = app.screen
        assert isinstance(review, ReviewScreen)
        await wait(pilot, lambda: review.stage is not None, "the review pane")
        while review.stage != "scope":
            await pilot.press("right_square_bracket")
        await wait(pilot, lambda: review.settled, "scope's status")
        await pilot.press("d")
        await confirm(pilot)
        await wait(pilot, lambda: review.round is not None and review.settled, "the drawn round")
        for _ in range(len(review.items)):
            await pilot.press("a")
            await wait(pilot, lambda: review.settled, "the decision to be written")
        await wait(
            pilot,
            lambda: ws.db["review_items"].count_where("decision = 'accept'") == ROUND,
            "every item accepted",
        )

        await pilot.press("4")
        await pilot.press("e")
        await confirm(pilot)
        await wait(
            pilot, lambda: ws.db["eval_sets"].count_where("stage = 'scope'"), "scope's eval set"
        )
        await pilot.press("c")
        await confirm(pilot)
        await wait(pilot, lambda: ws.db["datasets"].count == 1, "the dataset")

        await pilot.press("5")
        await pilot.press("t")
        await wait(pilot, lambda: isinstance(app.screen, StartRunScreen), "the form", limit_s=30)
        form = app.screen
        assert isinstance(form, StartRunScreen)
        await wait(pilot, lambda: form.dataset is not None, "the dataset picked", limit_s=30)
        assert form.dataset is not None and form.dataset.id == "scope-d1"
        assert form.query_one("#set-max_steps", Input).value == "200"  # the demo's cra.toml
        await pilot.press("ctrl+s")
        await wait(pilot, lambda: ws.db["adapter_versions"].count == 1, "the run's candidate")

        await pilot.press("6")
        stages = len(LORA_STAGES)
        await wait(pilot, lambda: app.screen.query_one("#stages").row_count == stages, "the stages")
        await pilot.press("down", "tab")
        await wait(pilot, lambda: app.screen.selected_version == "scope-v1", "scope-v1 selected")
        await pilot.press("e")
        await wait(pilot, lambda: ws.db["gate_decisions"].count == 1, "the gate")
        assert ws.db["gate_decisions"].get(1)["decision"] == "pass"
        await pilot.press("p")
        await confirm(pilot)
        await wait(pilot, lambda: resolve(ws, "scope") == "scope-v1", "the promotion")
        await pilot.press("r")
        await confirm(pilot)
        await wait(pilot, lambda: resolve(ws, "scope") == "reasoning", "the rollback")
        assert [h.action for h in history(ws, "scope")] == ["promote", "rollback"]

        await pilot.press("7")
        report = app.screen.query_one("#report", Static)
        await wait(
            pilot,
            lambda: "Adapters · 1 promoted, 1 rolled back" in str(report.render()),
            "the report",
            limit_s=30,
        )
        shown = str(report.render())
        assert "Packages · 1 approved, 0 rejected" in shown
        resolved = len(demo_counts.USABLE)
        assert "campaign 1 (gold, " in shown
        assert f"done: {resolved}/{resolved} resolved (100%)" in shown
        assert "gate: scope-v1 pass against base" in shown
