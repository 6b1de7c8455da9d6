"""Validation reports kept by package content (engine/intake/validation_cache.py): an unchanged
package is validated once, across processes, and any change to it, or to the rules, validates it
again. Validation is counted by wrapping the real `validate_package`, which still runs."""

import os
from pathlib import Path

import pytest

import engine.intake.validate
from engine.core.workspace import Workspace
from engine.intake.approval import approve_package
from engine.intake.manifest import MANIFEST_FILE
from engine.intake.validate import validate_package
from engine.intake.validation_cache import cached_report, validate_cached


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders `validate_package` ran on, in order."""
    seen: list[Path] = []

    def counted(path: Path, config: object) -> object:
        seen.append(path)
        return validate_package(path, config)

    monkeypatch.setattr(engine.intake.validate, "validate_package", counted)
    return seen


def test_an_unchanged_package_is_validated_once(
    workspace: Workspace, valid_package: Path, validations: list[Path]
) -> None:
    """The report is kept in the database: a second validation, a console started later (the
    workspace opened again) and approval all read it instead of validating again."""
    assert cached_report(workspace, valid_package) is None
    first = validate_cached(workspace, valid_package)
    assert first.ok and len(validations) == 1
    assert validate_cached(workspace, valid_package) == first
    later = Workspace.open(workspace.root)
    assert cached_report(later, valid_package) == first
    approve_package(later, valid_package)
    assert len(validations) == 1
    assert validate_cached(later, valid_package, fresh=True) == first
    assert len(validations) == 2


def test_any_change_to_the_package_validates_it_again(
    workspace: Workspace, valid_package: Path, validations: list[Path]
) -> None:
    """A wheel whose bytes change, its size and mtime kept, is a package not validated yet."""
    validate_cached(workspace, valid_package)
    wheel = sorted((valid_package / "packages").glob("*.whl"))[0]
    info = wheel.stat()
    data = bytearray(wheel.read_bytes())
    data[-1] ^= 0xFF
    wheel.write_bytes(bytes(data))
    os.utime(wheel, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert wheel.stat().st_size == info.st_size
    assert cached_report(workspace, valid_package) is None
    again = validate_cached(workspace, valid_package)
    assert not again.ok and len(validations) == 2
    assert cached_report(workspace, valid_package) == again


def test_the_same_content_elsewhere_reads_the_kept_report_naming_its_folder(
    workspace: Workspace, valid_package: Path, validations: list[Path], tmp_path: Path
) -> None:
    """The key is the content, not the path: a copy is not validated again, and its report
    names the copy."""
    validate_cached(workspace, valid_package)
    copy = tmp_path / "copy"
    valid_package.rename(copy)
    kept = cached_report(workspace, copy)
    assert kept is not None and kept.package == str(copy)
    assert len(validations) == 1


def test_changed_rules_validate_again(
    workspace: Workspace, valid_package: Path, validations: list[Path]
) -> None:
    """A changed `[validation]` setting is a different validation: nothing kept applies."""
    validate_cached(workspace, valid_package)
    (workspace.root / "cra.toml").write_text("[validation]\ndry_run_timeout_s = 301\n")
    stricter = Workspace.open(workspace.root)
    assert cached_report(stricter, valid_package) is None
    validate_cached(stricter, valid_package)
    assert len(validations) == 2


def test_a_package_changed_while_it_was_validated_is_not_kept(
    workspace: Workspace, valid_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report of a package that changed under validation describes neither version: it
    is returned but not kept, so the next look validates again."""

    def validate_then_tamper(path: Path, config: object) -> object:
        report = validate_package(path, config)
        with (valid_package / MANIFEST_FILE).open("a") as fh:
            fh.write("\n")
        return report

    monkeypatch.setattr(engine.intake.validate, "validate_package", validate_then_tamper)
    validate_cached(workspace, valid_package)
    assert cached_report(workspace, valid_package) is None
    assert workspace.db["validation_reports"].count == 0
