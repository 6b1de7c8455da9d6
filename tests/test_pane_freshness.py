"""Panes stay fresh without reopening the workspace: a commit by another process shows at the
next tick, and a tick over an unchanged database opens nothing (screens/pane.py `EnginePane`)."""

import asyncio
import sys
from pathlib import Path

import pytest
from pilot_wait import until
from textual.pilot import Pilot
from textual.widgets import DataTable

from app.app import PANES, CraApp
from engine.core.db import ChangeProbe
from engine.core.workspace import DB_FILE, Workspace
from screens.ingest import IngestScreen
from screens.pane import EnginePane

SIZE = (120, 40)

_connects: list[str] | None = None
"""While a test records, the database of each `sqlite3.connect` the process makes."""


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "sqlite3.connect" and _connects is not None:
        _connects.append(str(args[0]))


sys.addaudithook(_audit)  # an audit hook cannot be removed: it records only inside `connects`


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A workspace that watches no system mount roots."""
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n", encoding="utf-8")
    return Workspace.open(root)


async def _polled(pilot: Pilot, screen: EnginePane) -> None:
    await until(pilot, lambda: not screen.polling, f"the {screen.PANE_TITLE} pane's poll")


async def _quiet(pilot: Pilot, screen: EnginePane) -> None:
    """Wait until the pane's poll and its other reads (the Adapters pane's serving status, read
    when it comes into view) are done."""
    await until(
        pilot,
        lambda: (
            not screen.polling
            and all(w.is_finished for w in pilot.app.workers if w.group == "serving")
        ),
        f"the {screen.PANE_TITLE} pane's reads",
    )


@pytest.mark.slow
async def test_an_approval_from_the_cli_shows_in_the_open_ingest_pane(workspace, valid_package):
    """`cra ingest approve` in another process, while the console shows the Ingest pane: the
    corpus table gains the package and its row reads approved, with no key pressed."""
    app = CraApp(workspace, [valid_package.parent])
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, IngestScreen)
        await until(
            pilot,
            lambda: (
                screen.is_listed(valid_package) and screen.package_status(valid_package) == "OK"
            ),
            "the package to be listed and validated",
        )
        corpus = screen.query_one("#corpus", DataTable)
        assert corpus.row_count == 0
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "--workspace",
            str(workspace.root),
            "ingest",
            "approve",
            str(valid_package),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await cli.communicate()
        assert cli.returncode == 0, output.decode()
        await until(pilot, lambda: corpus.row_count == 1, "the CLI's approval in the corpus")
        assert screen.package_status(valid_package) == "approved"


async def test_a_tick_over_an_unchanged_database_opens_nothing(workspace, tmp_path):
    """On every polling pane, once its first reads are done, its ticks open no connection to
    the database: not while it is unchanged, nor when another connection's commit makes the
    next tick read."""
    global _connects
    drive = tmp_path / "drive"
    drive.mkdir()
    db_path = str(workspace.root / DB_FILE)
    app = CraApp(workspace, [drive])
    async with app.run_test(size=SIZE) as pilot:
        for pane in PANES:
            await pilot.press(pane.key)
            screen = app.screen
            if not isinstance(screen, EnginePane) or screen.POLL_S is None:
                continue
            await _quiet(pilot, screen)
            _connects = []
            try:
                for _ in range(3):
                    screen.tick()
                    await _polled(pilot, screen)
                with workspace.db.conn:
                    workspace.db.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
                    workspace.db.execute("INSERT INTO scratch VALUES (1)")
                screen.tick()
                await _polled(pilot, screen)
                opened = [path for path in _connects if path.endswith(db_path)]
            finally:
                _connects = None
            assert opened == [], f"{pane.title}: ticks opened {opened}"


def test_the_probe_sees_only_other_connections_commits(workspace):
    """`ChangeProbe` says changed on its first look, then only after another connection
    commits: a commit through its own kind of kept connection is what the poll relies on."""
    probe = ChangeProbe(workspace.root / DB_FILE)
    try:
        assert probe.changed()
        assert not probe.changed()
        with workspace.db.conn:
            workspace.db.execute("CREATE TABLE scratch (x)")
        assert probe.changed()
        assert not probe.changed()
    finally:
        probe.close()
