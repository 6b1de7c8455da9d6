"""A commit's AST diff and import order, and the gold pipeline replaying it on the parent."""

import os
import subprocess
from pathlib import Path

import pytest

from engine.harness.alignment import score_alignment
from engine.harness.ast_diff import (
    FileChange,
    commit_changes,
    dependency_order,
    diff_symbols,
    import_graph,
    module_name,
)
from engine.harness.edits import apply_edits
from engine.harness.gold import gold_output
from engine.harness.worktrees import checkout

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.invalid",
    "GIT_COMMITTER_NAME": "Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.invalid",
}

CORE_OLD = '''"""Core."""


class Engine:
    """Runs things."""

    def start(self):
        return "started"

    def stop(self):
        return "stopped"


def helper():
    return 1
'''

CORE_NEW = '''"""Core."""

from pkg.util import shout


class Engine:
    """Runs things."""

    def start(self):
        return shout("started")

    def stop(self):
        return "stopped"


def helper():
    return 1
'''

UTIL_OLD = "def quiet(text):\n    return text.lower()\n"
UTIL_NEW = UTIL_OLD + "\n\ndef shout(text):\n    return text.upper()\n"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, capture_output=True, check=True, text=True
    )
    return result.stdout.strip()


def _commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    for rel, text in files.items():
        target = repo / rel
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _commit(
        repo,
        {
            "pkg/__init__.py": "",
            "pkg/core.py": CORE_OLD,
            "pkg/util.py": UTIL_OLD,
            "pkg/legacy.py": "def old():\n    return 0\n",
            "README.md": "hello\n",
            "tests/test_core.py": "def test_start():\n    pass\n",
        },
        "base",
    )
    return repo


def _feature(repo: Path) -> tuple[str, str]:
    parent = _git(repo, "rev-parse", "HEAD")
    sha = _commit(
        repo,
        {
            "pkg/core.py": CORE_NEW,
            "pkg/util.py": UTIL_NEW,
            "pkg/legacy.py": None,
            "README.md": "hello\nworld\n",
            "tests/test_core.py": "from pkg.core import Engine\n\n\ndef test_start():\n"
            "    assert Engine().start() == 'STARTED'\n",
        },
        "Shout when starting",
    )
    return parent, sha


def test_diff_symbols_methods_classes_and_decorators() -> None:
    old = "class A:\n    x = 1\n\n    def f(self):\n        return 1\n\n\ndef g():\n    pass\n"
    new = (
        "class A:\n    x = 1\n\n    def f(self):\n        return 2\n\n    def h(self):\n"
        "        pass\n\n\n@cache\ndef g():\n    pass\n\n\nclass B:\n    pass\n"
    )
    symbols = diff_symbols(old, new)
    assert symbols.added == ["A.h", "B"]
    assert symbols.modified == ["A.f", "g"], "a changed method is not a changed class"
    assert symbols.removed == []
    assert diff_symbols(new, old).removed == ["A.h", "B"]
    assert diff_symbols(None, "def f():\n    pass\n").added == ["f"]
    assert diff_symbols("class A:\n    y = 1\n", "class A:\n    y = 2\n").modified == ["A"]


def test_diff_symbols_records_a_parse_error() -> None:
    symbols = diff_symbols("def f(:\n", "def f():\n    pass\n")
    assert symbols.added == symbols.modified == symbols.removed == []
    assert symbols.parse_error is not None and "line 1" in symbols.parse_error


def test_diff_symbols_line_numbers_survive_form_feeds() -> None:
    old = "def f():\n    return 1\n\x0c\ndef g():\n    return 1\n"
    new = "def f():\n    return 1\n\x0c\ndef g():\n    return 2\n"
    assert diff_symbols(old, new).modified == ["g"]


def test_module_names() -> None:
    assert module_name("src/pkg/a.py") == "pkg.a"
    assert module_name("pkg/__init__.py") == "pkg"
    assert module_name("tool.py") == "tool"


def test_commit_changes(repo: Path) -> None:
    parent, sha = _feature(repo)
    changes = commit_changes(repo, parent, sha, exclude={"tests/test_core.py"})
    by_path = {change.path: change for change in changes}
    assert list(by_path) == ["README.md", "pkg/core.py", "pkg/legacy.py", "pkg/util.py"]
    assert [by_path[p].status for p in by_path] == ["modified", "modified", "deleted", "modified"]
    assert by_path["README.md"].symbols is None
    assert (by_path["README.md"].old, by_path["README.md"].new) == ("hello\n", "hello\nworld\n")
    core = by_path["pkg/core.py"].symbols
    assert core is not None and core.modified == ["Engine.start"] and core.added == []
    assert by_path["pkg/util.py"].symbols.added == ["shout"]
    assert by_path["pkg/legacy.py"].symbols.removed == ["old"]
    assert by_path["pkg/legacy.py"].new is None
    assert len(commit_changes(repo, parent, sha, exclude=set())) == 5


