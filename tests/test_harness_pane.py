"""The Harness pane driven by Pilot over a real workspace database filled row by row.

'Now' is frozen (the pane takes a clock), so throughput, ETA and worker times are known. A
running campaign's job points at a real `sleep` process: the pane reconciles campaigns on every
poll, and a job whose process is gone would turn the campaign `interrupted`.
"""

import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from pilot_wait import until
from rich.console import Console
from tables import cut_cells
from test_harness_progress import (
    DIFF,
    NOW,
    PLAN,
    add_attempts,
    add_campaign,
    add_job,
    add_worker,
    attempt,
    bulk_attempts,
    fill_known_campaign,
    write_artifacts,
)
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static, TabbedContent

from app.app import PANES, CraApp, Pane
from engine.core.jobs import job_alive, latest_job
from engine.core.timestamps import Clock
from engine.core.workspace import Workspace
from engine.harness.campaigns import CampaignSpec, campaign_row, create_campaign
from engine.harness.package import find_package
from engine.harness.progress import TEST_OUTPUT
from engine.intake.approval import approve_package
from screens.harness import HarnessScreen
from screens.harness_attempt import AttemptScreen
from screens.harness_form import NewCampaignScreen
from screens.widgets.attempt_list import PAGE_SIZE, AttemptList
from screens.widgets.confirm import ConfirmScreen

SIZE = (120, 40)


@pytest.fixture
def console_workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    return Workspace.open(root)


def console(ws: Workspace, clock: Clock = lambda: NOW) -> CraApp:
    """The console over `ws`, its Harness pane reading the time from `clock` (stopped at NOW)."""
    return CraApp(ws, [], panes=panes_with_clock(clock))


def panes_with_clock(clock: Clock) -> list[Pane]:
    """The console's panes, the Harness pane reading the time from `clock`."""
    return [
        replace(p, build=lambda app: HarnessScreen(app.workspace, clock))
        if p.mode == "harness"
        else p
        for p in PANES
    ]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A real process standing in for a campaign's job."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def live_campaign(ws: Workspace, sleeper: subprocess.Popen) -> tuple[int, list[int]]:
    """The known campaign (see test_harness_progress), its job alive, two workers reporting."""
    first, ids = fill_known_campaign(ws)
    with ws.db.conn:
        ws.db.execute("DELETE FROM jobs WHERE ref_id = ?", [first])
    add_job(ws, first, "2025-06-01T12:10:00Z", pid=sleeper.pid)
    add_worker(ws, first, 1, "execute", ids[6], "", "2025-06-01T12:29:00Z")
    add_worker(ws, first, 2, "idle", None, "", "2025-06-01T12:29:50Z")
    return first, ids


async def open_pane(pilot: Pilot) -> HarnessScreen:
    await pilot.press("2")
    screen = pilot.app.screen
    assert isinstance(screen, HarnessScreen)
    return screen


async def settled(pilot: Pilot, screen: HarnessScreen, campaign_id: int) -> AttemptList:
    """Wait until `campaign_id` is selected and its progress and visible attempts are shown."""
    attempts = screen.query_one(AttemptList)

    def ready() -> bool:
        return (
            screen.selected_campaign == campaign_id
            and attempts.source is not None
            and attempts.source.campaign_id == campaign_id
            and attempts.source.outcome == screen.outcome_filter
            and attempts.all_visible_loaded()
            and "done" in text_of(screen, "#overall-text")
        )

    await until(pilot, ready, f"campaign {campaign_id} to show")
    return attempts


async def on_known_campaign(pilot: Pilot, screen: HarnessScreen, first: int) -> AttemptList:
    """Select the known campaign `first` (`fill_known_campaign`), listed below the newer one
    the pane selects at first, and wait until it is shown."""
    await settled(pilot, screen, first + 1)
    screen.query_one("#campaigns", DataTable).focus()
    await pilot.press("down")
    return await settled(pilot, screen, first)


