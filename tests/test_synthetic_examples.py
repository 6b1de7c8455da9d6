"""Synthetic per-stage training examples derived from a real commit in a real git repository."""

import json
import subprocess
from pathlib import Path

import pytest
from test_gold_pipeline import GIT_ENV

from engine.core import stages
from engine.core.errors import CraError
from engine.core.stages import BASE_MODEL, STAGES, TOKEN_BUDGET
from engine.harness.edits import apply_edits
from engine.harness.plan import Edit
from engine.harness.worktrees import checkout
from engine.training_data.synthetic import (
    Derivation,
    Example,
    ExampleTooLong,
    SyntheticError,
    derive_examples,
)
from engine.training_data.templates import TEMPLATES, render

MESSAGE = "Title cores as URL slugs\n\nCore.title now returns a lower-case, dash-joined slug."
TEST_FILES = ["tests/test_core.py"]

BASE = '''"""Base."""


class Base:
    def describe(self):
        return type(self).__name__
'''
UTIL_OLD = '"""Text helpers."""\n\n\ndef lower(text):\n    return text.lower()\n'
UTIL_NEW = UTIL_OLD + '\n\ndef slug(text):\n    return lower(text).replace(" ", "-")\n'
CORE_OLD = '''"""Core."""

from pkg.base import Base


class Core(Base):
    def __init__(self, name):
        self.name = name

    def title(self):
        return self.name.title()

    def size(self):
        return len(self.name)
'''
CORE_NEW = CORE_OLD.replace(
    "from pkg.base import Base\n", "from pkg import util\nfrom pkg.base import Base\n"
).replace("return self.name.title()", "return util.slug(self.name)")
OTHER = "def unrelated():\n    return 42\n"
TEST_OLD = (
    'from pkg.core import Core\n\n\ndef test_title():\n    assert Core("a b").title() == "A B"\n'
)
TEST_NEW = (
    "from pkg.core import Core\n\n\ndef test_title():\n"
    '    assert Core("a b").title() == "a-b"\n\n\ndef test_title_spaces():\n'
    '    assert Core("A  B").title() == "a--b"\n'
)


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, capture_output=True, check=True, text=True
    )
    return result.stdout.strip()


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    """(repo, parent, the slug commit, a commit that only changes a test file)."""
    repo = tmp_path_factory.mktemp("synthetic") / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    parent = _commit(
        repo,
        {
            "README.md": "# pkg\n",
            "pkg/__init__.py": "",
            "pkg/base.py": BASE,
            "pkg/util.py": UTIL_OLD,
            "pkg/core.py": CORE_OLD,
            "pkg/other.py": OTHER,
            "tests/test_core.py": TEST_OLD,
        },
        "Start the package",
    )
    sha = _commit(
        repo,
        {"pkg/util.py": UTIL_NEW, "pkg/core.py": CORE_NEW, "tests/test_core.py": TEST_NEW},
        MESSAGE,
    )
    tests_only = _commit(repo, {"tests/test_core.py": TEST_NEW + "\n# more\n"}, "Note more tests")
    return repo, parent, sha, tests_only


@pytest.fixture(scope="module")
def derivation(history: tuple[Path, str, str, str]) -> Derivation:
    repo, parent, sha, _ = history
    return derive_examples(repo, parent, sha, MESSAGE, TEST_FILES)


def _only(derivation: Derivation, stage: str) -> Example:
    found = [example for example in derivation.examples if example.stage == stage]
    assert len(found) == 1, [example.stage for example in derivation.examples]
    return found[0]


def _answer(example: Example) -> object:
    assert [m.role for m in example.messages] == ["system", "user", "assistant"]
    return json.loads(example.messages[-1].content)


