"""Shared fixtures: real wheels (built once), a valid repo package, a fresh workspace."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from workspaces import open_workspace

from app.app import CraApp
from engine.core.workspace import Workspace
from engine.demo.package import build_package, build_wheels
from engine.demo.repo import DEMO_HISTORY

SHORT_HISTORY = 8
"""The demo's first commits, up to its README update: the textkit of slugify, word_counts and
truncate."""


@pytest.fixture(autouse=True)
def _panes_built_on_visit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A console in a test builds each pane on its first visit, not ahead
    (`CraApp.BUILD_AHEAD_AFTER_S`): most tests open one for a second or two, and a build cut off
    by the test's end would fail it. `tests/test_pane_switch.py` turns building ahead back on."""
    monkeypatch.setattr(CraApp, "BUILD_AHEAD_AFTER_S", None)


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's real wheels, built once per test session."""
    out = tmp_path_factory.mktemp("wheels")
    build_wheels(out)
    return out


@pytest.fixture(scope="session")
def _package_template(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> Path:
    return build_package(tmp_path_factory.mktemp("template") / "textkit", wheel_cache)


@pytest.fixture(scope="session")
def copy_package(_package_template: Path) -> Callable[[Path], Path]:
    """Fresh copies of a valid repo package: `copy_package(base)` makes one at
    base/drive/textkit, for fixtures wider than one test to build on."""

    def copy(base: Path) -> Path:
        dest = base / "drive" / "textkit"
        shutil.copytree(_package_template, dest, symlinks=True)
        return dest

    return copy


@pytest.fixture
def valid_package(tmp_path: Path, copy_package: Callable[[Path], Path]) -> Path:
    """A fresh copy of a valid repo package (repo/, packages/, manifest.json) to mutate."""
    return copy_package(tmp_path)


@pytest.fixture(scope="session")
def _short_package_template(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> Path:
    history = DEMO_HISTORY[:SHORT_HISTORY]
    return build_package(tmp_path_factory.mktemp("short") / "textkit", wheel_cache, history=history)


@pytest.fixture
def short_package(tmp_path: Path, _short_package_template: Path) -> Path:
    """A valid repo package of the demo's first commits (four usable tasks, one unusable), for
    tests of the harness's machinery that run every task and need a package, not the demo's
    data: a campaign over the whole demo takes minutes."""
    dest = tmp_path / "drive" / "textkit"
    shutil.copytree(_short_package_template, dest, symlinks=True)
    return dest


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """An empty workspace with default config."""
    return Workspace.open(tmp_path / "workspace")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace that watches no drives (no mount roots), so a pane shows none."""
    return open_workspace(tmp_path / "workspace")
