"""The Ingest pane driven by Pilot: real packages on a folder drive, real validation, real DB."""

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from app.app import CraApp
from app.widgets.confirm import ConfirmScreen
from app.widgets.reason import ReasonScreen
from engine.ingest import list_corpus
from engine.workspace import Workspace
from screens.help import HelpScreen
from screens.ingest import IngestScreen

SIZE = (120, 40)


@pytest.fixture
def console_workspace(tmp_path: Path) -> Workspace:
    """A workspace that watches no system mount roots: only the test's drive folder."""
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    return Workspace.open(root)


@pytest.fixture
def hostile_package(valid_package: Path) -> Path:
    """A copy of the valid package beside it, with a git hook that would run on checkout."""
    dest = valid_package.parent / "textkit-hooked"
    shutil.copytree(valid_package, dest, symlinks=True)
    hook = dest / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho owned\n", encoding="utf-8")
    hook.chmod(0o755)
    return dest


async def until(pilot: Pilot, condition: Callable[[], bool], what: str) -> None:
    """Let the app run until `condition` holds; fail after a generous bound."""
    for _ in range(1200):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"gave up waiting for {what}")


async def settled(pilot: Pilot, *packages: Path) -> IngestScreen:
    """Wait until every package in `packages` is listed and validated; return the pane."""
    screen = pilot.app.screen
    assert isinstance(screen, IngestScreen)

    def done() -> bool:
        return all(
            screen.is_listed(p) and screen.package_status(p) != "validating…" for p in packages
        )

    await until(pilot, done, f"validation of {', '.join(p.name for p in packages)}")
    return screen


async def select(pilot: Pilot, screen: IngestScreen, package: Path) -> None:
    """Move the cursor down the packages table until `package` is selected."""
    table = screen.query_one("#packages", DataTable)
    table.focus()
    await pilot.press("home")
    for _ in range(table.row_count):
        row = screen.selected_package()
        if row is not None and row.key.path == package:
            return
        await pilot.press("down")
    raise AssertionError(f"{package} is not in the packages table")


def rendered(widget: Static) -> str:
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


def report_text(screen: IngestScreen) -> str:
    return rendered(screen.query_one("#report-body", Static))


def notifications(app: CraApp) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


def decisions(ws: Workspace) -> list[dict]:
    return list(ws.db["ingest_decisions"].rows)


async def test_selecting_a_package_shows_its_full_report(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        text = report_text(screen)
        assert "All checks passed." in text
        for check in ("manifest", "file-policy", "git-fsck", "git-safety", "dry-run"):
            assert check in text
        assert "5 commits" in text and "6 wheels" in text

        await pilot.press("enter")
        assert screen.focused is screen.query_one("#report")


async def test_approve_asks_then_copies_into_the_corpus(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        corpus = screen.query_one("#corpus", DataTable)
        await until(pilot, lambda: corpus.row_count == 1, "the corpus table to show the package")
        assert screen.package_status(valid_package) == "approved"
        [entry] = list_corpus(console_workspace)
        assert entry.name == "textkit" and entry.present
        assert any("approved into" in m for m, _ in notifications(app))


@pytest.mark.parametrize("answer", ["n", "escape"])
async def test_approve_declined_approves_nothing(console_workspace, valid_package, answer):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(answer)
        assert app.screen is screen
        await pilot.pause()
        assert screen.package_status(valid_package) == "OK"
    assert list_corpus(console_workspace) == []
    assert decisions(console_workspace) == []


async def test_reject_records_the_reason(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("x")
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press("enter")  # a blank reason is refused, the modal stays
        assert isinstance(app.screen, ReasonScreen)
        assert ("A rejection needs a reason.", "warning") in notifications(app)
        app.screen.query_one(Input).value = "license not cleared"
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(
            pilot,
            lambda: screen.package_status(valid_package) == "rejected by operator",
            "the rejection to be recorded",
        )
    [decision] = decisions(console_workspace)
    assert decision["decision"] == "rejected"
    assert decision["reason"] == "license not cleared"
    assert list_corpus(console_workspace) == []


async def test_reject_cancelled_at_the_reason_records_nothing(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("x", "escape")
        assert app.screen is screen
    assert decisions(console_workspace) == []


async def test_approving_a_rejected_package_is_refused(
    console_workspace, valid_package, hostile_package
):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package, hostile_package)
        await select(pilot, screen, hostile_package)
        assert screen.package_status(hostile_package).startswith("REJECTED")
        assert "repo/.git/hooks/post-checkout" in report_text(screen)
        await pilot.press("a")
        assert app.screen is screen
        [(message, severity)] = notifications(app)
        assert severity == "error"
        assert "REJECTED by validation" in message
    assert list_corpus(console_workspace) == []
    assert decisions(console_workspace) == []


async def test_a_package_appearing_on_the_drive_is_listed_and_validated(
    console_workspace, valid_package
):
    drive = valid_package.parent
    app = CraApp(console_workspace, [drive])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        late = drive / "late" / "textkit"
        shutil.copytree(valid_package, late, symlinks=True)
        await settled(pilot, late)
        assert screen.package_status(late) == "OK"
        shutil.rmtree(late)
        await until(pilot, lambda: not screen.is_listed(late), "the removed package to go")


async def test_help_lists_pane_and_app_bindings(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(rendered(s) for s in app.screen.query(".help-section").results(Static))
        for description in ("Approve", "Reject", "Revalidate", "Help", "Quit", "Ingest"):
            assert description in text
        await pilot.press("escape")
        assert isinstance(app.screen, IngestScreen)


async def test_pane_key_and_palette(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        assert app.current_mode == "ingest"
        assert isinstance(app.screen, IngestScreen)
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        await pilot.press("ctrl+p", *"Ingest: Approve")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the approve modal")
        await pilot.press("escape")
    assert list_corpus(console_workspace) == []


def add_hook(package: Path) -> None:
    """Make `package` hostile in place without touching its manifest (so its cache key holds)."""
    hook = package / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho owned\n", encoding="utf-8")


async def test_revalidate_replaces_the_cached_report(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        assert screen.package_status(valid_package) == "OK"
        add_hook(valid_package)
        await pilot.pause(0.3)
        assert screen.package_status(valid_package) == "OK"  # cached: same manifest mtime
        await pilot.press("v")
        await settled(pilot, valid_package)
        assert screen.package_status(valid_package).startswith("REJECTED")


async def test_engine_refusal_becomes_an_error_notification(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = await settled(pilot, valid_package)
        await select(pilot, screen, valid_package)
        add_hook(valid_package)  # approval re-validates and must now refuse
        await pilot.press("a", "y")
        await until(pilot, lambda: bool(notifications(app)), "the refusal")
        [(message, severity)] = notifications(app)
        assert severity == "error"
        assert "git-safety" in message and "post-checkout" in message
        assert screen.package_status(valid_package).startswith("REJECTED")  # the fresh report
    assert list_corpus(console_workspace) == []


async def test_q_quits(console_workspace, valid_package):
    app = CraApp(console_workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
