"""Synthetic training examples for each pipeline stage, reconstructed from one commit.

Seed 004 §6.3: a commit says what a correct pipeline run should have produced. The commit
message is the task at every stage (NL-to-code, never the pre-commit code as the instruction);
the diff gives the answers:

- task_analysis: the task -> the files and symbols it concerns.
- scope: the task and the parent's files -> relevant (changed, outside the tests), supporting
  (files the changed files import, before or after the change) and irrelevant (the rest).
  Candidates are the files that exist at the parent, so a file the commit adds is not one.
- precision: the task and the symbols of the relevant and supporting files at the parent ->
  primary (added, changed or removed), supporting (parent symbols the new code of the changed
  symbols uses) and excluded (the rest), each by file.
- execute_code: the pre-commit source of the changed files and the task -> the commit's
  search/replace edits (engine.harness.gold).
- meta_plan / step_plan: the same context -> the gold plan's parts, then each part's steps.
- test_plan: only for a commit changing test files and others: the task and the code diff ->
  the test files changed and the test functions added or changed.

The commit's test files are hidden from every stage but test_plan, as the harness hides them.
A stage whose example does not fit its token budget is skipped with the reason, never truncated.
The same commit always gives the same `Derivation.model_dump_json()`, byte for byte.
"""

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.errors import CraError
from engine.gitsafe import run_git
from engine.harness.ast_diff import FileChange, commit_changes, from_base, module_name
from engine.harness.gold import gold_output
from engine.harness.plan import PlannerOutput
from engine.harness.repo_index import FileEntry, RepoIndex, build_index
from engine.harness.retrieve import count_tokens
from engine.harness.worktrees import checkout
from engine.training_data.items import Message
from engine.training_data.stages import BASE_MODEL, TOKEN_BUDGET, BaseModelKind, Stage
from engine.training_data.templates import render

_SymbolNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_ByFile = dict[str, list[str]]


class SyntheticError(CraError):
    """A commit, or one stage of it, yields no synthetic example; the message says why."""


class ExampleTooLong(SyntheticError):
    """A stage's example takes more tokens than the stage's budget."""

    def __init__(self, stage: Stage, sha: str, tokens: int, budget: int) -> None:
        super().__init__(
            f"{stage} example for commit {sha}: {tokens} tokens (prompt and answer) exceed the "
            f"stage's budget of {budget}; it is not truncated"
        )
        self.stage = stage
        self.sha = sha
        self.tokens = tokens
        self.budget = budget


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Model):
    """One training example and its provenance; `row()` is what a TRL dataset holds."""

    stage: Stage
    base_model: BaseModelKind
    messages: list[Message]
    source: Literal["synthetic"] = "synthetic"
    sha: str
    prompt_tokens: int
    completion_tokens: int

    def row(self) -> dict[str, list[dict[str, str]]]:
        """The TRL conversational row, without provenance columns (TRL refuses extra keys)."""
        return {"messages": [message.model_dump() for message in self.messages]}


class Skipped(_Model):
    """A stage of the commit that gave no example, and why."""

    stage: Stage
    reason: str


class Derivation(_Model):
    """The examples one commit gives, in stage order, and the stages it could not give."""

    examples: list[Example]
    skipped: list[Skipped]


class _Commit(_Model):
    """What the stages read about one commit."""

    sha: str
    task: str
    subject: str
    code: list[FileChange]
    tests: list[FileChange]
    candidates: list[str]
    parent_index: RepoIndex
    new_index: RepoIndex
    gold: PlannerOutput | None
    gold_error: str | None
    diff: str


class _Draft(_Model):
    stage: Stage
    system: str
    user: str
    answer: str


