"""CodeFavor pairs (seed 004 §6.7) from a real commit in a git repository built here."""

from pathlib import Path

import pytest

from engine.demo.repo import demo_git
from engine.training_data.codefavor import SYSTEM_PROMPT, codefavor_pairs
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


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")
    demo_git(repo, "add", "--all")
    demo_git(repo, "commit", "--quiet", "--no-verify", "--allow-empty-message", "-m", message)
    return demo_git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository whose second commit changes symbols in code, in tests and in a big file."""
    root = tmp_path / "repo"
    root.mkdir()
    demo_git(root, "init", "--quiet", "--template=", "--initial-branch=main")
    files = {
        "pkg/core.py": CORE_OLD,
        "pkg/big.py": BIG_OLD,
        "tests/test_core.py": TEST_OLD,
        "notes.txt": "a\n",
    }
    parent = _commit(root, files, "Start")
    changed = {
        "pkg/core.py": CORE_NEW,
        "pkg/big.py": BIG_NEW,
        "tests/test_core.py": TEST_NEW,
        "notes.txt": "b\n",
    }
    sha = _commit(root, changed, MESSAGE)
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
    assert names == ["small", "Store", "Store.get", "helper"]
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

    store = by_name["Store"]
    assert store.chosen[0].content.startswith(
        'class Store:\n    """Keeps values and refuses unknown keys."""\n'
    )
    assert store.chosen[0].content.endswith(GET_NEW)
    assert store.rejected is not None and store.rejected[0].content.endswith(GET_OLD)

    assert [(s.what, s.stage, s.reason) for s in skips] == [
        ("codefavor pair", "execute_code", OVER_BUDGET)
    ]
    assert skips[0].detail.startswith("pkg/big.py::big: ")


def test_test_files_count_when_the_commit_does_not_name_them(repo):
    root, parent, sha = repo
    items, _ = codefavor_pairs(root, parent, MESSAGE, [], _lineage(sha))
    assert any("Symbol to rewrite: test_get\n" in item.prompt[1].content for item in items)


def test_an_empty_message_is_no_task(repo):
    root, parent, sha = repo
    with pytest.raises(SyntheticError, match="empty message"):
        codefavor_pairs(root, parent, "  \n", [], _lineage(sha))