def test_stage_tables_cover_every_stage() -> None:
    assert STAGES[-1] == "execute_code"
    assert [s for s in STAGES if BASE_MODEL[s] == "coding"] == ["execute_code"]
    assert {BASE_MODEL[s] for s in STAGES if s != "execute_code"} == {"reasoning"}
    assert TOKEN_BUDGET["task_analysis"] == 8192
    assert {TOKEN_BUDGET[s] for s in STAGES if s != "task_analysis"} == {32768}
    assert set(TEMPLATES) == set(STAGES) - {"planning_dpo"}


def test_render_refuses_fields_the_template_does_not_take() -> None:
    with pytest.raises(ValueError, match="takes fields \\['files', 'task'\\]"):
        render("scope", task="t")
    _, user = render("scope", task="Do {x}", files="a.py")
    assert user == "Task:\nDo {x}\n\nRepository files:\na.py"


def test_every_stage_is_derived_once_per_unit(derivation: Derivation) -> None:
    assert derivation.skipped == []
    assert [example.stage for example in derivation.examples] == [
        "task_analysis",
        "scope",
        "precision",
        "execute_code",
        "meta_plan",
        "step_plan",
        "step_plan",
        "test_plan",
    ]
    for example in derivation.examples:
        assert example.base_model == BASE_MODEL[example.stage]
        assert example.source == "synthetic"
        assert set(example.row()) == {"messages"}
        assert example.prompt_tokens > 0
        assert example.completion_tokens > 0


def test_the_instruction_is_the_commit_message_never_the_new_code(
    derivation: Derivation,
) -> None:
    for example in derivation.examples:
        user = example.messages[1].content
        assert MESSAGE in user, example.stage
        assert "def slug" not in user or example.stage == "test_plan", example.stage
    assert "def lower(text)" in _only(derivation, "execute_code").messages[1].content


def test_task_analysis_names_the_changed_files_and_symbols(derivation: Derivation) -> None:
    """The summary says what to change (not the subject again); the prompt holds the tree."""
    example = _only(derivation, "task_analysis")
    assert _answer(example) == {
        "summary": "Add `slug` in pkg/util.py; change `Core.title` in pkg/core.py.",
        "files": ["pkg/core.py", "pkg/util.py"],
        "create": [],
        "symbols": {"pkg/core.py": ["Core.title"], "pkg/util.py": ["slug"]},
    }
    assert example.messages[1].content == (
        f"Task:\n{MESSAGE}\n\nRepository files:\nREADME.md\npkg/__init__.py\npkg/base.py\n"
        "pkg/core.py\npkg/other.py\npkg/util.py"
    )


def test_scope_classifies_the_parent_files(derivation: Derivation) -> None:
    example = _only(derivation, "scope")
    assert _answer(example) == {
        "relevant": ["pkg/core.py", "pkg/util.py"],
        "create": [],
        "supporting": ["pkg/base.py"],
        "irrelevant": ["README.md", "pkg/__init__.py", "pkg/other.py"],
    }
    assert "tests/test_core.py" not in example.messages[1].content


def test_precision_tiers_symbols_by_file(derivation: Derivation) -> None:
    example = _only(derivation, "precision")
    assert _answer(example) == {
        "primary": {"pkg/core.py": ["Core.title"], "pkg/util.py": ["slug"]},
        "supporting": {"pkg/util.py": ["lower"]},
        "excluded": {
            "pkg/base.py": ["Base", "Base.describe"],
            "pkg/core.py": ["Core", "Core.__init__", "Core.size"],
        },
    }
    assert "  Core.title: def title(self)" in example.messages[1].content


def test_execute_code_edits_reproduce_the_commit(
    history: tuple[Path, str, str, str], derivation: Derivation
) -> None:
    repo, parent, sha, _ = history
    edits = [Edit.model_validate(e) for e in _answer(_only(derivation, "execute_code"))]
    with checkout(repo, parent) as before, checkout(repo, sha) as after:
        assert apply_edits(before, edits) == ["pkg/util.py", "pkg/core.py"]
        for rel in ("pkg/util.py", "pkg/core.py"):
            assert (before / rel).read_text() == (after / rel).read_text()
        assert (before / "tests/test_core.py").read_text() == TEST_OLD


