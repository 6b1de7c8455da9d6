"""pytest 9 reads an old configuration's `strict = true` as every strictness check; a commit
written before pytest 9 is run without the one no older configuration could have asked for
(engine.harness.runner_compat). The package is the demo's valid one, its manifest's pytest wheel
named as each case needs."""

import json
from datetime import UTC, datetime
from pathlib import Path

from engine.core.hashing import sha256_file
from engine.core.workspace import Workspace
from engine.demo.hostile import edit_manifest
from engine.demo.wheels import build_wheel
from engine.harness.package import CorpusPackage, load_package
from engine.harness.runner_compat import PYTEST_9_RELEASED, runner_options
from engine.harness.task_validation import validate_task
from engine.intake.approval import approve_package
from engine.intake.manifest import MANIFEST_FILE, ManifestCommit, ManifestV1

OFF = ["-o", "strict_parametrization_ids=false"]


def package_with_pytest(valid_package: Path, wheel: str) -> CorpusPackage:
    data = json.loads((valid_package / MANIFEST_FILE).read_text())
    for entry in data["wheels"]:
        if entry["filename"].startswith("pytest-"):
            entry["filename"] = wheel
    return CorpusPackage(digest="0" * 64, root=valid_package, manifest=ManifestV1(**data))


def commit_dated(package: CorpusPackage, when: datetime) -> ManifestCommit:
    return package.manifest.commits[0].model_copy(update={"date": when})


def test_a_commit_before_pytest_9_run_by_pytest_9_keeps_its_duplicate_ids(valid_package: Path):
    package = package_with_pytest(valid_package, "pytest-9.0.3-py3-none-any.whl")
    old = commit_dated(package, datetime(2019, 2, 2, 13, 32, tzinfo=UTC))
    assert runner_options(package, old) == OFF


def test_a_commit_since_pytest_9_is_run_as_configured(valid_package: Path):
    package = package_with_pytest(valid_package, "pytest-9.0.3-py3-none-any.whl")
    assert runner_options(package, commit_dated(package, PYTEST_9_RELEASED)) == []


def test_pytest_8_needs_nothing(valid_package: Path):
    """pytest 8 has no such option: passing it would only warn, or fail a strict config."""
    package = package_with_pytest(valid_package, "pytest-8.4.2-py3-none-any.whl")
    assert runner_options(package, commit_dated(package, datetime(2019, 1, 1, tzinfo=UTC))) == []


RANDOM_ORDER = """\
import pytest


def pytest_runtest_setup(item):
    pytest.fail("this test ran under the package's random-order plugin")
"""


def test_a_random_order_plugin_the_package_installs_is_turned_off(
    workspace: Workspace, valid_package: Path
) -> None:
    """pytest-randomly shuffles the tests on every run, so an order-dependent suite gives each
    validation (and each attempt) other FAIL_TO_PASS and PASS_TO_PASS lists (structlog's does).
    Its plugin, registered under its name, is not loaded: here it would fail every test."""
    files = {
        "randomly_stub.py": RANDOM_ORDER,
        "pytest_randomly-3.16.0.dist-info/entry_points.txt": (
            "[pytest11]\nrandomly = randomly_stub\n"
        ),
    }
    wheel = build_wheel("pytest-randomly", "3.16.0", files, valid_package / "packages")

    def edit(data: dict) -> None:
        data["requirements"].append("pytest-randomly==3.16.0")
        data["wheels"].append({"filename": wheel.name, "sha256": sha256_file(wheel)})

    edit_manifest(valid_package, edit)
    digest = approve_package(workspace, valid_package).digest
    gold = next(
        c for c in load_package(workspace, digest).manifest.commits if c.task_class == "gold"
    )
    report = validate_task(workspace, digest, gold.sha)
    assert report.status == "usable", report.reason
    assert report.fail_to_pass and not report.flaky
