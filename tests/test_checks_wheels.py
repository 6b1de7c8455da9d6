"""The wheels check: hashes, names, METADATA, zip bombs and escaping members, unlisted wheels."""

import shutil
import zipfile
from pathlib import Path

import pytest

from engine.core.config import ValidationConfig
from engine.core.hashing import sha256_file
from engine.demo.hostile import edit_manifest
from engine.demo.hostile.wheels import CASES, STOPWORDS_WHEEL
from engine.demo.package import STOPWORDS_MODULE
from engine.demo.wheels import build_wheel
from engine.intake.checks.context import PackageContext
from engine.intake.checks.manifest_check import check_manifest
from engine.intake.checks.wheels import check_wheels

WHEEL_CASES = [c for c in CASES if c.check == "wheels"]
MIB = 1024 * 1024


def checked(package: Path, scratch: Path, **limits: float) -> PackageContext:
    ctx = PackageContext(root=package, config=ValidationConfig(**limits), scratch=scratch)
    assert check_manifest(ctx)[0].ok
    return ctx


def relist_stopwords(package: Path) -> None:
    """Give the manifest the stopwords wheel's current hash."""
    digest = sha256_file(package / "packages" / STOPWORDS_WHEEL)

    def edit(data: dict) -> None:
        for entry in data["wheels"]:
            if entry["filename"] == STOPWORDS_WHEEL:
                entry["sha256"] = digest

    edit_manifest(package, edit)


def replace_stopwords(package: Path, files: dict[str, str], version: str = "1.0.0") -> None:
    """Swap the stopwords wheel for one built from `files`, listed with its new hash."""
    built = build_wheel("stopwords-mini", version, files, package / "packages")
    built.replace(package / "packages" / STOPWORDS_WHEEL)
    relist_stopwords(package)


def test_valid_package_passes(valid_package: Path, tmp_path: Path):
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert result.ok, result.detail
    assert result.detail.startswith("6 wheels match manifest.json")


@pytest.mark.parametrize("case", WHEEL_CASES, ids=lambda c: c.name)
def test_hostile_case_is_refused(case, valid_package: Path, tmp_path: Path):
    case.mutate(valid_package)
    results = check_wheels(checked(valid_package, tmp_path))
    assert results and not any(r.ok for r in results)
    assert {r.path for r in results} == {case.path}
    assert any(case.expect in r.detail for r in results), [r.detail for r in results]


def test_zip_bomb_is_judged_without_unpacking(
    valid_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    [bomb] = [c for c in WHEEL_CASES if c.name == "wheel-zip-bomb"]
    bomb.mutate(valid_package)
    assert (valid_package / "packages" / STOPWORDS_WHEEL).stat().st_size < 2 * MIB
    opened = []
    real_open = zipfile.ZipFile.open

    def spying_open(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spying_open)
    results = check_wheels(checked(valid_package, tmp_path))
    assert any("zip bomb" in r.detail for r in results)
    assert "stopwords_mini/zeros.bin" not in opened


def test_one_dense_large_member_breaks_the_ratio_rule_only(valid_package: Path, tmp_path: Path):
    replace_stopwords(
        valid_package,
        {"stopwords_mini/__init__.py": STOPWORDS_MODULE, "stopwords_mini/pad.txt": "0" * 8 * MIB},
    )
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert not result.ok
    assert "compressed beyond the ratio limit of 200:1" in result.detail
    assert "stopwords_mini/pad.txt" in result.detail


def test_small_dense_members_are_not_bombs(valid_package: Path, tmp_path: Path):
    replace_stopwords(
        valid_package,
        {"stopwords_mini/__init__.py": STOPWORDS_MODULE, "stopwords_mini/pad.txt": "0" * 100_000},
    )
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert result.ok, result.detail


def test_total_size_limit_comes_from_config(valid_package: Path, tmp_path: Path):
    results = check_wheels(checked(valid_package, tmp_path, wheel_max_uncompressed_bytes=100))
    assert len(results) == 6
    assert all("over the limit of 100 " in r.detail for r in results)


def test_metadata_version_must_match_filename(valid_package: Path, tmp_path: Path):
    replace_stopwords(valid_package, {"stopwords_mini/__init__.py": STOPWORDS_MODULE}, "2.0.0")
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert "has version 2.0.0, but the filename says 1.0.0" in result.detail


def test_wheel_that_is_not_a_zip(valid_package: Path, tmp_path: Path):
    (valid_package / "packages" / STOPWORDS_WHEEL).write_bytes(b"not a zip at all")
    relist_stopwords(valid_package)
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert "is not a valid zip archive" in result.detail
    assert result.path == f"packages/{STOPWORDS_WHEEL}"


def test_listed_wheel_that_is_a_link(valid_package: Path, tmp_path: Path):
    wheel = valid_package / "packages" / STOPWORDS_WHEEL
    target = tmp_path / "elsewhere.whl"
    shutil.move(wheel, target)
    wheel.symlink_to(target)
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert "is a link" in result.detail


def test_unlisted_wheel_in_a_subfolder(valid_package: Path, tmp_path: Path):
    build_wheel("hidden", "1.0", {"hidden/__init__.py": ""}, valid_package / "packages" / "deep")
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert result.path == "packages/deep/hidden-1.0-py3-none-any.whl"
    assert "not listed in manifest.json" in result.detail


def test_missing_packages_folder(valid_package: Path, tmp_path: Path):
    shutil.rmtree(valid_package / "packages")
    [result] = check_wheels(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "packages")
