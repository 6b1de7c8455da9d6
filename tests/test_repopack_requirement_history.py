"""Test requirements that older packaged commits declare and HEAD dropped, read from a real git
repository's history."""

import json
from pathlib import Path

from git_repos import add_commit, new_repo

from engine.mining.blobs import ObjectReader
from engine.packaging.deps import GroupNames, discover_dependencies
from engine.packaging.requirement_history import history_requirements
from engine.packaging.tree_files import TreeFiles
from engine.packaging.wheels import Target


def pyproject(tests: list[str]) -> str:
    return (
        '[project]\nname = "thing"\nversion = "1"\n\n'
        f"[project.optional-dependencies]\ntests = {json.dumps(tests)}\n"
    )


def added(repo: Path, commits: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    git_dir = repo / ".git"
    head = discover_dependencies(TreeFiles(git_dir), "pytest", GroupNames())
    with ObjectReader(repo) as reader:
        found, notes = history_requirements(
            git_dir,
            reader,
            commits,
            head,
            "pytest",
            GroupNames(),
            Target("3.11").marker_environment(),
        )
    return {f.text: f.sources for f in found}, notes


def test_what_older_commits_declare_and_head_does_not_is_added_by_name(tmp_path: Path):
    """structlog dropped pretend and freezegun from its declared test requirements while its older
    tests still import them: each such name is added without its era's bounds, with the extras
    asked for, named with the newest commit declaring it and how many packaged commits do. What
    HEAD declares keeps HEAD's bounds; a marker false on the target adds nothing."""
    repo = new_repo(tmp_path / "repo")
    oldest = [
        "pytest<5",
        "six>=1.0",
        "zope.interface[testing]",
        "importlib_metadata; python_version < '3.8'",
    ]
    first = add_commit(repo, {"pyproject.toml": pyproject(oldest), "a.py": "x = 1\n"}, "Start")
    same = add_commit(repo, {"a.py": "x = 2\n"}, "Change a")
    middle = add_commit(
        repo, {"pyproject.toml": pyproject(["pytest", "pretend", "six[extra]"])}, "Swap"
    )
    head = add_commit(repo, {"pyproject.toml": pyproject(["pytest>=8"])}, "Drop old helpers")
    found, notes = added(repo, [head, middle, same, first])
    assert sorted(found) == ["pretend", "six[extra]", "zope.interface[testing]"]
    assert found["zope.interface[testing]"] == [
        "pyproject.toml [project.optional-dependencies] tests",
        f"declared by 2 packaged commit(s), the newest {same[:12]}; not at HEAD",
    ]
    assert found["six[extra]"][-1] == (
        f"declared by 3 packaged commit(s), the newest {middle[:12]}; not at HEAD"
    )
    assert found["pretend"][-1] == (
        f"declared by 1 packaged commit(s), the newest {middle[:12]}; not at HEAD"
    )
    assert notes == []


def test_a_history_declaring_what_head_declares_adds_nothing(tmp_path: Path):
    repo = new_repo(tmp_path / "repo")
    first = add_commit(repo, {"pyproject.toml": pyproject(["pytest", "six"])}, "Start")
    head = add_commit(repo, {"pyproject.toml": pyproject(["pytest>=8", "six>=1.16"])}, "Bump")
    assert added(repo, [head, first]) == ({}, [])


def test_a_configuration_that_cannot_be_read_is_named_and_adds_nothing(tmp_path: Path):
    repo = new_repo(tmp_path / "repo")
    broken = add_commit(repo, {"pyproject.toml": "[project\n"}, "Break it")
    head = add_commit(repo, {"pyproject.toml": pyproject(["pytest"])}, "Mend it")
    found, notes = added(repo, [head, broken])
    assert found == {}
    assert len(notes) == 1
    assert notes[0].startswith(
        f"the requirements of 1 packaged commit(s) as at {broken[:12]} cannot be read"
    )
    assert "pyproject.toml at " + broken[:12] + " is not valid TOML" in notes[0]
    assert notes[0].endswith("none of them is added")