def text_of(screen: HarnessScreen | AttemptScreen, selector: str) -> str:
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()


def lines_of(attempts: AttemptList) -> list[str]:
    return [attempts.render_line(y).text for y in range(attempts.size.height)]


def notifications(app: CraApp) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


async def test_selecting_a_campaign_shows_its_progress_and_workers(console_workspace, sleeper):
    first, _ = live_campaign(console_workspace, sleeper)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await settled(pilot, screen, first + 1)  # the newest campaign comes first
        assert "3/3 done" in text_of(screen, "#overall-text")
        table = screen.query_one("#campaigns", DataTable)
        table.focus()
        await pilot.press("down")
        await settled(pilot, screen, first)
        overall = text_of(screen, "#overall-text")
        assert "8/14 done · 1 running\n4 resolved · 57.1 % of the usable\n" in overall
        assert "0.5/min over the last 10m 00s · ETA 12m 00s" in overall
        packages = text_of(screen, "#packages-progress")
        assert re.search(r"^ alpha@aaaaaaa +6/10 +3 +60\.0 % +0\.4/min +10m 00s $", packages, re.M)
        assert re.search(r"^ beta@bbbbbbb +2/4 +1 +50\.0 % +0\.1/min +20m 00s $", packages, re.M)
        workers = text_of(screen, "#workers")
        assert "slot 1  execute " in workers and "alpha  1m 30s" in workers
        assert "slot 2  idle" in workers and "10.0s" in workers
        head = text_of(screen, "#progress-head")
        assert "gold · model gold · temperatures 0.3 0.6 · seeds 1 · 2 workers" in head
        assert screen.query_one("#progress").border_title == f"Campaign {first} · running"


async def test_progress_follows_the_database(console_workspace, sleeper):
    first, ids = live_campaign(console_workspace, sleeper)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        attempts = await on_known_campaign(pilot, screen, first)
        assert attempts.row_at(7) is not None and attempts.row_at(7).state == "pending"
        with console_workspace.db.conn:
            console_workspace.db["attempts"].update(
                ids[7],
                {"state": "done", "outcome": "resolved", "finished_at": "2025-06-01T12:29:30Z"},
            )
        await until(
            pilot,
            lambda: "9/14 done" in text_of(screen, "#overall-text"),
            "the next poll to count the finished attempt",
        )
        await until(pilot, lambda: attempts.row_at(7).outcome == "resolved", "the row to change")
        assert "resolved" in lines_of(attempts)[7]


async def test_a_count_that_grows_in_place_is_shown_whole(console_workspace, sleeper):
    """A live update that widens a cell (the Done count going from 8/14 to 14/14) widens its
    column: the operator reads 14/14, not a count cut to the old width."""
    first, ids = live_campaign(console_workspace, sleeper)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await settled(pilot, screen, first + 1)
        await finish_every_attempt(pilot, console_workspace, screen, first)


async def finish_every_attempt(
    pilot: Pilot, ws: Workspace, screen: HarnessScreen, campaign_id: int
) -> None:
    """Mark the campaign's unfinished attempts failed from another connection, as its workers
    would, and wait until the pane's Done cell reads 14/14 whole."""
    table = screen.query_one("#campaigns", DataTable)
    with ws.db.conn:
        ws.db.execute(
            "UPDATE attempts SET state = 'done', outcome = 'failed', "
            "finished_at = '2025-06-01T12:29:30Z' WHERE campaign_id = ? AND state != 'done'",
            [campaign_id],
        )
    await until(
        pilot,
        lambda: table.get_cell(str(campaign_id), "done").plain == "14/14",
        "the poll to count every attempt done",
    )
    await until(pilot, lambda: cut_cells(table) == [], "the column to widen to its new value")


