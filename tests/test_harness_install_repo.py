"""Packages with `install_repo`: each side's tree is built (sandboxed) and installed, then tested.

The demo package gets a tiny PEP 517 backend shipped as a wheel, then commits made on top of
it, so the parent and the commit of each new task both build with that backend.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
from package_commits import add_task_commit
from test_dry_run import BACKEND, add_build_backend

from engine.core.workspace import Workspace
from engine.demo.hostile import commit_files
from engine.harness.attempts import run_attempt
from engine.harness.campaigns import CampaignSpec, create_campaign
from engine.harness.task_validation import validate_task
from engine.intake.approval import approve_package

SHOUT = 'def shout(text: str) -> str:\n    return text.upper() + "!"\n'
TEST_SHOUT = (
    "from textkit.shout import shout\n\n\ndef test_shout():\n    assert shout('hi') == 'HI!'\n"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]):
    root = tmp_path_factory.mktemp("install-repo")
    package = copy_package(root)
    add_build_backend(package, BACKEND)
    shout = add_task_commit(
        package,
        {"textkit/shout.py": SHOUT, "tests/test_shout.py": TEST_SHOUT},
        "Add shout",
        ["tests/test_shout.py"],
    )
    pyproject = (package / "repo" / "pyproject.toml").read_text(encoding="utf-8")
    broken = add_task_commit(
        package,
        {
            "pyproject.toml": pyproject.replace('"mini_backend"', '"missing_backend"'),
            "tests/test_shout.py": TEST_SHOUT + "\n\ndef test_more():\n    assert True\n",
        },
        "Switch to a backend that is not shipped",
        ["tests/test_shout.py"],
    )
    commit_files(package, {"pyproject.toml": pyproject}, "Build with mini-backend again")
    ws_root = root / "ws"
    ws_root.mkdir()
    (ws_root / "cra.toml").write_text("[harness]\nflaky_runs = 1\n", encoding="utf-8")
    ws = Workspace.open(ws_root)
    digest = approve_package(ws, package).digest
    return ws, digest, shout, broken


def test_the_tree_is_installed_for_each_side(installed) -> None:
    ws, digest, shout, _ = installed
    report = validate_task(ws, digest, shout)
    assert report.status == "usable", report.reason
    assert report.fail_to_pass == ["tests/test_shout.py::test_shout"]
    for side in ("before", "after"):
        site = report.artifacts / f"{side}-install" / "site"
        assert (site / "textkit-0.1.0.dist-info" / "METADATA").is_file()
    assert (report.artifacts / "after-install" / "site" / "textkit" / "shout.py").is_file()
    assert not (report.artifacts / "before-install" / "site" / "textkit" / "shout.py").exists()


def test_a_tree_that_does_not_build_makes_the_task_unusable(installed) -> None:
    ws, digest, _, broken = installed
    report = validate_task(ws, digest, broken)
    assert report.status == "unusable"
    assert report.reason.startswith("at the commit: installing the repository failed: ")
    assert (
        "missing_backend" in (report.artifacts / "after-install" / "install-output.txt").read_text()
    )


def test_a_gold_attempt_resolves_an_installed_package(installed) -> None:
    ws, digest, shout, _ = installed
    spec = CampaignSpec(
        packages=[digest], pipeline="gold", model="gold", temperatures=[0.0], seeds=[1]
    )
    campaign_id = create_campaign(ws, spec, "tester")
    [row] = ws.db["attempts"].rows_where("campaign_id = ? AND sha = ?", [campaign_id, shout])
    record = run_attempt(ws, row, lambda stage: None)
    assert (record.outcome, record.reason) == (
        "resolved",
        "1/1 failing-to-passing, 0/0 passing-to-passing",
    )
    site = ws.root / row["task"].join(["runs/", "/attempts/"]) / str(row["id"])
    assert (site / "install" / "site" / "textkit" / "shout.py").is_file()


def test_an_install_leaves_no_uv_cache_in_runs(installed) -> None:
    """Each side's build scratch (uv's cache, megabytes per build) is removed once the install
    ends, whether it succeeded or not; the installed copy stays for the test runs."""
    ws, digest, shout, broken = installed
    for sha in (shout, broken):
        validate_task(ws, digest, sha)
    assert [p for p in ws.runs_dir.rglob("*") if p.name == "uv-cache"] == []
    assert list(ws.runs_dir.rglob("after-install/site"))
