"""Wheel selection from a local folder (uv offline) and download from a loopback index, never
the network."""

import hashlib
import shutil
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from simple_index import serve_index

from engine.demo.wheels import build_wheel
from engine.intake.manifest import WheelEntry
from engine.packaging.build_history import BuildRequires
from engine.packaging.deps import FoundRequirement
from engine.packaging.errors import PackagingError
from engine.packaging.wheels import Target, download_wheels, select_wheels

PYTEST_CLOSURE = {
    "iniconfig-2.3.1-py3-none-any.whl",
    "packaging-26.3-py3-none-any.whl",
    "pluggy-1.7.0-py3-none-any.whl",
    "pygments-2.21.0-py3-none-any.whl",
    "pytest-8.4.2-py3-none-any.whl",
}
STOPWORDS = "stopwords_mini-1.0.0-py3-none-any.whl"


def found(*texts: str) -> list[FoundRequirement]:
    return [
        FoundRequirement(text=t, sources=[f"pyproject.toml line {i}"]) for i, t in enumerate(texts)
    ]


def platform_wheel(folder: Path, name: str, version: str, tag: str) -> Path:
    """A real wheel of one empty module, carrying `tag` in its name and its WHEEL file."""
    dist_info = f"{name}-{version}.dist-info"
    members = {
        f"{name}/__init__.py": "",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n",
    }
    path = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in members.items():
            zf.writestr(member, text)
        zf.writestr(f"{dist_info}/RECORD", "")
    return path


@pytest.fixture
def folder(tmp_path: Path, wheel_cache: Path) -> Path:
    """The demo's wheels, plus an older stopwords-mini, an unrelated wheel and an sdist."""
    dest = tmp_path / "wheels"
    shutil.copytree(wheel_cache, dest)
    build_wheel("stopwords-mini", "0.9.0", {"stopwords_mini/__init__.py": ""}, dest)
    build_wheel("unrelated", "1.0.0", {"unrelated/__init__.py": ""}, dest)
    (dest / "sdistonly-1.0.0.tar.gz").write_bytes(b"not looked at")
    return dest


def test_exactly_the_resolved_wheels_are_copied_with_their_hashes(tmp_path: Path, folder: Path):
    dest = tmp_path / "packages"
    entries = select_wheels(
        found("stopwords-mini>=1.0", "pytest>=8"), [], folder, Target("3.11"), dest, tmp_path / "s"
    )
    assert {e.filename for e in entries} == PYTEST_CLOSURE | {STOPWORDS}
    assert {p.name for p in dest.iterdir()} == PYTEST_CLOSURE | {STOPWORDS}
    for entry in entries:
        data = (dest / entry.filename).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert data == (folder / entry.filename).read_bytes()


def test_missing_direct_requirements_are_named_with_their_source(tmp_path: Path, folder: Path):
    with pytest.raises(PackagingError) as caught:
        select_wheels(
            found("requests>=2", "pytest>=9", "sdistonly", 'tomli; python_version < "3.11"'),
            [],
            folder,
            Target("3.11"),
            tmp_path / "packages",
            tmp_path / "s",
        )
    message = str(caught.value)
    assert f"no wheel in {folder} satisfies 3 requirement(s) for Python 3.11" in message
    assert "requests>=2 (from pyproject.toml line 0): there is no wheel of it" in message
    assert "pytest>=9 (from pyproject.toml line 1): only version 8.4.2 is there" in message
    assert "sdistonly (from pyproject.toml line 2): there is no wheel of it" in message
    assert "tomli" not in message
    assert not (tmp_path / "packages").exists()


def test_a_missing_dependency_of_a_dependency_is_named(tmp_path: Path, folder: Path):
    (folder / "pluggy-1.7.0-py3-none-any.whl").unlink()
    with pytest.raises(PackagingError, match=r"do not resolve from the wheels .*pluggy"):
        select_wheels(
            found("pytest"), [], folder, Target("3.11"), tmp_path / "packages", tmp_path / "s"
        )


def test_build_requirements_need_wheels_too(tmp_path: Path, folder: Path):
    def select() -> list[WheelEntry]:
        builds = [BuildRequires(("flit_core>=3.9",))]
        return select_wheels(
            found("pytest"), builds, folder, Target("3.11"), tmp_path / "p", tmp_path / "s"
        )

    with pytest.raises(PackagingError) as caught:
        select()
    assert "flit_core>=3.9 (from pyproject.toml [build-system] requires)" in str(caught.value)
    build_wheel("flit-core", "3.9.0", {"flit_core/__init__.py": ""}, folder)
    entries = select()
    assert "flit_core-3.9.0-py3-none-any.whl" in {e.filename for e in entries}