async def test_the_attempt_list_scrolls_and_reads_pages_on_demand(console_workspace):
    campaign_id = add_campaign(console_workspace, status="paused")
    bulk_attempts(console_workspace, campaign_id, 3 * PAGE_SIZE + 20)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        attempts = await settled(pilot, screen, campaign_id)
        height = attempts.size.height
        assert attempts.count == 320
        assert screen.query_one("#attempts-box").border_title == (
            f"Attempts of campaign {campaign_id} · filter all · 320"
        )
        assert lines_of(attempts)[0].split()[:2] == ["1", "alpha"]
        attempts.focus()
        await pilot.press("down", "down")
        assert attempts.cursor == 2
        await pilot.press("end")
        assert attempts.cursor == 319
        await until(pilot, attempts.all_visible_loaded, "the last page")
        assert attempts.scroll_offset.y == 320 - height
        assert lines_of(attempts)[-1].split()[0] == "320"
        assert attempts.row_at(319) is not None
        assert attempts.row_at(150) is None  # a page never in view is never read
        await pilot.press("pageup")
        assert attempts.cursor == 319 - (height - 1)
        await pilot.press("home")
        assert attempts.cursor == 0 and attempts.scroll_offset.y == 0
        await pilot.press("pagedown", "pagedown")
        assert attempts.cursor == 2 * (height - 1)
        assert attempts.scroll_offset.y == attempts.cursor - height + 1
        await until(pilot, attempts.all_visible_loaded, "the page in view")
        top = attempts.scroll_offset.y
        assert lines_of(attempts)[0].split()[0] == str(top + 1)


async def test_the_filter_cycles_through_the_outcomes(console_workspace, sleeper):
    first, ids = live_campaign(console_workspace, sleeper)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        attempts = await on_known_campaign(pilot, screen, first)
        expected = {"resolved": 4, "partial": 1, "failed": 1, "error": 1, "unusable": 1}
        for outcome, count in expected.items():
            await pilot.press("f")
            assert screen.outcome_filter == outcome
            await settled(pilot, screen, first)
            assert attempts.count == count
            shown = [attempts.row_at(i) for i in range(count)]
            assert {row.outcome for row in shown} == {outcome}
            title = screen.query_one("#attempts-box").border_title
            assert title == f"Attempts of campaign {first} · filter {outcome} · {count}"
        assert [row.id for row in shown] == [ids[5]]
        await pilot.press("f")
        assert screen.outcome_filter is None
        await settled(pilot, screen, first)
        assert attempts.count == 14


@pytest.mark.slow
async def test_enter_opens_the_attempt_with_its_plan_and_diff(console_workspace, sleeper):
    first, ids = live_campaign(console_workspace, sleeper)
    folder = "runs/task/attempts/2"
    with console_workspace.db.conn:
        console_workspace.db["attempts"].update(
            ids[1],
            {"plan_json": json.dumps(PLAN), "artifacts": folder, "file_recall": 1},
        )
    write_artifacts(
        console_workspace, folder, {"patch.diff": DIFF, TEST_OUTPUT: "2 passed in 0.1s\n"}
    )
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await settled(pilot, screen, first + 1)
        screen.query_one("#campaigns", DataTable).focus()
        await pilot.press("down", "enter")
        attempts = await settled(pilot, screen, first)
        assert screen.focused is attempts
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, AttemptScreen), "the drill-down")
        detail_screen = app.screen
        assert isinstance(detail_screen, AttemptScreen)
        await until(pilot, lambda: detail_screen.detail is not None, "the attempt to be read")
        assert detail_screen.attempt_id == ids[1]
        head = text_of(detail_screen, "#attempt-head")
        assert "resolved — resolved on purpose" in head
        assert "file recall 1.00" in head and "symbol recall —" in head
        plan = text_of(detail_screen, "#plan-body")
        assert "Teach slugify to keep unicode letters" in plan
        assert "[core] Normalise text" in plan and "[docs] Document it  after core" in plan
        assert "src/textkit/slug.py  slugify, Normaliser.apply" in plan
        tabs = detail_screen.query_one("#attempt-tabs", TabbedContent)
        await pilot.press("d")
        assert tabs.active == "diff"
        assert '+    return unicodedata.normalize("NFKC", text).lower()' in text_of(
            detail_screen, "#diff-body"
        )
        await pilot.press("o")
        assert "2 passed in 0.1s" in text_of(detail_screen, "#output-body")
        await pilot.press("r")
        assert f"{folder}/raw.txt is missing" in text_of(detail_screen, "#raw-body")
        await pilot.press("escape")
        assert app.screen is screen


