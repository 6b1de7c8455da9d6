"""Workspaces the tests build: one that watches no drives, with the settings a test adds, and
one with a package approved and every commit of it validated."""

import json
from pathlib import Path

from engine.core.workspace import Workspace
from engine.harness.task_validation import validate_task
from engine.intake.approval import approve_package

NO_DRIVES = "[usb]\nmount_roots = []\n"
"""Watch no mount roots, so a test sees only the drives it names."""

HARNESS = "[harness]\nflaky_runs = 1\ntest_timeout_s = 60\n"
"""Run each commit's tests once (the demo's are not flaky), with room for a loaded machine."""


def open_workspace(root: Path, config: str = "") -> Workspace:
    """A new workspace at `root` that watches no drives, `config` added to its cra.toml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cra.toml").write_text(NO_DRIVES + config, encoding="utf-8")
    return Workspace.open(root)


def approve_and_validate(ws: Workspace, package: Path) -> str:
    """Approve `package` into the corpus and gold-validate every commit of its manifest; its
    digest."""
    digest = approve_package(ws, package).digest
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    for commit in manifest["commits"]:
        validate_task(ws, digest, commit["sha"])
    return digest
