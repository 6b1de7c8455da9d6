"""The requirements check: named requirements only, the runner listed, offline resolution."""

import re
import subprocess
from pathlib import Path

import pytest

from engine.core.config import ValidationConfig
from engine.demo.hostile import commit_files, edit_manifest
from engine.demo.hostile.wheels import CASES
from engine.demo.repo import git_env
from engine.intake.checks.context import PackageContext
from engine.intake.checks.manifest_check import check_manifest
from engine.intake.checks.requirements import check_requirements
from engine.intake.checks.wheels import check_wheels

REQUIREMENT_CASES = [c for c in CASES if c.check == "requirements"]


def checked(package: Path, scratch: Path) -> PackageContext:
    ctx = PackageContext(root=package, config=ValidationConfig(), scratch=scratch)
    assert check_manifest(ctx)[0].ok
    return ctx


def install_repo_with_build_requires(package: Path, requires: list[str] | None) -> None:
    """Set install_repo and commit a pyproject.toml whose [build-system] requires `requires`."""
    pyproject = (package / "repo" / "pyproject.toml").read_text(encoding="utf-8")
    if requires is not None:
        listed = ", ".join(f'"{r}"' for r in requires)
        pyproject += f'\n[build-system]\nrequires = [{listed}]\nbuild-backend = "x"\n'
    commit_files(package, {"pyproject.toml": pyproject}, "Declare the build system")
    edit_manifest(package, lambda data: data.update(install_repo=True))


def test_valid_package_resolves_and_reports_versions(valid_package: Path, tmp_path: Path):
    [result] = check_requirements(checked(valid_package, tmp_path))
    assert result.ok, result.detail
    assert result.detail.startswith("resolved 6 distributions offline: ")
    assert re.search(r"pytest==\d", result.detail)
    assert "stopwords-mini==1.0.0" in result.detail


@pytest.mark.parametrize("case", REQUIREMENT_CASES, ids=lambda c: c.name)
def test_hostile_case_is_refused(case, valid_package: Path, tmp_path: Path):
    case.mutate(valid_package)
    ctx = checked(valid_package, tmp_path)
    assert all(r.ok for r in check_wheels(ctx)), "only the requirements rule may break"
    results = check_requirements(ctx)
    assert results and not any(r.ok for r in results)
    assert any(case.expect in r.detail and r.path == case.path for r in results), results


def test_install_repo_without_build_system_needs_setuptools(valid_package: Path, tmp_path: Path):
    edit_manifest(valid_package, lambda data: data.update(install_repo=True))
    [result] = check_requirements(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "repo/pyproject.toml")
    assert "build requirements do not resolve offline" in result.detail
    assert "setuptools" in result.detail


def test_install_repo_build_requires_resolve(valid_package: Path, tmp_path: Path):
    install_repo_with_build_requires(valid_package, ["stopwords-mini"])
    [result] = check_requirements(checked(valid_package, tmp_path))
    assert result.ok, result.detail
    assert result.detail.endswith("; build backend: stopwords-mini==1.0.0")


def test_install_repo_build_requires_must_be_named(valid_package: Path, tmp_path: Path):
    install_repo_with_build_requires(valid_package, ["backend @ https://example.invalid/b.whl"])
    [result] = check_requirements(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "repo/pyproject.toml")
    assert "direct URL" in result.detail


def test_install_repo_needs_a_pyproject_at_head(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    env = git_env("2024-03-21T10:00:00+00:00")
    for args in (["rm", "--quiet", "pyproject.toml"], ["commit", "--quiet", "-m", "Drop it"]):
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True)
    edit_manifest(valid_package, lambda data: data.update(install_repo=True))
    [result] = check_requirements(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "repo/pyproject.toml")
    assert "no pyproject.toml at HEAD" in result.detail
