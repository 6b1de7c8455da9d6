"""The build backend's requirements read across the packaged history of a real git repository."""

from pathlib import Path

from git_repos import add_commit, new_repo

from engine.mining.blobs import ObjectReader
from engine.packaging.build_history import BuildRequires, history_build_requires

SETUPTOOLS = '[build-system]\nrequires = ["setuptools>=61", "wheel"]\n'
HATCH = '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'


def test_each_backend_the_history_used_is_found_with_its_newest_revision(tmp_path: Path):
    """A project that moved from setuptools to hatchling inside the window needs both; a
    revision with no pyproject.toml builds with setuptools as uv does; an unreadable one is
    named, not skipped in silence."""
    repo = new_repo(tmp_path / "repo")
    bare = add_commit(repo, {"setup.py": "from setuptools import setup\nsetup()\n"}, "Start")
    old = add_commit(repo, {"pyproject.toml": SETUPTOOLS}, "Build with setuptools")
    older_change = add_commit(repo, {"a.py": "x = 1\n"}, "Add a")
    broken = add_commit(repo, {"pyproject.toml": "[build-system\n"}, "Break it")
    new = add_commit(repo, {"pyproject.toml": HATCH}, "Build with hatchling")
    revs = [new, broken, broken, older_change, older_change, old, old, bare]
    with ObjectReader(repo) as reader:
        builds, notes = history_build_requires(reader, revs, ["hatchling", "hatch-vcs"])
    assert builds == [
        BuildRequires(("hatchling", "hatch-vcs")),
        BuildRequires(("setuptools>=61", "wheel"), older_change, 4),
        BuildRequires(("setuptools>=40.8.0",), bare, 1),
    ]
    assert builds[1].source == (
        f"pyproject.toml [build-system] requires at {older_change[:12]} (4 revisions)"
    )
    assert len(notes) == 1
    assert notes[0].startswith(f"pyproject.toml at {broken[:12]}: it is not valid TOML")
    assert notes[0].endswith("that revision cannot be built")


def test_a_history_that_never_changed_backend_needs_only_heads(tmp_path: Path):
    repo = new_repo(tmp_path / "repo")
    first = add_commit(repo, {"pyproject.toml": HATCH}, "Start")
    second = add_commit(repo, {"a.py": "x = 1\n"}, "Add a")
    with ObjectReader(repo) as reader:
        builds, notes = history_build_requires(reader, [second, first], ["hatchling", "hatch-vcs"])
    assert (builds, notes) == ([BuildRequires(("hatchling", "hatch-vcs"))], [])