def test_plans_order_util_before_core(derivation: Derivation) -> None:
    meta = _answer(_only(derivation, "meta_plan"))
    assert meta == {
        "summary": "Add `slug` in pkg/util.py; change `Core.title` in pkg/core.py.",
        "parts": [
            {"id": "part-1", "title": "Update pkg/util.py: slug", "depends_on": []},
            {"id": "part-2", "title": "Update pkg/core.py: Core.title", "depends_on": ["part-1"]},
        ],
    }
    steps = [e for e in derivation.examples if e.stage == "step_plan"]
    assert [_answer(e)["steps"] for e in steps] == [
        [
            {
                "description": "Add function `slug(text)` in pkg/util.py",
                "file": "pkg/util.py",
                "symbols": ["slug"],
            }
        ],
        [
            {
                "description": "In pkg/core.py, import `util`",
                "file": "pkg/core.py",
                "symbols": [],
            },
            {
                "description": "Change method `Core.title(self)` in pkg/core.py",
                "file": "pkg/core.py",
                "symbols": ["Core.title"],
            },
        ],
    ]
    assert '"depends_on": [\n    "part-1"\n  ]' in steps[1].messages[1].content


def test_test_plan_targets_the_changed_tests(derivation: Derivation) -> None:
    example = _only(derivation, "test_plan")
    assert _answer(example) == {
        "files": ["tests/test_core.py"],
        "tests": {"tests/test_core.py": ["test_title", "test_title_spaces"]},
    }
    user = example.messages[1].content
    assert "+        return util.slug(self.name)" in user
    assert "tests/test_core.py" not in user


def test_an_example_over_budget_is_skipped_with_the_reason(
    history: tuple[Path, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, parent, sha, _ = history
    monkeypatch.setitem(stages.TOKEN_BUDGET, "scope", 10)
    result = derive_examples(repo, parent, sha, MESSAGE, TEST_FILES)
    assert "scope" not in [example.stage for example in result.examples]
    assert len(result.examples) == 7
    [skipped] = result.skipped
    assert skipped.stage == "scope"
    assert f"scope example for commit {sha}: " in skipped.reason
    assert "exceed the stage's budget of 10; it is not truncated" in skipped.reason
    assert issubclass(ExampleTooLong, CraError)


def test_a_commit_changing_only_tests_gives_no_code_stages(
    history: tuple[Path, str, str, str],
) -> None:
    repo, _, sha, tests_only = history
    result = derive_examples(repo, sha, tests_only, "Note more tests", TEST_FILES)
    assert result.examples == []
    assert [s.stage for s in result.skipped] == [
        "task_analysis",
        "scope",
        "precision",
        "execute_code",
        "meta_plan",
        "step_plan",
    ]
    reasons = [s.reason.split(": ", 1)[1] for s in result.skipped]
    assert reasons[:2] == [
        "the task_analysis answer would have nothing to change or create outside the tests",
        "the scope answer would have nothing to change or create outside the tests",
    ]
    assert reasons[2].startswith("the change adds, changes or removes no Python symbol")
    assert all("the commit changes no files outside its tests" in r for r in reasons[3:])


def test_an_empty_message_is_refused(history: tuple[Path, str, str, str]) -> None:
    repo, parent, sha, _ = history
    with pytest.raises(SyntheticError, match=f"commit {sha} has an empty message"):
        derive_examples(repo, parent, sha, "  \n", TEST_FILES)


def test_the_same_commit_gives_byte_identical_output(
    history: tuple[Path, str, str, str], derivation: Derivation
) -> None:
    repo, parent, sha, _ = history
    again = derive_examples(repo, parent, sha, MESSAGE, TEST_FILES)
    assert again.model_dump_json() == derivation.model_dump_json()
