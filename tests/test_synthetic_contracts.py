"""Each derived stage example keeps its contract (docs/stage-contracts.md), on real git repos
that reproduce issue 15's defects: trailers and e-mails in prompts, additive commits with empty
scope answers, test files offered as candidates, supporting files missed or made up, plans that
copy the part title, docs ahead of code, and docstring-only changes taken for code."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from test_gold_pipeline import GIT_ENV

from engine.core import stages
from engine.harness.attempts import commit_message
from engine.harness.package import CorpusPackage
from engine.harness.pipeline import PlannerTask
from engine.harness.prompt import build_messages
from engine.intake.manifest import read_manifest
from engine.mining.message import EMAIL, clean_task_text
from engine.training_data import synthetic
from engine.training_data.synthetic import Derivation, Example, derive_examples

NOISY = """fix(wrap): clip long words in fill (#12)

* Clip long words

* Apply suggestions from code review

Co-authored-by: Sam Dev <sam@example.invalid>

* Add truncate

Fixes #12, see GH-7 and octo/textkit#9: https://example.invalid/issues/12
Reported-by: Jane Dev <jane@example.invalid>

---------

Co-authored-by: Sam Dev <sam@example.invalid>
Signed-off-by: Jane Dev <jane@example.invalid>
"""
CLEAN = "Clip long words in fill"
TESTS = ["tests/test_wrap.py"]

WRAP_OLD = '''"""Wrapping."""

import typing

from . import _compat


def fill(text, width):
    """Fill text to width."""
    return _compat.text_type(text)[:width]
'''
WRAP_NEW = '''"""Wrapping."""

import typing

from . import _compat


def fill(text, width):
    """Fill text to width."""
    return _clip(_compat.text_type(text), width)


def _clip(text, width):
    return text[:width]
'''
TRUNCATE = '''"""Truncation."""

from .wrap import fill


def truncate(text, width):
    return fill(text, width - 1) + "~"
'''
CENTER = "from .wrap import fill\n\n\ndef center(text):\n    return text\n"
NOISE_FILES = {f"assets/deep/folder/number/{n:03}.txt": f"{n}\n" for n in range(300)}


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, capture_output=True, check=True, text=True
    )
    return result.stdout.strip()


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    """A src-layout package; a squash-merged commit that changes code, adds a module, a
    changelog entry, docs, a test and test data; an additive commit; a docstring-only commit."""
    repo = tmp_path_factory.mktemp("contracts") / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    parent = _commit(
        repo,
        {
            "README.md": "# textkit\n",
            "CHANGES.rst": "Changes\n=======\n",
            "docs/api.rst": "API\n===\n",
            "src/textkit/__init__.py": "from .wrap import fill\n",
            "src/textkit/typing.py": "Width = int\n",
            "src/textkit/_compat.py": "def text_type(value):\n    return str(value)\n",
            "src/textkit/wrap.py": WRAP_OLD,
            "tests/test_wrap.py": "def test_fill():\n    pass\n",
            "tests/data/sample.yml": "a: 1\n",
        },
        "Start textkit",
    )
    sha = _commit(
        repo,
        {
            "CHANGES.rst": "Changes\n=======\n\n- Clip long words.\n",
            "docs/api.rst": "API\n===\n\n.. autofunction:: textkit.truncate.truncate\n",
            "changelog.d/12.change.md": "Clip long words.\n",
            "src/textkit/wrap.py": WRAP_NEW,
            "src/textkit/truncate.py": TRUNCATE,
            "tests/test_wrap.py": "def test_fill():\n    assert True\n",
            "tests/data/sample.yml": "a: 2\n",
        },
        NOISY,
    )
    additive = _commit(
        repo,
        {"src/textkit/center.py": CENTER},
        "Add a centring helper",
    )
    docstring = _commit(
        repo,
        {"src/textkit/wrap.py": WRAP_NEW.replace("Fill text to width.", "Fill text to a width.")},
        "Reword the fill docstring",
    )
    return {
        "repo": repo,
        "parent": parent,
        "sha": sha,
        "additive": additive,
        "docstring": docstring,
    }


@pytest.fixture(scope="module")
def derivation(history: dict[str, str | Path]) -> Derivation:
    return derive_examples(
        Path(history["repo"]), str(history["parent"]), str(history["sha"]), NOISY, TESTS
    )


def _all(derivation: Derivation, stage: str) -> list[Example]:
    return [example for example in derivation.examples if example.stage == stage]


def _one(derivation: Derivation, stage: str) -> Example:
    [example] = _all(derivation, stage)
    return example


def _answer(example: Example) -> dict:
    return json.loads(example.messages[-1].content)


def test_the_cleaner_drops_trailers_references_urls_emails_and_squash_noise() -> None:
    """Subject and body lose `(#12)`, `Fixes #12`, GH-7, owner/repo#9, URLs, e-mails, every
    `Xxx-by:` trailer, GitHub's squash list and separator; cleaning twice changes nothing."""
    assert clean_task_text(NOISY) == CLEAN
    assert clean_task_text(CLEAN) == CLEAN
    prose = "Add truncate\n\nIt cuts text.\n\n* keeps words\n* adds a marker\n\nAcked-by: A <a@b.c>"
    assert (
        clean_task_text(prose) == "Add truncate\n\nIt cuts text.\n\n* keeps words\n* adds a marker"
    )


def test_no_prompt_carries_an_email_trailer_or_reference(derivation: Derivation) -> None:
    """Every stage's prompt holds the cleaned task and nothing of the raw message's noise."""
    assert derivation.examples
    for example in derivation.examples:
        user = example.messages[1].content
        assert re.search(f"Task:\n{CLEAN}(\n|$)", user), example.stage
        assert not EMAIL.search(user), example.stage
        for noise in ("example.invalid", "-by:", "#12", "GH-7", "http", "-----", "Apply sugg"):
            assert noise not in user, (example.stage, noise)


def test_task_analysis_sees_the_tree_and_separates_changed_from_created(
    derivation: Derivation,
) -> None:
    """The prompt carries the parent's tree without test files; the answer says what to change
    (not the subject again), which files change and which are created."""
    example = _one(derivation, "task_analysis")
    assert _answer(example) == {
        "summary": "Add `_clip`, change `fill` in src/textkit/wrap.py; create "
        "src/textkit/truncate.py with `truncate`; document it in 1 file; add a changelog entry.",
        "files": ["CHANGES.rst", "docs/api.rst", "src/textkit/wrap.py"],
        "create": ["changelog.d/12.change.md", "src/textkit/truncate.py"],
        "symbols": {
            "src/textkit/truncate.py": ["truncate"],
            "src/textkit/wrap.py": ["_clip", "fill"],
        },
    }
    tree = example.messages[1].content.split("Repository files:\n")[1].splitlines()
    assert "src/textkit/wrap.py" in tree and "assets/deep/folder/number/000.txt" not in tree
    assert not [path for path in tree if path.startswith("tests/")]


def test_a_tree_over_the_budget_is_cut_but_keeps_the_answer(
    history: dict[str, str | Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the 8K budget, the tree keeps every file the answer names, shallow paths first, and
    says how many paths it leaves out; the example stays within the budget."""
    repo = tmp_path / "big"
    _git(tmp_path, "clone", "-q", str(history["repo"]), str(repo))
    parent = _commit(repo, NOISE_FILES, "Add assets")
    sha = _commit(repo, {"src/textkit/wrap.py": WRAP_OLD.replace("[:width]", "[: width]")}, CLEAN)
    monkeypatch.setitem(stages.TOKEN_BUDGET, "task_analysis", 1000)
    [example] = _all(derive_examples(repo, parent, sha, CLEAN, []), "task_analysis")
    tree = example.messages[1].content.split("Repository files:\n")[1].splitlines()
    assert "src/textkit/wrap.py" in tree and "README.md" in tree
    listed = _git(repo, "ls-tree", "-r", "--name-only", parent).splitlines()
    candidates = [path for path in listed if not path.startswith("tests/")]
    assert tree[-1] == f"({len(candidates) - (len(tree) - 1)} more paths not shown)"
    assert set(tree[:-1]) < set(candidates)
    assert example.prompt_tokens + example.completion_tokens <= 1000


def test_scope_offers_no_tests_and_names_created_and_imported_files(
    derivation: Derivation,
) -> None:
    """Relevant and create are separate; supporting is what the changed and created files
    import in the src layout (a relative `from . import _compat`, `from .wrap import fill`), never
    the package `__init__` of `from . import x` nor `pkg/typing.py` for the stdlib's `typing`;
    test files, data included, are no candidates."""
    example = _one(derivation, "scope")
    assert _answer(example) == {
        "relevant": ["CHANGES.rst", "docs/api.rst", "src/textkit/wrap.py"],
        "create": ["changelog.d/12.change.md", "src/textkit/truncate.py"],
        "supporting": ["src/textkit/_compat.py"],
        "irrelevant": ["README.md", "src/textkit/__init__.py", "src/textkit/typing.py"],
    }
    assert "tests/" not in example.messages[1].content


def test_an_additive_commit_has_a_scope_answer(history: dict[str, str | Path]) -> None:
    """A commit that only adds a file answers with it under create, not an empty answer."""
    repo = Path(history["repo"])
    result = derive_examples(repo, str(history["sha"]), str(history["additive"]), "Add it", [])
    assert _answer(_one(result, "scope")) == {
        "relevant": [],
        "create": ["src/textkit/center.py"],
        "supporting": ["src/textkit/wrap.py"],
        "irrelevant": [
            "CHANGES.rst",
            "README.md",
            "changelog.d/12.change.md",
            "docs/api.rst",
            "src/textkit/__init__.py",
            "src/textkit/_compat.py",
            "src/textkit/truncate.py",
            "src/textkit/typing.py",
        ],
    }


def test_a_docstring_only_change_has_no_primary_symbol(history: dict[str, str | Path]) -> None:
    """Rewording a docstring changes no code: precision is skipped with the reason, and the plan
    says it touches up the docstring rather than changing the function."""
    repo = Path(history["repo"])
    result = derive_examples(repo, str(history["additive"]), str(history["docstring"]), "Re", [])
    assert "precision" not in [example.stage for example in result.examples]
    [skipped] = [s for s in result.skipped if s.stage == "precision"]
    assert "adds, changes or removes no Python symbol" in skipped.reason
    [step_plan] = _all(result, "step_plan")
    assert _answer(step_plan)["steps"] == [
        {
            "description": "Touch up the docstrings or comments of `fill` in src/textkit/wrap.py",
            "file": "src/textkit/wrap.py",
            "symbols": ["fill"],
        }
    ]


def test_precision_lists_every_primary_symbol_or_creates_it(derivation: Derivation) -> None:
    """Primary holds the changed symbols of the listed files and those of the created file."""
    answer = _answer(_one(derivation, "precision"))
    assert answer["primary"] == {
        "src/textkit/truncate.py": ["truncate"],
        "src/textkit/wrap.py": ["_clip", "fill"],
    }
    assert answer["supporting"] == {"src/textkit/_compat.py": ["text_type"]}


def test_plans_put_definitions_before_uses_and_docs_last(derivation: Derivation) -> None:
    """Parts follow imports and end with the docs and changelog; each step says what to do to
    which symbol, definitions before their uses (`_clip` before the `fill` that calls it). The
    test data the commit changes is part of the gold edits (the harness overlays only the
    Python test files), so the plan carries it too."""
    meta = _answer(_one(derivation, "meta_plan"))
    assert meta["parts"] == [
        {"id": "part-1", "title": "Update src/textkit/wrap.py: _clip, fill", "depends_on": []},
        {
            "id": "part-2",
            "title": "Create src/textkit/truncate.py: truncate",
            "depends_on": ["part-1"],
        },
        {"id": "part-3", "title": "Update tests/data/sample.yml", "depends_on": []},
        {
            "id": "part-4",
            "title": "Document the change and record it in the changelog",
            "depends_on": ["part-1", "part-2", "part-3"],
        },
    ]
    steps = [[s["description"] for s in _answer(e)["steps"]] for e in _all(derivation, "step_plan")]
    assert steps == [
        [
            "Add function `_clip(text, width)` in src/textkit/wrap.py",
            "Change function `fill(text, width)` in src/textkit/wrap.py",
        ],
        [
            "In src/textkit/truncate.py, import `fill`",
            "Add function `truncate(text, width)` in src/textkit/truncate.py",
        ],
        ["Edit tests/data/sample.yml: 1 line added, 1 removed"],
        [
            "Update the documentation in docs/api.rst",
            "Describe the change in the changelog CHANGES.rst",
            "Add the changelog entry changelog.d/12.change.md",
        ],
    ]


def test_a_step_plan_prompt_shows_only_its_part(derivation: Derivation) -> None:
    """No step repeats its part's title; a part's prompt holds its own files' source only."""
    wrap, truncate, data, docs = _all(derivation, "step_plan")
    for example in (wrap, truncate, data, docs):
        title = json.loads(example.messages[1].content.split("Part:\n")[1])["title"]
        assert all(step["description"] != title for step in _answer(example)["steps"])
    assert "### src/textkit/wrap.py\n" in wrap.messages[1].content
    assert "CHANGES.rst" not in wrap.messages[1].content
    assert "(this part only adds files)" in truncate.messages[1].content
    assert re.search(
        r"### CHANGES.rst\n\(documentation, 2 lines, not shown\)", docs.messages[1].content
    )
    assert "def fill" not in docs.messages[1].content
    meta = _one(derivation, "meta_plan").messages[1].content
    assert "def fill" in meta and "(documentation, 2 lines, not shown)" in meta


def test_the_harness_prompt_carries_the_cleaned_task(valid_package: Path) -> None:
    """The planner's instruction is the cleaned message: no e-mail address, trailer line,
    reference or squash list reaches the harness prompt."""
    repo = valid_package / "repo"
    _git(repo, "commit", "-q", "--allow-empty", "-m", NOISY)
    sha = _git(repo, "rev-parse", "HEAD")
    package = CorpusPackage(
        digest="d1", root=valid_package, manifest=read_manifest(valid_package, 10_000_000)
    )
    instruction = commit_message(package, sha)
    assert instruction == CLEAN
    task = PlannerTask(
        task="t",
        repo="textkit",
        instruction=instruction,
        parent=sha,
        worktree="/anywhere",
        context="(none)",
        context_tokens=2,
        model="m",
        temperature=0.0,
        seed=1,
    )
    user = build_messages(task)[1]["content"]
    assert f"Instruction (the commit message to implement):\n{CLEAN}\n\n" in user
    assert not EMAIL.search(user) and "-by:" not in user and "#12" not in user


PYPROJECT = '[project]\nname = "textkit"\nversion = "1"\nauthors = [{email = "jane@example.org"}]\n'


def test_repository_emails_are_redacted_and_edits_with_one_are_skipped(tmp_path: Path) -> None:
    """An author's address in a file shown is redacted in every prompt; an image's `@2x` name is
    no address; an example whose edits would carry an address is skipped with the reason."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    files = {"pyproject.toml": PYPROJECT, "docs/_static/icon@2x.png": "png\n", "tk.py": "A = 1\n"}
    parent = _commit(repo, files, "Start")
    bump = {"pyproject.toml": PYPROJECT.replace('"1"', '"2"'), "tk.py": "A = 2\n"}
    sha = _commit(repo, bump, "Raise A to two")
    result = derive_examples(repo, parent, sha, "Raise A to two", [])
    assert {"task_analysis", "execute_code", "meta_plan"} <= {e.stage for e in result.examples}
    for example in result.examples:
        assert not EMAIL.search(example.messages[1].content), example.stage
    assert "docs/_static/icon@2x.png" in _one(result, "scope").messages[1].content
    assert "<redacted e-mail>" in _one(result, "execute_code").messages[1].content

    moved = {"pyproject.toml": PYPROJECT.replace("jane@", "j.dev@"), "tk.py": "A = 3\n"}
    again = _commit(repo, moved, "Raise A to three")
    result = derive_examples(repo, sha, again, "Raise A to three", [])
    [skipped] = [s for s in result.skipped if s.stage == "execute_code"]
    assert skipped.reason.endswith("the edits to pyproject.toml carry an e-mail address")


BIG = '''"""Big."""

import os

LIMIT = 3


def keep(a, b=1):
    return a + b


class Box:
    size = 1

    def open(self):
        return self.size

    def close(self):
        return 0


def change(x):
    return x
'''


def test_a_big_file_is_shown_to_a_plan_as_outline_and_touched_symbols(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the full-file limit, a plan's prompt keeps the module-level code and the symbols the
    change modifies whole, and one outline line for every other symbol; execute_code still sees
    the whole file, since its search texts must match it."""
    monkeypatch.setattr(synthetic, "_FULL_FILE_TOKENS", 10)
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    parent = _commit(repo, {"big.py": BIG}, "Start")
    new = BIG.replace("return x", "return x * LIMIT").replace("return 0", "return -1")
    sha = _commit(repo, {"big.py": new}, "Scale change by the limit")
    result = derive_examples(repo, parent, sha, "Scale change by the limit", [])
    [step_plan] = _all(result, "step_plan")
    context = step_plan.messages[1].content.split("Task:\n")[0]
    assert context == (
        "Files before the change:\n### big.py (23 lines: module-level code and the symbols the "
        'change touches in full, the rest as outlines)\n```\n"""Big."""\n\nimport os\n\n'
        "LIMIT = 3\n\n\ndef keep(a, b=1): ...  # 2 lines not shown\n\n\nclass Box:\n"
        "    def open(self): ...  # 2 lines not shown\n"
        "    def close(self):\n        return 0\n\n\ndef change(x):\n    return x\n```\n\n"
    )
    assert BIG in _one(result, "execute_code").messages[1].content
