"""CodeFavor pairs (LoRA Training Strategy §6.7) from a real commit in a git repository built
here."""

from pathlib import Path

import pytest
from git_repos import add_commit, new_repo

from engine.training_data.codefavor import NO_CODE_DIFFERENCE, SYSTEM_PROMPT, codefavor_pairs
from engine.training_data.harness_pairs import OVER_BUDGET, Lineage
from engine.training_data.synthetic import SyntheticError

CORE_OLD = '''"""Core."""

import functools


class Store:
    """Keeps values."""

    def __init__(self):
        self.items = {}

    def get(self, key):
        return self.items.get(key)


def helper(x):
    return x + 1


def unchanged():
    return 0
'''

CORE_NEW = '''"""Core."""

import functools


class Store:
    """Keeps values and refuses unknown keys."""

    def __init__(self):
        self.items = {}

    def get(self, key):
        if key not in self.items:
            raise KeyError(f"no value is stored under {key!r}")
        return self.items[key]


@functools.cache
def helper(x):
    return x + 1


def unchanged():
    return 0


def added():
    return 1
'''

GET_OLD = "    def get(self, key):\n        return self.items.get(key)"
GET_NEW = (
    "    def get(self, key):\n"
    "        if key not in self.items:\n"
    '            raise KeyError(f"no value is stored under {key!r}")\n'
    "        return self.items[key]"
)
TEST_OLD = "def test_get():\n    assert True\n"
TEST_NEW = "def test_get():\n    assert False\n"
BIG_OLD = f'def big():\n    return "{"a" * 60_000}"\n\n\ndef small():\n    return 1\n'
BIG_NEW = BIG_OLD.replace('"a', '"b').replace("return 1", "return 2")
MESSAGE = "Refuse unknown keys in Store.get\n\nA missing key is a KeyError naming the key."


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository whose second commit changes symbols in code, in tests and in a big file."""
    root = new_repo(tmp_path / "repo")
    files = {
        "pkg/core.py": CORE_OLD,
        "pkg/big.py": BIG_OLD,
        "tests/test_core.py": TEST_OLD,
        "notes.txt": "a\n",
    }
    parent = add_commit(root, files, "Start")
    changed = {
        "pkg/core.py": CORE_NEW,
        "pkg/big.py": BIG_NEW,
        "tests/test_core.py": TEST_NEW,
        "notes.txt": "b\n",
    }
    sha = add_commit(root, changed, MESSAGE)
    return root, parent, sha


def _lineage(sha: str) -> Lineage:
    return Lineage(
        repo="demo",
        domain="storage",
        task_key=f"d1:{sha}",
        task_date="2024-03-01T10:00:00Z",
        package_digest="d1",
        sha=sha,
    )


def test_each_modified_symbol_outside_the_tests_is_a_pair(repo):
    root, parent, sha = repo
    items, skips = codefavor_pairs(root, parent, MESSAGE, ["tests/test_core.py"], _lineage(sha))
    names = [
        item.prompt[1].content.split("Symbol to rewrite: ")[1].split("\n")[0] for item in items
    ]
    assert names == ["small", "Store.get", "helper"]
    by_name = dict(zip(names, items, strict=True))

    get = by_name["Store.get"]
    assert (get.stage, get.kind, get.source, get.origin) == (
        "execute_code",
        "preference",
        "synthetic",
        "codefavor",
    )
    assert (get.repo, get.domain, get.task_key, get.sha) == ("demo", "storage", f"d1:{sha}", sha)
    assert get.prompt[0].content == SYSTEM_PROMPT
    user = get.prompt[1].content
    assert f"File pkg/core.py before the change:\n```python\n{CORE_OLD}```" in user
    assert user.endswith(f"Task:\n{MESSAGE}")
    assert [m.content for m in get.chosen] == [GET_NEW]
    assert [m.content for m in get.rejected or []] == [GET_OLD]

    helper = by_name["helper"]
    assert helper.chosen[0].content == "@functools.cache\ndef helper(x):\n    return x + 1"
    assert helper.rejected is not None
    assert helper.rejected[0].content == "def helper(x):\n    return x + 1"

    assert [(s.what, s.stage, s.reason) for s in skips] == [
        ("codefavor pair", "execute_code", OVER_BUDGET),
        ("codefavor pair", "execute_code", NO_CODE_DIFFERENCE),
    ]
    assert skips[0].detail.startswith("pkg/big.py::big: ")
    assert skips[1].detail == "pkg/core.py::Store"


def test_test_files_count_when_the_commit_does_not_name_them(repo):
    root, parent, sha = repo
    items, _ = codefavor_pairs(root, parent, MESSAGE, [], _lineage(sha))
    assert any("Symbol to rewrite: test_get\n" in item.prompt[1].content for item in items)


def test_an_empty_message_is_no_task(repo):
    root, parent, sha = repo
    with pytest.raises(SyntheticError, match="empty message"):
        codefavor_pairs(root, parent, "  \n", [], _lineage(sha))


DOCS_OLD = '''"""Checks."""


def check(value):
    """Check a value.

    Raises
        ValueError: if it is negative
    """
    if value < 0:
        raise ValueError(value)  # negative
    return value


class Box:
    """Holds one value"""

    size = 1

    def open(self):
        return self.size
'''
DOCS_NEW = (
    DOCS_OLD.replace("Raises\n", "Raises:\n")
    .replace("if it is negative\n", "if it is negative.\n")
    .replace("# negative", "# a negative value")
    .replace("Holds one value", "Holds one value.")
    .replace("return self.size", "return  self.size")
)
SQUASHED = """Tidy the docstrings of check (#1571)

* Tidy the docstrings

* Apply suggestions from code review

Co-authored-by: Sam Dev <sam@example.invalid>

---------

Co-authored-by: Jane Dev <jane@example.invalid>
Signed-off-by: Jane Dev <jane@example.invalid>
"""


def test_docstring_and_comment_only_changes_make_no_pair(tmp_path):
    """Issue 15: pairs that differed by a docstring's period or "Raises" -> "Raises:" taught
    nothing; such symbols (and a class whose own change is its docstring) are skipped, each with
    the reason."""
    root = new_repo(tmp_path / "repo")
    parent = add_commit(root, {"pkg/checks.py": DOCS_OLD}, "Start")
    sha = add_commit(root, {"pkg/checks.py": DOCS_NEW}, SQUASHED)
    items, skips = codefavor_pairs(root, parent, SQUASHED, [], _lineage(sha))
    assert items == []
    assert [(s.reason, s.detail) for s in skips] == [
        (NO_CODE_DIFFERENCE, "pkg/checks.py::Box"),
        (NO_CODE_DIFFERENCE, "pkg/checks.py::Box.open"),
        (NO_CODE_DIFFERENCE, "pkg/checks.py::check"),
    ]


def test_a_pair_prompt_carries_the_cleaned_task(repo):
    """The prompt's task is the cleaned message: no trailer, reference or e-mail address."""
    root, parent, sha = repo
    raw = f"{MESSAGE} (#12)\n\nFixes #12\n\nCo-authored-by: Sam Dev <sam@example.invalid>\n"
    items, _ = codefavor_pairs(root, parent, raw, ["tests/test_core.py"], _lineage(sha))
    assert items
    for item in items:
        assert item.prompt[1].content.endswith(f"Task:\n{MESSAGE}")