def derive_examples(
    repo: Path, parent: str, sha: str, message: str, test_files: list[str]
) -> Derivation:
    """Every synthetic example `sha` (a child of `parent` in `repo`) gives; see the module doc."""
    commit = _read_commit(repo, parent, sha, message, test_files)
    examples: list[Example] = []
    skipped: list[Skipped] = []
    for stage, build in _BUILDERS.items():
        try:
            drafts = build(commit)
        except SyntheticError as exc:
            skipped.append(Skipped(stage=stage, reason=str(exc)))
            continue
        for draft in drafts:
            try:
                examples.append(_example(draft, sha))
            except ExampleTooLong as exc:
                skipped.append(Skipped(stage=stage, reason=str(exc)))
    return Derivation(examples=examples, skipped=skipped)


def _read_commit(repo: Path, parent: str, sha: str, message: str, test_files: list[str]) -> _Commit:
    task = message.strip()
    if not task:
        raise SyntheticError(f"commit {sha} has an empty message, so there is no task")
    hidden = set(test_files)
    changes = commit_changes(repo, parent, sha, exclude=())
    code = [change for change in changes if change.path not in hidden]
    with checkout(repo, parent) as tree:
        parent_index = build_index(tree)
    with checkout(repo, sha) as tree:
        new_index = build_index(tree)
    gold = gold_output(repo, parent, sha, test_files, task.splitlines()[0])
    git_dir = f"--git-dir={repo / '.git'}"
    listed = run_git(repo, git_dir, "ls-tree", "-r", "-z", "--name-only", parent).stdout
    return _Commit(
        sha=sha,
        task=task,
        subject=task.splitlines()[0],
        code=code,
        tests=[change for change in changes if change.path in hidden],
        candidates=sorted(p for p in _decoded(listed, sha).split("\0") if p and p not in hidden),
        parent_index=parent_index,
        new_index=new_index,
        gold=gold.output,
        gold_error=gold.error,
        diff=_code_diff(repo, git_dir, parent, sha, [change.path for change in code]),
    )


def _code_diff(repo: Path, git_dir: str, parent: str, sha: str, paths: list[str]) -> str:
    if not paths:
        return ""
    out = run_git(
        repo,
        git_dir,
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-renames",
        parent,
        sha,
        "--",
        *paths,
    ).stdout
    return _decoded(out, sha)