async def test_engine_refusals_are_notified(console_workspace):
    pending = add_campaign(console_workspace, status="pending")
    add_attempts(console_workspace, [attempt(pending, 1)])
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await settled(pilot, screen, pending)
        await pilot.press("p")
        await until(pilot, lambda: bool(notifications(app)), "the refusal")
        assert notifications(app) == [(f"campaign {pending} is pending, not running", "error")]
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: len(notifications(app)) == 2, "the second refusal")
        assert notifications(app)[1] == (f"campaign {pending} is pending; nothing to stop", "error")
    assert campaign_row(console_workspace, pending).status == "pending"


async def test_actions_without_a_campaign_warn(console_workspace):
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await pilot.pause(0.2)
        assert "No campaign yet: press n to create one." in text_of(screen, "#progress-head")
        await pilot.press("s")
        assert notifications(app) == [("No campaign to start: create one first (n).", "warning")]


async def test_stop_asks_first_then_stops_the_job(console_workspace, sleeper):
    first, _ = live_campaign(console_workspace, sleeper)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await on_known_campaign(pilot, screen, first)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen is screen
        await pilot.pause(0.2)
        assert sleeper.poll() is None
        await pilot.press("x", "y")
        await until(pilot, lambda: sleeper.poll() is not None, "the job to be terminated")
        assert sleeper.returncode == -15
        await until(
            pilot,
            lambda: (f"campaign {first} stopping", "information") in notifications(app),
            "the stop to be reported",
        )
    assert campaign_row(console_workspace, first).status in ("stopping", "interrupted")


@pytest.mark.slow
async def test_new_campaign_form_checks_the_spec_inline(console_workspace, valid_package):
    approve_package(console_workspace, valid_package)
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewCampaignScreen), "the form")
        form = app.screen
        assert isinstance(form, NewCampaignScreen)
        data = form.spec_data()
        assert len(data["packages"]) == 1  # every approved package, chosen by default
        assert (data["pipeline"], data["temperatures"], data["seeds"], data["workers"]) == (
            "gold",
            ["0"],
            ["1"],
            "2",
        )
        pipeline = form.query_one("#form-pipeline", Select)
        pipeline.value = "openai"
        await until(
            pilot, lambda: form.spec_data()["temperatures"] == ["0.3", "0.6", "0.9"], "a sweep"
        )
        pipeline.value = "gold"
        await until(pilot, lambda: form.spec_data()["temperatures"] == ["0"], "one temperature")
        form.query_one("#form-temperatures", Input).value = "0.3, warm"
        form.query_one("#form-workers", Input).value = "0"
        await pilot.press("ctrl+s")
        assert app.screen is form
        error = form.query_one("#form-error", Static)
        assert error.display
        assert "temperatures.1" in str(error.content) and "workers" in str(error.content)
        form.query_one("#form-temperatures", Input).value = "0.3,0.6"
        form.query_one("#form-workers", Input).value = "1"
        await pilot.press("ctrl+s")
        assert app.screen is form
        assert "gold pipeline gives the same answer at every temperature" in str(error.content)
        form.query_one("#form-temperatures", Input).value = "0.3"
        form.query_one("#form-seeds", Input).focus()
        await pilot.press("enter")
        assert app.screen is screen
        await until(pilot, lambda: screen.selected_campaign == 1, "the new campaign")
        attempts = await settled(pilot, screen, 1)
    row = campaign_row(console_workspace, 1)
    assert row.status == "pending" and row.created_by == "operator"
    manifest = find_package(console_workspace, "textkit").manifest
    commits = sum(commit.task_class != "test_data" for commit in manifest.commits)
    assert attempts.count == console_workspace.db["attempts"].count == commits > 0
    assert ("campaign 1 created; start it with s", "information") in notifications(app)