def test_commit_changes_marks_binary_and_unparsable_files(repo: Path) -> None:
    parent = _git(repo, "rev-parse", "HEAD")
    (repo / "logo.bin").write_bytes(b"\x89PNG\xff\x00")
    sha = _commit(repo, {"pkg/broken.py": "def f(:\n"}, "binary and broken")
    changes = {change.path: change for change in commit_changes(repo, parent, sha, set())}
    assert changes["logo.bin"].text is False and changes["logo.bin"].new is None
    assert changes["pkg/broken.py"].symbols.parse_error is not None
    result = gold_output(repo, parent, sha, [])
    assert result.output is None and "logo.bin" in (result.error or "")


def _change(path: str, new: str) -> FileChange:
    return FileChange(
        path=path, status="added", text=True, old=None, new=new, symbols=diff_symbols(None, new)
    )


def test_dependency_order_follows_imports_then_paths() -> None:
    changes = [
        _change("src/app/a.py", "from .b import thing\n"),
        _change("src/app/b.py", "import app.c\n"),
        _change("src/app/c.py", "x = 1\n"),
        _change("src/app/d.py", "from app import c\n"),
        _change("README.md", "docs\n"),
    ]
    assert dependency_order(changes) == [
        "README.md",
        "src/app/c.py",
        "src/app/b.py",
        "src/app/a.py",
        "src/app/d.py",
    ]


def test_dotted_imports_match_a_deeper_import_root_and_bare_names_do_not() -> None:
    changes = [
        _change("lib/pkg/a.py", "import pkg.b\nimport json\n"),
        _change("lib/pkg/b.py", "x = 1\n"),
        _change("lib/pkg/json.py", "import lib.pkg.a\n"),
    ]
    assert import_graph(changes) == {
        "lib/pkg/a.py": {"lib/pkg/b.py"},
        "lib/pkg/b.py": set(),
        "lib/pkg/json.py": {"lib/pkg/a.py"},
    }
    assert dependency_order(changes) == ["lib/pkg/b.py", "lib/pkg/a.py", "lib/pkg/json.py"]


def test_dependency_order_breaks_cycles_by_path() -> None:
    changes = [
        _change("z.py", "import y\n"),
        _change("y.py", "import x\n"),
        _change("x.py", "import y\n"),
        _change("w.py", "import z\n"),
    ]
    assert dependency_order(changes) == ["x.py", "y.py", "z.py", "w.py"]
    assert dependency_order(list(reversed(changes))) == ["x.py", "y.py", "z.py", "w.py"]


def test_gold_output_plan_and_edits(repo: Path) -> None:
    parent, sha = _feature(repo)
    tests = ["tests/test_core.py"]
    result = gold_output(repo, parent, sha, tests)
    assert result.error is None and result.output is not None
    plan = result.output.plan
    assert plan.summary == (
        "Delete pkg/legacy.py; add `shout` in pkg/util.py; change `Engine.start` in "
        "pkg/core.py; document it in 1 file."
    )
    steps = plan.ordered_steps()
    assert [(step.file, step.symbols, step.description) for step in steps] == [
        ("pkg/legacy.py", [], "Delete the module pkg/legacy.py, which defines `old`"),
        ("pkg/util.py", ["shout"], "Add function `shout(text)` in pkg/util.py"),
        ("pkg/core.py", [], "In pkg/core.py, import `shout`"),
        ("pkg/core.py", ["Engine.start"], "Change method `Engine.start(self)` in pkg/core.py"),
        ("README.md", [], "Update the documentation in README.md"),
    ]
    parts = {part.steps[0].file: part for part in plan.parts}
    assert parts["pkg/core.py"].depends_on == [parts["pkg/util.py"].id]
    assert parts["README.md"].title == "Document the change"
    assert parts["README.md"].depends_on == [part.id for part in plan.parts[:-1]]
    assert {edit.path for edit in result.output.edits} == {step.file for step in steps}
    assert result.output.model_dump_json() == result.raw
    assert (result.prompt_tokens, result.completion_tokens) == (0, 0)

    changes = commit_changes(repo, parent, sha, set(tests))
    alignment = score_alignment(plan, changes, tests)
    assert (alignment.file_precision, alignment.file_recall) == (1.0, 1.0)
    assert (alignment.symbol_precision, alignment.symbol_recall) == (1.0, 1.0)
    assert alignment.order_agreement == 1.0


def test_gold_edits_reproduce_the_commit(repo: Path, tmp_path: Path) -> None:
    parent, sha = _feature(repo)
    result = gold_output(repo, parent, sha, ["tests/test_core.py"])
    assert result.output is not None
    with checkout(repo, parent, tmp_path) as tree, checkout(repo, sha, tmp_path) as expected:
        changed = apply_edits(tree, list(result.output.edits))
        assert sorted(changed) == ["README.md", "pkg/core.py", "pkg/legacy.py", "pkg/util.py"]
        produced = _contents(tree)
        wanted = _contents(expected)
    assert produced.pop("tests/test_core.py") == b"def test_start():\n    pass\n"
    assert wanted.pop("tests/test_core.py") != b"def test_start():\n    pass\n"
    assert produced == wanted


def _contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_gold_refuses_a_commit_of_only_tests(repo: Path) -> None:
    parent = _git(repo, "rev-parse", "HEAD")
    sha = _commit(repo, {"tests/test_core.py": "def test_more():\n    pass\n"}, "tests")
    result = gold_output(repo, parent, sha, ["tests/test_core.py"])
    assert result.output is None
    assert result.error == "the commit changes no files outside its tests"