def test_each_set_of_build_requirements_resolves_on_its_own(tmp_path: Path, folder: Path):
    """HEAD builds with a newer backend than an older revision allows: two versions of it are
    packaged, one per set, instead of a resolution that cannot meet both; a set no wheel meets
    is named with the revision that declares it."""
    for version in ("59.0.0", "70.0.0"):
        build_wheel("setuptools", version, {"setuptools/__init__.py": ""}, folder)
    builds = [
        BuildRequires(("setuptools>=64",)),
        BuildRequires(("setuptools<60",), "0123456789abcdef", 12),
    ]
    entries = select_wheels(
        found("pytest"), builds, folder, Target("3.11"), tmp_path / "p", tmp_path / "s"
    )
    assert {e.filename for e in entries} >= {
        "setuptools-59.0.0-py3-none-any.whl",
        "setuptools-70.0.0-py3-none-any.whl",
    }
    with pytest.raises(PackagingError) as caught:
        select_wheels(
            found("pytest"),
            [*builds, BuildRequires(("setuptools<50",), "fedcba9876543210", 3)],
            folder,
            Target("3.11"),
            tmp_path / "q",
            tmp_path / "s",
        )
    assert (
        "setuptools<50 (from pyproject.toml [build-system] requires at fedcba987654 "
        "(3 revisions)): only version 59.0.0, 70.0.0 is there"
    ) in str(caught.value)


def test_the_wheel_for_the_target_platform_is_chosen(tmp_path: Path, folder: Path):
    for tag in (
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp311-cp311-musllinux_1_1_x86_64",
        "cp311-cp311-win_amd64",
        "cp312-cp312-manylinux_2_17_x86_64",
        "cp311-cp311-manylinux_2_34_x86_64",
    ):
        platform_wheel(folder, "fastlib", "2.0", tag)
    select_wheels(
        found("fastlib"), [], folder, Target("3.11"), tmp_path / "packages", tmp_path / "s"
    )
    assert [p.name for p in (tmp_path / "packages").glob("fastlib-*")] == [
        "fastlib-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    ]
    with pytest.raises(
        PackagingError, match=r"fastlib \(from .*\): its wheels there are for other"
    ):
        select_wheels(
            found("fastlib"),
            [],
            folder,
            Target("3.11", "aarch64-manylinux_2_28"),
            tmp_path / "other",
            tmp_path / "s",
        )


@pytest.mark.parametrize(
    ("python", "platform", "complaint"),
    [
        ("3", "x86_64-manylinux_2_28", "--python '3': expected 3.N"),
        ("3.11", "win_amd64", "--platform 'win_amd64'"),
        ("3.11", "x86_64-manylinux_2_5", "--platform 'x86_64-manylinux_2_5'"),
    ],
)
def test_a_bad_target_is_refused(python: str, platform: str, complaint: str):
    with pytest.raises(PackagingError, match=complaint):
        Target(python, platform)


@pytest.fixture
def index_env(tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback index of `folder` plus stopwords-mini 2.0.0 uploaded in 2025 (the others in
    2020), named to uv and to pip the way an operator would configure them."""
    newer = build_wheel("stopwords-mini", "2.0.0", {"stopwords_mini/__init__.py": ""}, folder)
    uploaded = {newer.name: datetime(2025, 1, 1, tzinfo=UTC)}
    with serve_index(folder, uploaded) as url:
        monkeypatch.setenv("UV_INDEX_URL", url)
        monkeypatch.setenv("PIP_INDEX_URL", url)
        monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
        yield url


def test_download_takes_no_wheel_uploaded_after_the_cutoff(tmp_path: Path, index_env: str):
    """The connected side resolves with uv against the index, wheels only, none uploaded after
    the cutoff, then pip fetches exactly those pins: stopwords-mini 2.0.0 (2025) is newer than a
    2024 history and is not taken; without a cutoff it is."""
    requirements = found("stopwords-mini>=1.0", "pytest")
    old = tmp_path / "old"
    old.mkdir()
    cutoff = datetime(2024, 6, 1, tzinfo=UTC)
    download_wheels(requirements, [], Target("3.11"), cutoff, old, tmp_path / "s1")
    assert {p.name for p in old.iterdir()} == PYTEST_CLOSURE | {STOPWORDS}
    new = tmp_path / "new"
    new.mkdir()
    download_wheels(requirements, [], Target("3.11"), None, new, tmp_path / "s2")
    assert "stopwords_mini-2.0.0-py3-none-any.whl" in {p.name for p in new.iterdir()}


def test_a_requirement_the_index_cannot_meet_is_named_with_its_sources(
    tmp_path: Path, index_env: str
):
    """uv's reason comes with the requirement it names and the files that declared it; a
    requirement with only an sdist finds no wheel."""
    cutoff = datetime(2024, 6, 1, tzinfo=UTC)
    with pytest.raises(PackagingError) as caught:
        download_wheels(
            found("pytest", "stopwords-mini>=2"), [], Target("3.11"), cutoff, tmp_path, tmp_path
        )
    message = str(caught.value)
    assert "do not resolve to wheels uploaded before 2024-06-01T00:00:00+00:00" in message
    assert "\n  stopwords-mini>=2 (from pyproject.toml line 1)" in message
    assert "pytest (from" not in message
