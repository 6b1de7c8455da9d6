"""The file-policy check on real packages: each hostile case refused, the rest allowed."""

import subprocess
from pathlib import Path

import pytest

from engine.core.config import ValidationConfig
from engine.demo.hostile import HostileCase
from engine.demo.hostile.git_files import CASES, ELF_HEADER
from engine.demo.repo import git_env
from engine.intake.checks.context import PackageContext
from engine.intake.checks.files import MAX_LISTED, check_file_policy
from engine.intake.validation_report import CheckResult

FILE_CASES = [case for case in CASES if case.check == "file-policy"]


def _check(package: Path, tmp_path: Path) -> list[CheckResult]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    ctx = PackageContext(root=package, config=ValidationConfig(), scratch=scratch)
    return check_file_policy(ctx)


def _failures(results: list[CheckResult]) -> list[tuple[str | None, str]]:
    assert all(r.name == "file-policy" for r in results)
    return [(r.path, r.detail) for r in results if not r.ok]


def test_valid_package_passes(valid_package: Path, tmp_path: Path):
    results = _check(valid_package, tmp_path)
    assert [r.ok for r in results] == [True], results
    assert " files, " in results[0].detail


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda case: case.name)
def test_hostile_case_is_refused(case: HostileCase, valid_package: Path, tmp_path: Path):
    case.mutate(valid_package)
    failures = _failures(_check(valid_package, tmp_path))
    assert any(path == case.path and case.expect in detail for path, detail in failures), failures


def test_packed_git_objects_are_not_archives(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    subprocess.run(["git", "-C", str(repo), "gc", "--quiet"], env=git_env("2024-04-01"), check=True)
    assert list((repo / ".git" / "objects" / "pack").glob("*.pack"))
    assert _failures(_check(valid_package, tmp_path)) == []


def test_links_that_stay_inside_are_allowed(valid_package: Path, tmp_path: Path):
    (valid_package / "repo" / "docs").mkdir(exist_ok=True)
    (valid_package / "repo" / "docs" / "readme").symlink_to("../README.md")
    (valid_package / "repo" / "dangling").symlink_to("no-such-file")
    results = _check(valid_package, tmp_path)
    assert _failures(results) == []
    assert "2 links" in results[0].detail


def test_link_escaping_through_another_link_is_refused(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    (repo / "textkit" / "up").symlink_to("../..")
    (repo / "sneaky").symlink_to("textkit/up/..")
    assert _failures(_check(valid_package, tmp_path)) == [
        ("repo/sneaky", "symlink leaves the package (-> textkit/up/..)")
    ]


def test_scripts_and_text_that_look_odd_are_allowed(valid_package: Path, tmp_path: Path):
    script = valid_package / "repo" / "run-tests.sh"
    script.write_text("#!/bin/sh\nexec python -m pytest\n")
    script.chmod(0o755)
    (valid_package / "repo" / "notes.txt").write_text("MZ is how the notes start\n")
    assert _failures(_check(valid_package, tmp_path)) == []


def test_archive_by_name_and_executable_wheel(valid_package: Path, tmp_path: Path):
    (valid_package / "repo" / "fixtures.tar").write_text("not really a tar\n")
    (valid_package / "packages" / "tool-1.0-py3-none-any.whl").write_bytes(ELF_HEADER)
    failures = _failures(_check(valid_package, tmp_path))
    assert (
        "repo/fixtures.tar",
        "archive (by its name): archives are allowed only as wheels in packages/",
    ) in failures
    assert any(
        path == "packages/tool-1.0-py3-none-any.whl" and "ELF executable" in detail
        for path, detail in failures
    )


def test_packages_hold_only_regular_wheels(valid_package: Path, tmp_path: Path):
    packages = valid_package / "packages"
    wheel = sorted(packages.glob("*.whl"))[0]
    (packages / "alias-1.0-py3-none-any.whl").symlink_to(wheel.name)
    (packages / "extra").mkdir()
    (packages / "README.txt").write_text("wheels\n")
    failures = _failures(_check(valid_package, tmp_path))
    assert set(failures) == {
        (
            "packages/alias-1.0-py3-none-any.whl",
            "packages/ holds only regular wheel files, not links",
        ),
        ("packages/extra", "packages/ holds only wheel files, not folders"),
        ("packages/README.txt", "packages/ holds only wheel (.whl) files"),
    }


def test_top_level_entries_must_have_their_kind(valid_package: Path, tmp_path: Path):
    manifest = valid_package / "manifest.json"
    manifest.rename(valid_package / "repo" / "manifest.json")
    manifest.symlink_to("repo/manifest.json")
    assert _failures(_check(valid_package, tmp_path)) == [
        ("manifest.json", "must be a regular file")
    ]


def test_many_breaches_are_listed_up_to_a_limit(valid_package: Path, tmp_path: Path):
    bulk = valid_package / "repo" / "bulk"
    bulk.mkdir()
    for n in range(MAX_LISTED + 20):
        (bulk / f"part{n:03d}.zip").write_text("x\n")
    results = _check(valid_package, tmp_path)
    assert len(results) == MAX_LISTED + 1
    assert results[-1].detail == "20 more files break the file policy (not listed)"
