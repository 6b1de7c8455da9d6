"""The morning report: windows by duration or time, events filtered by instant (`Z` and offset
timestamps alike), empty sections saying so, and the Report pane (key 7)."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from eval_fixtures import add_dataset, add_eval, add_version, examples
from pilot_wait import until
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Static
from workspaces import open_workspace

from app.app import CraApp
from app.cli import cli
from engine.core.workspace import Workspace
from engine.evaluation.gate import decide
from engine.intake.approval import approve_package, reject_package
from engine.promotion.switch import promote_version
from engine.reports.morning import ReportError, morning_report, parse_since, report_text
from screens.report import ReportScreen

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = open_workspace(tmp_path / "ws")
    for decided_at, decision, folder, digest in (
        ("2026-11-20T20:00:00+00:00", "approved", "old-kit", "0f" * 32),
        ("2026-11-21T20:00:00+00:00", "approved", "textkit", "3f9a1c2e" * 8),
        ("2026-11-21T21:00:00Z", "rejected", "hooked-repo", "3f9a1c2e" * 8),
    ):
        ws.db["ingest_decisions"].insert(
            {
                "digest": digest,
                "name": "textkit",
                "source_path": f"/media/usb/STICK/{folder}",
                "decision": decision,
                "operator": "night",
                "reason": "a git hook" if decision == "rejected" else None,
                "decided_at": decided_at,
            }
        )
    for at, source, kind, detail in (
        ("2026-11-22T02:00:05Z", "autopilot", "requested", "scope: 212 new reviewed sft items"),
        ("2026-11-22T02:00:09Z", "autopilot", "curated", "scope: dataset scope-d4"),
        ("2026-11-22T02:01:30Z", "serve", "held", "servers stopped: serving held by autopilot"),
        ("2026-11-22T02:01:40Z", "autopilot", "training", "scope: run 9 on scope-d4"),
        ("2026-11-22T05:45:00Z", "autopilot", "stopping", "run 9 at step 350: the window closes"),
        ("2026-11-22T05:47:00Z", "serve", "resumed", "no longer paused; starting the servers"),
        ("2026-11-22T06:30:00Z", "serve", "crashed", "base reasoning exited with status -9"),
    ):
        ws.db["night_events"].insert({"at": at, "source": source, "kind": kind, "detail": detail})
    return ws


def test_since_takes_a_duration_or_a_time() -> None:
    assert parse_since("12h", NOW) == datetime(2026, 11, 21, 19, 0, tzinfo=UTC)
    assert parse_since("2d", NOW) == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    assert parse_since("2026-11-21T18:00", NOW) == datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
    with pytest.raises(ReportError, match="--since 'yesterday': give a duration such as 12h"):
        parse_since("yesterday", NOW)


def test_only_what_happened_since_is_reported_and_empty_sections_say_so(ws: Workspace) -> None:
    since = parse_since("12h", NOW)
    text = report_text(morning_report(ws, since), since)
    assert "Since 2026-11-21 19:00 UTC" in text
    assert "Packages · 1 approved, 1 rejected" in text
    assert "2026-11-21 20:00  approved textkit@3f9a1c2 by night" in text
    assert "rejected hooked-repo@3f9a1c2 (textkit) by night: a git hook" in text
    assert "old-kit" not in text
    assert "Training runs · 0 ended, 0 failed\n  nothing" in text
    assert text.index("What the autopilot did · 1 request, 0 promoted, 0 failed") < text.index(
        "Packages ·"
    )
    assert "2026-11-22 05:45  stopping: run 9 at step 350: the window closes" in text
    assert "Serving · 1 crash" in text
    assert "2026-11-22 06:30  crashed: base reasoning exited with status -9" in text
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "report", "--since", "soon"])
    assert result.exit_code == 1 and "give a duration" in result.output


async def test_the_report_pane_changes_its_window(ws: Workspace) -> None:
    async with CraApp(ws, []).run_test(size=(120, 40)) as pilot:
        await pilot.press("7")
        shown = pilot.app.screen.query_one("#report", Static)

        async def shows(text: str) -> None:
            await until(
                pilot,
                lambda: text in str(shown.render()),
                repr(text),
                10,
                lambda: str(shown.render()),
            )

        await shows("Packages ·")
        box = pilot.app.screen.query_one("#report-box")
        assert box.border_title == "Morning report · the last 24 hours"
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert box.border_title == "Morning report · the last 7 days"
        await shows("Adapters · 0 promoted, 0 rolled back")
        await pilot.press("left_square_bracket")
        assert box.border_title == "Morning report · the last 3 days"
        await pilot.press("r")
        await shows("Campaigns · 0")


class ReportApp(App[None]):
    """Only the Report pane, its clock fixed so the snapshot is stable."""

    CSS_PATH = "../app/app.tcss"

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws

    def on_mount(self) -> None:
        self.push_screen(ReportScreen(self.ws, now=NOW))


def test_report_pane(snap_compare, ws: Workspace) -> None:
    async def run_before(pilot: Pilot) -> None:
        for _ in range(200):
            if "Packages ·" in str(pilot.app.screen.query_one("#report", Static).render()):
                break
            await pilot.pause(0.05)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(ReportApp(ws), terminal_size=(120, 30), run_before=run_before)


def test_a_promotion_over_the_gate_is_reported_with_its_reason(ws: Workspace) -> None:
    """A promotion made over a 'no gain' gate decision reads as such in the report, with the
    override's reason; the evaluation heading counts the decision as not passed."""
    add_dataset(ws, "scope-d1", "scope")
    v1 = add_version(ws, "scope", 1)
    scores = examples(200, accuracy=0.8, relevant_recall=0.9, valid_rate=1.0)
    add_eval(ws, "scope", None, scores)
    add_eval(ws, "scope", v1, scores)
    assert decide(ws, "scope-v1")["decision"] == "no gain"
    promote_version(ws, "scope-v1", operator="ana", reason="the demo cannot gain", override=True)
    since = parse_since("12h", datetime.now(UTC))
    text = report_text(morning_report(ws, since), since)
    assert (
        "Evaluation · 2 eval runs; gate: 0 passed, 0 rejected, 1 not passed "
        "(no gain or underpowered)"
    ) in text
    assert "gate: scope-v1 no gain against base: no gain: no primary metric improves" in text
    assert (
        "scope promoted scope-v1 over its 'no gain' gate decision (base → scope-v1 by ana): "
        "the demo cannot gain"
    ) in text


def test_packages_sharing_a_manifest_name_read_apart(tmp_path: Path, valid_package: Path) -> None:
    """Two folders whose manifests both say `textkit`, one approved and one (a copy with a git
    hook) rejected, through the engine: the report names each by its folder and digest, so
    the night does not read "approved textkit … rejected textkit"."""
    ws = open_workspace(tmp_path / "night")
    hooked = valid_package.parent / "hooked-repo"
    shutil.copytree(valid_package, hooked, symlinks=True)
    hook = hooked / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho owned\n", encoding="utf-8")
    short = approve_package(ws, valid_package, operator="ana").digest[:7]
    reject_package(ws, hooked, reason="a git hook", operator="ana")
    since = parse_since("1h", datetime.now(UTC))
    lines = report_text(morning_report(ws, since), since).splitlines()
    [approved] = [line for line in lines if " approved " in line]
    [rejected] = [line for line in lines if " rejected " in line and "Packages" not in line]
    assert approved.endswith(f"  approved textkit@{short} by ana")
    assert rejected.endswith(f"  rejected hooked-repo@{short} (textkit) by ana: a git hook")