async def test_new_campaign_form_without_packages_says_so(console_workspace):
    app = console(console_workspace)
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewCampaignScreen), "the form")
        form = app.screen
        assert isinstance(form, NewCampaignScreen)
        error = form.query_one("#form-error", Static)
        assert "No approved package" in str(error.content)
        await pilot.press("ctrl+s")
        assert app.screen is form and "packages" in str(error.content)
        await pilot.press("escape")
        assert isinstance(app.screen, HarnessScreen)
    assert console_workspace.db["campaigns"].count == 0


class GatedClock:
    """A clock that holds each poll (the poll asks it once) until the test opens the gate,
    counting the polls that asked and the most that were asking at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.gate.wait(timeout=30)
        with self._lock:
            self.active -= 1
        return NOW


async def test_a_slow_poll_is_never_overlapped(console_workspace):
    """Ticks and requests during a poll start no second one; a request is kept and read
    once, right after the poll under way."""
    add_campaign(console_workspace, status="paused")
    clock = GatedClock()
    app = console(console_workspace, clock)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await until(pilot, lambda: clock.calls == 1, "the first poll to ask the clock")
        for _ in range(3):
            screen.tick()
            screen.request_poll()
        await pilot.pause()
        assert clock.calls == 1 and screen.polling
        clock.gate.set()
        await until(pilot, lambda: clock.calls == 2 and not screen.polling, "the owed poll")
    assert clock.most_active == 1


class RecordingClock(list[datetime]):
    """A clock stopped at NOW that keeps each reading (the pane reads it once a poll)."""

    def __call__(self) -> datetime:
        self.append(NOW)
        return NOW


@pytest.fixture
def polls() -> RecordingClock:
    return RecordingClock()


async def test_a_tick_reads_only_when_the_database_changed(console_workspace, polls):
    """A paused campaign's figures do not move with the clock: a tick reads again only once
    another connection committed, while an explicit request always reads."""
    campaign_id = add_campaign(console_workspace, status="paused")
    app = console(console_workspace, polls)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await until(pilot, lambda: bool(polls) and not screen.polling, "the first polls")
        read = len(polls)
        screen.tick()
        await until(pilot, lambda: not screen.polling, "the tick's poll")
        assert len(polls) == read
        with console_workspace.db.conn:
            console_workspace.db.execute(
                "UPDATE campaigns SET reason = 'held' WHERE id = ?", [campaign_id]
            )
        screen.tick()
        await until(pilot, lambda: len(polls) == read + 1 and not screen.polling, "a read")
        screen.request_poll()
        await until(pilot, lambda: len(polls) == read + 2 and not screen.polling, "a forced read")


async def test_polling_stops_while_the_pane_is_out_of_view(console_workspace, polls):
    """The pane's timer runs only while it is in view, and it polls on coming back."""
    add_campaign(console_workspace, status="paused")
    app = console(console_workspace, polls)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await until(pilot, lambda: len(polls) >= 1 and not screen.polling, "a poll")
        assert screen.in_view
        await pilot.press("1")
        assert not screen.in_view
        hidden = len(polls)
        await pilot.press("2")
        assert screen.in_view
        await until(pilot, lambda: len(polls) > hidden, "a poll on coming back")


SLEEPING_PLANNER = """\
import time
time.sleep(120)
"""


