"""Planning types (LoRA Training Strategy §6.9): the rule, the AST comparison behind it, and the
demo repo."""

from pathlib import Path

import pytest

from engine.demo.repo import DEMO_HISTORY, build_demo_repo, demo_git
from engine.mining import describe_commit, planning_type
from engine.mining.errors import MiningError
from engine.mining.symbols import added_symbols, defined_symbols


@pytest.mark.parametrize(
    ("code_files", "test_files", "adds_symbols", "expected"),
    [
        (0, 1, False, "test_plan"),
        (0, 3, True, "test_plan"),
        (1, 1, False, "mixed"),
        (5, 2, True, "mixed"),
        (4, 0, True, "meta_plan"),
        (5, 0, True, "meta_plan"),
        (4, 0, False, "step_plan"),
        (3, 0, True, "step_plan"),
        (1, 0, False, "step_plan"),
    ],
)
def test_planning_type_rule(code_files: int, test_files: int, adds_symbols: bool, expected: str):
    assert planning_type(code_files, test_files, adds_symbols) == expected


OLD = b"""\
def parse(text):
    return text.split()


class Reader:
    def read(self):
        return 1

    class Options:
        def merge(self, other):
            return other
"""


def test_defined_symbols_are_functions_classes_and_methods():
    assert defined_symbols(OLD) == {
        "parse",
        "Reader",
        "Reader.read",
        "Reader.Options",
        "Reader.Options.merge",
    }


@pytest.mark.parametrize(
    ("old", "new", "added"),
    [
        (OLD, OLD.replace(b"text.split()", b"text.split(',')"), set()),
        (OLD, OLD + b"\n\ndef render(tree):\n    return str(tree)\n", {"render"}),
        (
            OLD,
            OLD.replace(
                b"    def read(self):", b"    def close(self):\n        pass\n\n    def read(self):"
            ),
            {"Reader.close"},
        ),
        (None, b"def fresh():\n    pass\n", {"fresh"}),
        (OLD, None, set()),
        (b"print 'python 2'\n", b"def modern():\n    pass\n", set()),
    ],
    ids=["modified", "new-function", "new-method", "new-file", "deleted-file", "unparsable"],
)
def test_added_symbols(old: bytes | None, new: bytes | None, added: set[str]):
    assert added_symbols(old, new) == added


def test_demo_commits_keep_their_planning_types(tmp_path: Path):
    repo = tmp_path / "textkit"
    shas = build_demo_repo(repo)
    described = {
        commit.subject: describe_commit(repo, sha)
        for commit, sha in zip(DEMO_HISTORY[1:], shas[1:], strict=True)
    }
    assert {s: c.planning_type for s, c in described.items() if c.planning_type != "mixed"} == {
        "Plan the truncate helper": "step_plan",
        "Cover slugify edge cases in tests": "test_plan",
        "Update README": "step_plan",
        "Document what slugify drops from titles": "step_plan",
    }, "every other commit changes code and its tests"
    assert described["Update README"].test_files == [], "a README change has no tests"
    with pytest.raises(MiningError, match=f"commit {shas[0]} has 0 parents, not one"):
        describe_commit(repo, shas[0])
    with pytest.raises(MiningError, match="'--output=x' is not a full commit id"):
        describe_commit(repo, "--output=x")


def test_describe_reads_symbols_of_a_commit_off_every_branch(tmp_path: Path):
    repo = tmp_path / "textkit"
    build_demo_repo(repo)
    demo_git(repo, "switch", "--quiet", "--create", "side")
    for name in ("one", "two", "three", "four"):
        (repo / "textkit" / f"{name}.py").write_text(f"def {name}():\n    return 1\n")
    (repo / "tests" / "test_numbers.py").write_text("from textkit import one, two\n")
    demo_git(repo, "add", "--all")
    demo_git(repo, "commit", "--quiet", "--no-verify", "-m", "Add the number modules")
    for name in ("one", "two", "three", "four"):
        (repo / "textkit" / f"{name}.py").write_text(
            f"def {name}():\n    return 1\n\n\ndef {name}_twice():\n    return 2\n"
        )
    demo_git(repo, "commit", "--quiet", "--no-verify", "-am", "Add doubled variants of numbers")
    side = demo_git(repo, "rev-parse", "HEAD")
    demo_git(repo, "switch", "--quiet", "main")
    demo_git(repo, "branch", "--quiet", "-D", "side")

    commit = describe_commit(repo, side)

    assert commit.planning_type == "meta_plan"
    assert commit.test_files == ["tests/test_numbers.py"]