def _decoded(data: bytes, sha: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SyntheticError(f"commit {sha}: git output is not UTF-8 ({exc.reason})") from exc


def _example(draft: _Draft, sha: str) -> Example:
    prompt_tokens = count_tokens(draft.system) + count_tokens(draft.user)
    completion_tokens = count_tokens(draft.answer)
    budget = TOKEN_BUDGET[draft.stage]
    if prompt_tokens + completion_tokens > budget:
        raise ExampleTooLong(draft.stage, sha, prompt_tokens + completion_tokens, budget)
    return Example(
        stage=draft.stage,
        base_model=BASE_MODEL[draft.stage],
        messages=[
            Message(role="system", content=draft.system),
            Message(role="user", content=draft.user),
            Message(role="assistant", content=draft.answer),
        ],
        sha=sha,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _draft(stage: Stage, answer: object, **values: str) -> _Draft:
    system, user = render(stage, **values)
    return _Draft(stage=stage, system=system, user=user, answer=_json(answer))


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _task_analysis(commit: _Commit) -> list[_Draft]:
    answer = {
        "summary": commit.subject,
        "files": sorted(change.path for change in commit.code),
        "symbols": _primary(commit),
    }
    return [_draft("task_analysis", answer, task=commit.task)]


def _scope(commit: _Commit) -> list[_Draft]:
    relevant = _relevant(commit)
    supporting = _supporting_files(commit)
    answer = {
        "relevant": relevant,
        "supporting": supporting,
        "irrelevant": [p for p in commit.candidates if p not in {*relevant, *supporting}],
    }
    return [_draft("scope", answer, task=commit.task, files="\n".join(commit.candidates))]


def _relevant(commit: _Commit) -> list[str]:
    """The changed files outside the tests that exist at the parent."""
    return sorted(change.path for change in commit.code if change.status != "added")


def _supporting_files(commit: _Commit) -> list[str]:
    """Parent files, not themselves changed, that a changed file imports before or after."""
    changed = {change.path for change in commit.code}
    imported: set[str] = set()
    for index in (commit.parent_index, commit.new_index):
        for entry in index.files:
            if entry.path in changed:
                imported.update(f for imp in entry.imports for f in imp.files)
    return sorted((imported & set(commit.candidates)) - changed)


def _precision(commit: _Commit) -> list[_Draft]:
    primary = _primary(commit)
    entries = _entries(commit.parent_index)
    shown = [p for p in [*_relevant(commit), *_supporting_files(commit)] if p in entries]
    shown.sort()
    used = _referenced(commit)
    supporting: _ByFile = {}
    excluded: _ByFile = {}
    for path in shown:
        names = {symbol.name for symbol in entries[path].symbols} - set(primary.get(path, []))
        supporting[path] = sorted(names & used.get(path, set()))
        excluded[path] = sorted(names - set(supporting[path]))
    answer = {
        "primary": primary,
        "supporting": {path: names for path, names in supporting.items() if names},
        "excluded": {path: names for path, names in excluded.items() if names},
    }
    listing = "\n".join(_outline(entries[path]) for path in shown) or "(no Python files)"
    return [_draft("precision", answer, task=commit.task, symbols=listing)]


def _entries(index: RepoIndex) -> dict[str, FileEntry]:
    return {entry.path: entry for entry in index.files}


def _primary(commit: _Commit) -> _ByFile:
    """The symbols each changed Python file outside the tests adds, changes or removes."""
    found: _ByFile = {}
    for change in commit.code:
        if change.symbols is not None:
            names = {*change.symbols.added, *change.symbols.modified, *change.symbols.removed}
            if names:
                found[change.path] = sorted(names)
    return found


def _outline(entry: FileEntry) -> str:
    if entry.error is not None:
        return f"{entry.path}\n  (no symbols: {entry.error})"
    lines = [f"  {symbol.name}: {symbol.signature}" for symbol in entry.symbols]
    return "\n".join([entry.path, *(lines or ["  (no symbols)"])])


def _referenced(commit: _Commit) -> dict[str, set[str]]:
    """For each file, the symbols that the new text of the added or changed symbols names:
    a top-level name of its own file, a name imported from a repository module, an attribute
    of such a module or class, or `self.x` / `cls.x` inside a class. Unknown names are kept
    here and dropped by the caller, which keeps only symbols defined at the parent."""
    modules: dict[str, str] = {}
    for entry in commit.new_index.files:
        modules.setdefault(entry.module, entry.path)
    found: dict[str, set[str]] = {}
    for change in commit.code:
        if change.new is None or change.symbols is None or change.symbols.parse_error:
            continue
        touched = set(change.symbols.touched)
        tree = ast.parse(change.new)
        local = {node.name for node in tree.body if isinstance(node, _SymbolNode)}
        bindings = _bindings(change.path, tree, modules)
        for name, node, owner in _symbol_nodes(tree.body, "", None):
            if name in touched:
                refs = _references(_own_nodes(node), change.path, owner, local, bindings)
                for path, symbol in refs:
                    found.setdefault(path, set()).add(symbol)
    return found


def _symbol_nodes(
    body: list[ast.stmt], prefix: str, owner: str | None
) -> Iterator[tuple[str, _SymbolNode, str | None]]:
    """(dotted name, node, enclosing class's dotted name) for every symbol under `body`."""
    for node in body:
        if isinstance(node, _SymbolNode):
            name = prefix + node.name
            yield name, node, owner
            if isinstance(node, ast.ClassDef):
                yield from _symbol_nodes(node.body, f"{name}.", name)


def _own_nodes(node: _SymbolNode) -> list[ast.AST]:
    """A function whole; a class without the symbols it defines (they count on their own)."""
    if not isinstance(node, ast.ClassDef):
        return [node]
    own = [s for s in node.body if not isinstance(s, _SymbolNode)]
    return [*node.decorator_list, *node.bases, *node.keywords, *own]


def _bindings(
    path: str, tree: ast.Module, modules: dict[str, str]
) -> dict[str, tuple[str, str | None]]:
    """Each name the file's imports bind to a repository file: (file, symbol), where the
    symbol is None when the name is the module itself."""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    found: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and (alias.asname or "." not in alias.name):
                    found[alias.asname or alias.name] = (modules[alias.name], None)
        elif isinstance(node, ast.ImportFrom):
            base = from_base(package, node)
            for alias in node.names if base is not None else []:
                bound = alias.asname or alias.name
                target = f"{base}.{alias.name}" if base else alias.name
                if target in modules:
                    found[bound] = (modules[target], None)
                elif base in modules:
                    found[bound] = (modules[base], alias.name)
    return found


def _references(
    roots: list[ast.AST],
    path: str,
    owner: str | None,
    local: set[str],
    bindings: dict[str, tuple[str, str | None]],
) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                if node.id in local:
                    found.add((path, node.id))
                elif node.id in bindings and bindings[node.id][1] is not None:
                    file, symbol = bindings[node.id]
                    found.add((file, str(symbol)))
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                base, attr = node.value.id, node.attr
                if base in ("self", "cls") and owner is not None:
                    found.add((path, f"{owner}.{attr}"))
                elif base in local:
                    found.add((path, f"{base}.{attr}"))
                elif base in bindings:
                    file, symbol = bindings[base]
                    found.add((file, attr if symbol is None else f"{symbol}.{attr}"))
    return found


def _gold(commit: _Commit) -> PlannerOutput:
    if commit.gold is None:
        raise SyntheticError(f"commit {commit.sha}: no gold answer: {commit.gold_error}")
    return commit.gold


def _context(commit: _Commit) -> str:
    """The pre-commit source of every changed file outside the tests that existed."""
    blocks = []
    for change in commit.code:
        if change.old is not None:
            fence = "`" * max(3, _longest_backtick_run(change.old) + 1)
            body = change.old if change.old.endswith("\n") else f"{change.old}\n"
            blocks.append(f"### {change.path}\n{fence}\n{body}{fence}")
    return "\n\n".join(blocks) or "(the task only adds files)"


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def _execute_code(commit: _Commit) -> list[_Draft]:
    answer = [edit.model_dump() for edit in _gold(commit).edits]
    return [_draft("execute_code", answer, context=_context(commit), task=commit.task)]


def _part_header(part_id: str, title: str, depends_on: list[str]) -> dict[str, object]:
    return {"id": part_id, "title": title, "depends_on": depends_on}


def _meta_plan(commit: _Commit) -> list[_Draft]:
    plan = _gold(commit).plan
    answer = {
        "summary": plan.summary,
        "parts": [_part_header(p.id, p.title, p.depends_on) for p in plan.parts],
    }
    return [_draft("meta_plan", answer, context=_context(commit), task=commit.task)]


def _step_plan(commit: _Commit) -> list[_Draft]:
    context = _context(commit)
    return [
        _draft(
            "step_plan",
            {"steps": [step.model_dump() for step in part.steps]},
            context=context,
            task=commit.task,
            part=_json(_part_header(part.id, part.title, part.depends_on)),
        )
        for part in _gold(commit).plan.parts
    ]


def _test_plan(commit: _Commit) -> list[_Draft]:
    if not commit.tests or not commit.code:
        return []
    tests = {
        change.path: [s for s in change.symbols.touched if s.split(".")[-1].startswith("test")]
        for change in commit.tests
        if change.symbols is not None
    }
    answer = {
        "files": sorted(change.path for change in commit.tests),
        "tests": {path: names for path, names in sorted(tests.items()) if names},
    }
    return [_draft("test_plan", answer, task=commit.task, diff=commit.diff)]


_BUILDERS: dict[Stage, Callable[[_Commit], list[_Draft]]] = {
    "task_analysis": _task_analysis,
    "scope": _scope,
    "precision": _precision,
    "execute_code": _execute_code,
    "meta_plan": _meta_plan,
    "step_plan": _step_plan,
    "test_plan": _test_plan,
}
