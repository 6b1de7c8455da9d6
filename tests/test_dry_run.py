"""The dry run: an offline environment built with uv, test collection at HEAD in the sandbox."""

import hashlib
import subprocess
import tempfile
from pathlib import Path

import demo_counts
import pytest

from engine.core.config import ValidationConfig
from engine.core.hashing import sha256_file
from engine.demo.hostile import commit_files, edit_manifest
from engine.demo.hostile.wheels import CASES
from engine.demo.repo import TEST_SLUG_V5, git_env
from engine.demo.wheels import build_wheel
from engine.intake.checks.context import PackageContext
from engine.intake.checks.dry_run import check_dry_run
from engine.intake.checks.manifest_check import check_manifest
from engine.intake.checks.requirements import check_requirements
from engine.intake.checks.wheels import check_wheels

DRY_RUN_CASES = [c for c in CASES if c.check == "dry-run"]

BACKEND = '''\
"""A minimal PEP 517 backend packing textkit/ into a wheel."""

import base64
import hashlib
import subprocess
import pathlib
import zipfile

DIST_INFO = "textkit-0.1.0.dist-info"


def _hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {p.as_posix(): p.read_bytes() for p in sorted(pathlib.Path("textkit").glob("*.py"))}
    files[DIST_INFO + "/METADATA"] = b"Metadata-Version: 2.1\\nName: textkit\\nVersion: 0.1.0\\n"
    files[DIST_INFO + "/WHEEL"] = (
        b"Wheel-Version: 1.0\\n"
        b"Root-Is-Purelib: true\\nTag: py3-none-any\\n"
    )
    record = "".join(f"{n},{_hash(d)},{len(d)}\\n" for n, d in files.items())
    files[DIST_INFO + "/RECORD"] = (record + DIST_INFO + "/RECORD,,\\n").encode()
    name = "textkit-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return name
'''
BUILD_SYSTEM = '\n[build-system]\nrequires = ["mini-backend"]\nbuild-backend = "mini_backend"\n'


def checked(package: Path, scratch: Path, **limits: float) -> PackageContext:
    ctx = PackageContext(root=package, config=ValidationConfig(**limits), scratch=scratch)
    assert check_manifest(ctx)[0].ok
    return ctx


def tree_digest(root: Path) -> str:
    """One hash over every path, mode and content under `root`, .git included."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(f"{path.relative_to(root)} {path.lstat().st_mode}".encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def add_build_backend(package: Path, backend_source: str) -> None:
    """Ship a wheel of a tiny build backend and ask for the repo itself to be installed."""
    wheel = build_wheel(
        "mini-backend", "1.0", {"mini_backend.py": backend_source}, package / "packages"
    )
    pyproject = (package / "repo" / "pyproject.toml").read_text(encoding="utf-8")
    commit_files(package, {"pyproject.toml": pyproject + BUILD_SYSTEM}, "Build with mini-backend")

    def edit(data: dict) -> None:
        data["install_repo"] = True
        data["wheels"].append({"filename": wheel.name, "sha256": sha256_file(wheel)})

    edit_manifest(package, edit)


def test_valid_package_builds_and_collects(
    valid_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = tree_digest(valid_package)
    [result] = check_dry_run(checked(valid_package, scratch))
    assert result.ok, result.detail
    assert result.detail == (
        "environment built offline (6 wheels) and pytest collected "
        f"{demo_counts.TESTS_AT_HEAD} tests"
    )
    assert tree_digest(valid_package) == before, "the drive's package must not change"
    assert list(system_tmp.iterdir()) == [], "nothing is written outside the scratch folder"


@pytest.mark.parametrize("case", DRY_RUN_CASES, ids=lambda c: c.name)
def test_hostile_case_is_refused(case, valid_package: Path, tmp_path: Path):
    case.mutate(valid_package)
    ctx = checked(valid_package, tmp_path, **getattr(case, "config", {}))
    assert all(r.ok for r in check_wheels(ctx) + check_requirements(ctx))
    [result] = check_dry_run(ctx)
    assert not result.ok
    assert case.expect in result.detail
    assert result.path == case.path


def test_collects_what_head_holds_not_the_working_tree(valid_package: Path, tmp_path: Path):
    uncommitted = TEST_SLUG_V5 + "\n\ndef test_only_in_the_working_tree():\n    pass\n"
    (valid_package / "repo" / "tests" / "test_slug.py").write_text(uncommitted, encoding="utf-8")
    edit_manifest(valid_package, lambda data: data.update(test_command="pytest tests/test_slug.py"))
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert result.ok, result.detail
    assert f"pytest collected {TEST_SLUG_V5.count('def test_')} tests" in result.detail


def test_snapshot_refuses_a_link_leaving_the_repository(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    (repo / "escape").symlink_to("../../outside")
    env = git_env("2024-03-21T10:00:00+00:00")
    for args in (["add", "escape"], ["commit", "--quiet", "-m", "Link out"]):
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True)
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "repo/escape")
    assert "links outside to ../../outside" in result.detail


def test_python_missing_from_this_machine(valid_package: Path, tmp_path: Path):
    edit_manifest(valid_package, lambda data: data.update(python_version="3.99"))
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "manifest.json")
    assert "Python 3.99 (manifest python_version) is not installed on this machine" in result.detail


def test_install_repo_builds_the_repository_in_the_sandbox(valid_package: Path, tmp_path: Path):
    add_build_backend(valid_package, BACKEND)
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert result.ok, result.detail
    site = next((tmp_path / "dry-run" / "venv" / "lib").glob("python*/site-packages"))
    assert (site / "textkit-0.1.0.dist-info" / "METADATA").is_file()
    assert (site / "textkit" / "slug.py").is_file()


def test_install_repo_build_backend_runs_in_the_sandbox(valid_package: Path, tmp_path: Path):
    add_build_backend(
        valid_package, "import socket\n\nsocket.create_connection(('127.0.0.1', 9))\n"
    )
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "repo")
    assert result.detail.startswith(
        "installing the repository (install_repo) tried to reach the network, "
        "which the sandbox blocks:"
    )
    assert "mini_backend" in result.detail


def test_a_collection_count_printed_by_the_code_is_not_trusted(valid_package: Path, tmp_path: Path):
    """A conftest that prints its own count after pytest's cannot pass for a bigger suite."""
    conftest = "import atexit\n\natexit.register(lambda: print('999 tests collected in 0.01s'))\n"
    commit_files(valid_package, {"conftest.py": conftest}, "Add a conftest")
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert (result.ok, result.path) == (False, "repo")
    assert result.detail.startswith(
        "test collection is untrusted: pytest's last line says 999 tests were collected, "
        f"but it listed {demo_counts.TESTS_AT_HEAD}:"
    )


def test_ids_with_spaces_and_a_warnings_summary_are_counted_right(
    valid_package: Path, tmp_path: Path
):
    """Test ids may hold spaces, and pytest's warnings summary after the listing names tests too:
    neither makes an honest collection look untrusted."""
    module = (
        "import warnings\n\nimport pytest\n\n"
        "warnings.warn('Test: tests/test_spaced.py::test_words, deprecated', UserWarning)\n\n\n"
        "@pytest.mark.parametrize('text', ['two words', 'three more words'])\n"
        "def test_words(text):\n    assert ' ' in text\n"
    )
    commit_files(valid_package, {"tests/test_spaced.py": module}, "Add spaced ids")
    [result] = check_dry_run(checked(valid_package, tmp_path))
    assert result.ok, result.detail
    assert result.detail.endswith(f"pytest collected {demo_counts.TESTS_AT_HEAD + 2} tests")