async def test_start_shows_live_workers_then_stop_ends_the_job(tmp_path, valid_package):
    """End to end: a real campaign job and worker, a planner that never answers."""
    planner = tmp_path / "planner.py"
    planner.write_text(SLEEPING_PLANNER, encoding="utf-8")
    root = tmp_path / "ws"
    root.mkdir()
    argv = json.dumps([sys.executable, str(planner)])
    (root / "cra.toml").write_text(
        f"[usb]\nmount_roots = []\n[harness]\nflaky_runs = 1\n[harness.command]\nargv = {argv}\n",
        encoding="utf-8",
    )
    ws = Workspace.open(root)
    approve_package(ws, valid_package)
    digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
    spec = CampaignSpec(
        packages=[digest],
        pipeline="command",
        model="agent",
        temperatures=[0.3],
        seeds=[1],
        workers=1,
    )
    campaign_id = create_campaign(ws, spec, "tester")
    app = console(ws)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        await settled(pilot, screen, campaign_id)
        await pilot.press("s")
        # Checked at once: a notification expires after a few seconds, and on a loaded machine
        # the worker can take longer than that to reach the planner.
        await until(
            pilot,
            lambda: (f"campaign {campaign_id} started", "information") in notifications(app),
            "the start notification",
        )
        await until(
            pilot,
            lambda: re.search(r"slot 1  plan ", text_of(screen, "#workers")) is not None,
            "the worker line to reach the planner",
        )
        assert screen.query_one("#progress").border_title == f"Campaign {campaign_id} · running"
        job = latest_job(ws, "campaign", campaign_id)
        assert job is not None and job_alive(job)
        await pilot.press("x", "y")
        await until(
            pilot,
            lambda: (
                screen.query_one("#progress").border_title == f"Campaign {campaign_id} · stopped"
            ),
            "the campaign to stop",
        )
        # The job records its end a moment before its process exits.
        await until(pilot, lambda: not job_alive(job), "the job's process to exit")
    states = {
        row["state"] for row in ws.db["attempts"].rows_where("campaign_id = ?", [campaign_id])
    }
    assert "running" not in states


def test_panes_given_to_the_console_keep_its_keys_and_modes(console_workspace):
    """Panes passed to the console (a test's own clock) must be the console's panes with other
    factories: the keys, the footer and the palette come from the console's own list."""
    with pytest.raises(ValueError, match="keep the console's keys, modes and modules"):
        CraApp(console_workspace, [], panes=panes_with_clock(lambda: NOW)[:-1])


async def test_a_live_campaign_read_again_unchanged_draws_nothing(
    console_workspace, sleeper, polls, monkeypatch
):
    """A running campaign is read every tick (its figures move with the clock), but a read that
    finds what is shown draws nothing: no text is set, the attempt list is not repainted and
    the campaigns table keeps its cells. The keys pressed meanwhile do not wait on redraws."""
    first, _ids = live_campaign(console_workspace, sleeper)
    app = console(console_workspace, polls)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_pane(pilot)
        attempts = await on_known_campaign(pilot, screen, first)
        await until(pilot, lambda: not screen.polling, "the pane's reads")
        updates: list[str | None] = []
        repaints: list[int] = []
        update, refresh = Static.update, AttemptList.refresh

        def counted_update(widget: Static, *args: object, **kwargs: object) -> None:
            updates.append(widget.id)
            update(widget, *args, **kwargs)

        def counted_refresh(widget: AttemptList, *args: object, **kwargs: object) -> object:
            repaints.append(1)
            return refresh(widget, *args, **kwargs)

        monkeypatch.setattr(Static, "update", counted_update)
        monkeypatch.setattr(AttemptList, "refresh", counted_refresh)
        read = len(polls)
        for _ in range(3):
            screen.tick()
            await until(pilot, lambda: not screen.polling, "the tick's poll")
            await pilot.pause()
        assert len(polls) >= read + 3
        assert (updates, repaints) == ([], [])
        assert attempts.count > 0
