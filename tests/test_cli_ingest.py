"""The `cra ingest` and `cra manifest` commands, run through click's CliRunner."""

import hashlib
import json
import shutil
from pathlib import Path

import demo_counts
import pytest
from click.testing import CliRunner, Result

from app.cli import cli
from engine.core.workspace import Workspace
from engine.demo.hostile import edit_manifest
from engine.intake.manifest import MANIFEST_FILE


@pytest.fixture
def run(tmp_path: Path):
    workspace = Workspace.open(tmp_path / "workspace").root

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--workspace", str(workspace), *args])

    return invoke


def test_validate_json_of_a_valid_package(run, valid_package: Path):
    result = run("ingest", "validate", "--json", str(valid_package))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"package", "ok", "checks", "flags"} <= report.keys()
    assert report["package"] == str(valid_package)
    assert report["ok"] is True
    assert report["checks"]
    for check in report["checks"]:
        assert {"name", "ok", "detail", "path"} <= check.keys()
        assert check["ok"] is True
    assert isinstance(report["flags"], list)


def test_validate_json_of_a_rejected_package_exits_1(run, valid_package: Path):
    edit_manifest(valid_package, lambda data: data.update(schema_version=99))
    result = run("ingest", "validate", "--json", str(valid_package))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    [manifest] = [c for c in report["checks"] if c["name"] == "manifest"]
    assert manifest["ok"] is False
    assert manifest["path"] == MANIFEST_FILE
    assert "unknown schema_version 99" in manifest["detail"]


def test_validate_a_path_that_does_not_exist_exits_2(run, tmp_path: Path):
    result = run("ingest", "validate", "--json", str(tmp_path / "no-such-package"))
    assert result.exit_code == 2
    assert "no-such-package" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_approve_twice_then_list(run, valid_package: Path, tmp_path: Path):
    digest = hashlib.sha256((valid_package / MANIFEST_FILE).read_bytes()).hexdigest()
    folder = tmp_path / "workspace" / "corpus" / f"textkit-{digest[:12]}"

    assert run("ingest", "list").stdout.strip() == "corpus is empty"
    first = run("ingest", "approve", str(valid_package), "--operator", "ana")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"textkit@{digest[:7]}: approved into {folder}"
    second = run("ingest", "approve", str(valid_package))
    assert second.exit_code == 0, second.output
    assert (
        second.stdout.strip()
        == f"textkit@{digest[:7]}: already approved as {folder}; nothing copied"
    )

    listing = run("ingest", "list")
    assert listing.exit_code == 0
    [line] = listing.stdout.strip().splitlines()
    assert line.split()[:3] == [f"textkit@{digest[:7]}", str(len(demo_counts.KEPT)), "commits"]
    assert "ana" in line.split()

    as_json = run("ingest", "list", "--json")
    assert as_json.exit_code == 0
    [entry] = json.loads(as_json.stdout)
    assert entry["name"] == "textkit"
    assert entry["digest"] == digest
    assert entry["approved_by"] == "ana"
    assert entry["present"] is True
    assert entry["corpus_path"] == str(folder)
    assert {"commit_count", "wheel_count", "approved_at"} <= entry.keys()


def test_approve_of_an_invalid_package_fails_without_a_traceback(run, valid_package: Path):
    edit_manifest(valid_package, lambda data: data.update(schema_version=99))
    result = run("ingest", "approve", str(valid_package))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "not approved" in result.stderr and "manifest" in result.stderr
    assert "Traceback" not in result.output
    assert run("ingest", "list").stdout.strip() == "corpus is empty"


def test_approval_refused_names_the_package_by_folder_and_the_failing_check(
    run, valid_package: Path
):
    """A copy of the package in another folder with a git hook: the refusal names that folder
    and the digest, the manifest's name after them, then the failing check, its file and its
    reason, one line each; nothing is approved."""
    hooked = valid_package.parent / "hooked-repo"
    shutil.copytree(valid_package, hooked, symlinks=True)
    hook = hooked / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\necho owned\n", encoding="utf-8")
    digest = hashlib.sha256((hooked / MANIFEST_FILE).read_bytes()).hexdigest()

    result = run("ingest", "approve", str(hooked))
    assert result.exit_code == 1
    head, *checks = result.stderr.rstrip("\n").splitlines()
    assert head == f"error: hooked-repo@{digest[:7]} (textkit): not approved, 1 failing check:"
    [check] = checks
    assert check.startswith("  git-safety [repo/.git/hooks/post-checkout]: ")
    assert "hook" in check.removeprefix("  git-safety [repo/.git/hooks/post-checkout]: ")
    assert run("ingest", "list").stdout.strip() == "corpus is empty"


def test_reject_with_a_reason(run, valid_package: Path):
    digest = hashlib.sha256((valid_package / MANIFEST_FILE).read_bytes()).hexdigest()
    result = run("ingest", "reject", str(valid_package), "--reason", "license unclear")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"textkit@{digest[:7]}: rejected (license unclear)"
    assert run("ingest", "list").stdout.strip() == "corpus is empty"


def test_reject_needs_a_reason(run, valid_package: Path):
    missing = run("ingest", "reject", str(valid_package))
    assert missing.exit_code == 2
    assert "--reason" in missing.stderr
    blank = run("ingest", "reject", str(valid_package), "--reason", "  ")
    assert blank.exit_code == 1
    assert "a rejection needs a reason" in blank.stderr


def test_manifest_schema_prints_json_schema(run):
    result = run("manifest", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "schema_version" in schema["properties"]
    assert "schema_version" in schema["required"]
    assert schema["type"] == "object"
