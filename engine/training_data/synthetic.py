"""Synthetic training examples for each pipeline stage, reconstructed from one commit.

LoRA Training Strategy §6.3: a commit says what a correct pipeline run should have produced. The
cleaned commit message (`engine.mining.message.clean_task_text`) is the task at every stage
(NL-to-code, never the pre-commit code as the instruction); the diff gives the answers. Each stage's
contract (input, answer, what makes an example degenerate) is in docs/stage-contracts.md; a draft
that breaks its contract is skipped with the reason, never emitted:

- task_analysis: the task and the parent's file tree -> a summary of what to change (built from
  the change's structure, `change_summary`), the files to change, the files to create and the
  symbols. A tree over the budget is cut (shallow paths first, every path the answer names kept)
  and says how many paths it leaves out.
- scope: the task and the parent's files -> relevant (to change), create (to add), supporting
  (repository files the changed and created files import, at the parent or at the commit) and
  irrelevant (the rest). Candidates are the files that exist at the parent, tests excluded.
- precision: the task and the symbols of the relevant and supporting files at the parent ->
  primary (added, changed or removed), supporting (parent symbols the new code of the changed
  symbols uses) and excluded (the rest), each by file.
- execute_code: the pre-commit source of the changed files and the task -> the commit's
  search/replace edits (engine.harness.gold).
- meta_plan / step_plan: the pre-commit source of the changed code (documentation files by name)
  and the task -> the gold plan (`engine.harness.change_plan`): its summary and parts, then each
  part's steps, whose prompt shows only that part's files.
- test_plan: only for a commit changing test files and others: the task and the code diff ->
  the test files changed and the test functions added or changed.

Test files (the commit's, and any path under the default test globs) are hidden from every
stage but test_plan, as the harness hides them. A stage whose example does not fit its token
budget is skipped with the reason, never truncated. The same commit always gives the same
`Derivation.model_dump_json()`, byte for byte.
"""

import ast
import json
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.core.errors import CraError
from engine.core.stages import BASE_MODEL, TOKEN_BUDGET, BaseModelKind, Stage
from engine.harness.ast_diff import FileChange, commit_changes, from_base, module_name
from engine.harness.change_plan import change_summary, cosmetic_symbols, is_docs, is_test
from engine.harness.gold import gold_output
from engine.harness.plan import PlannerOutput, PlanPart
from engine.harness.repo_index import FileEntry, RepoIndex, build_index
from engine.harness.retrieve import count_tokens
from engine.harness.worktrees import checkout
from engine.isolation.gitsafe import run_git
from engine.mining.message import EMAIL, clean_task_text, redact_emails
from engine.training_data.items import Message
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
    code: list[FileChange]
    visible: list[FileChange]
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
    """Every synthetic example `sha` (a child of `parent` in `repo`) gives; see the module doc.
    `message` is the commit's message, raw or already cleaned."""
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
            except SyntheticError as exc:
                skipped.append(Skipped(stage=stage, reason=str(exc)))
    return Derivation(examples=examples, skipped=skipped)


def _read_commit(repo: Path, parent: str, sha: str, message: str, test_files: list[str]) -> _Commit:
    task = clean_task_text(message)
    if not task:
        raise SyntheticError(f"commit {sha} has an empty message, so there is no task")
    hidden = set(test_files)
    changes = commit_changes(repo, parent, sha, exclude=())
    code = [change for change in changes if change.path not in hidden]
    with checkout(repo, parent) as tree:
        parent_index = build_index(tree)
    with checkout(repo, sha) as tree:
        new_index = build_index(tree)
    gold = gold_output(repo, parent, sha, test_files)
    git_dir = f"--git-dir={repo / '.git'}"
    listed = run_git(repo, git_dir, "ls-tree", "-r", "-z", "--name-only", parent).stdout
    paths = [p for p in _decoded(listed, sha).split("\0") if p]
    return _Commit(
        sha=sha,
        task=task,
        code=code,
        visible=[change for change in code if not is_test(change.path)],
        tests=[change for change in changes if change.path in hidden],
        candidates=sorted(p for p in paths if p not in hidden and not is_test(p)),
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
    """The example of `draft`, unless it breaks a contract every stage keeps: no e-mail
    address in its prompt, prompt and answer within the stage's token budget."""
    if EMAIL.search(draft.system) or EMAIL.search(draft.user):
        raise SyntheticError(
            f"{draft.stage} example for commit {sha}: an e-mail address in the prompt"
        )
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
        "summary": change_summary(commit.visible),
        "files": _relevant(commit),
        "create": _created(commit),
        "symbols": _primary(commit),
    }
    _require_work(commit, answer["files"], answer["create"], "task_analysis")
    system, bare = render("task_analysis", task=commit.task, tree="")
    room = TOKEN_BUDGET["task_analysis"] - count_tokens(system) - count_tokens(bare)
    tree = _tree(commit.candidates, set(answer["files"]), room - count_tokens(_json(answer)))
    return [_draft("task_analysis", answer, task=commit.task, tree=tree)]


def _tree(paths: list[str], keep: set[str], room: int) -> str:
    """`paths` one a line, in `room` tokens if they fit; otherwise the shallowest paths that
    fit with every path in `keep`, in path order, and a last line saying how many are left out."""
    whole = "\n".join(paths)
    if count_tokens(whole) <= room:
        return whole
    note = f"({len(paths)} more paths not shown)"
    used = count_tokens(note) + sum(count_tokens(f"{p}\n") for p in keep)
    shown = set(keep)
    for path in sorted((p for p in paths if p not in keep), key=lambda p: (p.count("/"), p)):
        cost = count_tokens(f"{path}\n")
        if used + cost > room:
            break
        used += cost
        shown.add(path)
    left_out = len(paths) - len(shown)
    return "\n".join([*sorted(shown), f"({left_out} more paths not shown)"])


def _require_work(
    commit: _Commit, change: Collection[str], create: Collection[str], stage: Stage
) -> None:
    """The contract every file-level answer keeps: something to change or to create."""
    if not change and not create:
        raise SyntheticError(
            f"commit {commit.sha}: the {stage} answer would have nothing to change or create "
            "outside the tests"
        )


def _scope(commit: _Commit) -> list[_Draft]:
    relevant = _relevant(commit)
    create = _created(commit)
    _require_work(commit, relevant, create, "scope")
    supporting = _supporting_files(commit)
    answer = {
        "relevant": relevant,
        "create": create,
        "supporting": supporting,
        "irrelevant": [p for p in commit.candidates if p not in {*relevant, *supporting}],
    }
    return [_draft("scope", answer, task=commit.task, files="\n".join(commit.candidates))]


def _relevant(commit: _Commit) -> list[str]:
    """The changed files outside the tests that exist at the parent."""
    return sorted(change.path for change in commit.visible if change.status != "added")


def _created(commit: _Commit) -> list[str]:
    """The files outside the tests that the commit adds."""
    return sorted(change.path for change in commit.visible if change.status == "added")


def _supporting_files(commit: _Commit) -> list[str]:
    """Parent files, not themselves changed, that a changed or created Python file imports,
    before the change (resolved at the parent) or after it (resolved at the commit)."""
    imported: set[str] = set()
    for change in commit.visible:
        if not change.path.endswith(".py"):
            continue
        for source, index in ((change.old, commit.parent_index), (change.new, commit.new_index)):
            if source is not None:
                imported |= _imported_files(change.path, source, _modules(index))
    changed = {change.path for change in commit.visible}
    return sorted((imported & set(commit.candidates)) - changed)


def _modules(index: RepoIndex) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in index.files:
        found.setdefault(entry.module, []).append(entry.path)
    return found


def _imported_files(path: str, source: str, modules: dict[str, list[str]]) -> set[str]:
    """The repository files `source` (the text of `path`) imports: `import a.b` reads a/b;
    `from a import b` reads module a.b when there is one, else a (where b is defined); a
    relative import resolves against `path`'s package. A bare name matches only a module of
    that exact name, so `import typing` never names a repository's own `pkg/typing.py`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source)
    except SyntaxError:
        return set()
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_module_files(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            base = from_base(package, node)
            if base is None:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.update(_module_files(sub, modules) or _module_files(base, modules))
    found.discard(path)
    return found


def _module_files(name: str, modules: dict[str, list[str]]) -> list[str]:
    """The files of module `name`; a dotted name not found whole may sit under a deeper import
    root (`pkg.a` as `lib/pkg/a.py`)."""
    if not name:
        return []
    if name in modules:
        return modules[name]
    if "." not in name:
        return []
    return sorted(
        p for module, paths in modules.items() if module.endswith(f".{name}") for p in paths
    )


def _precision(commit: _Commit) -> list[_Draft]:
    primary = _primary(commit)
    if not primary:
        raise SyntheticError(
            f"commit {commit.sha}: the change adds, changes or removes no Python symbol outside "
            "the tests, so precision has no primary symbol"
        )
    entries = _entries(commit.parent_index)
    shown = [p for p in [*_relevant(commit), *_supporting_files(commit)] if p in entries]
    shown.sort()
    listed = {(path, symbol.name) for path in shown for symbol in entries[path].symbols}
    created = {
        (change.path, name)
        for change in commit.visible
        if change.symbols is not None
        for name in change.symbols.added
    }
    unknown = [
        f"{path}::{name}"
        for path, names in primary.items()
        for name in names
        if (path, name) not in listed | created
    ]
    if unknown:
        raise SyntheticError(
            f"commit {commit.sha}: primary symbols neither listed nor created: {', '.join(unknown)}"
        )
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
    """The symbols each changed Python file outside the tests adds, removes or changes as code
    (a docstring-, comment- or layout-only change is cosmetic, not primary)."""
    found: _ByFile = {}
    for change in commit.visible:
        if change.symbols is not None:
            cosmetic = cosmetic_symbols(change)
            modified = [name for name in change.symbols.modified if name not in cosmetic]
            names = {*change.symbols.added, *modified, *change.symbols.removed}
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


_ONLY_ADDS = "(the task only adds files)"


def _context(changes: list[FileChange], planning: bool, empty: str) -> str:
    """The pre-commit source of each of `changes` that existed. For a plan (`planning`), a
    documentation or changelog file is named with its length instead (a plan needs to know it
    is there, not its text), and a Python file over `_FULL_FILE_TOKENS` is cut to its
    module-level code, the full source of the symbols the change modifies or removes, and one
    outline line for every other symbol (`_compact`)."""
    blocks = []
    for change in changes:
        if change.old is None:
            continue
        lines = change.old.count("\n") + (0 if change.old.endswith("\n") else 1)
        if planning and is_docs(change.path):
            blocks.append(f"### {change.path}\n(documentation, {lines} lines, not shown)")
            continue
        text = redact_emails(change.old)
        if (
            planning
            and count_tokens(text) > _FULL_FILE_TOKENS
            and change.symbols is not None
            and change.symbols.parse_error is None
        ):
            wanted = {*change.symbols.modified, *change.symbols.removed}
            text = _compact(text, wanted)
            blocks.append(
                f"### {change.path} ({lines} lines: module-level code and the symbols the "
                "change touches in full, the rest as outlines)"
            )
        else:
            blocks.append(f"### {change.path}")
        fence = "`" * max(3, _longest_backtick_run(text) + 1)
        body = text if text.endswith("\n") else f"{text}\n"
        blocks[-1] += f"\n{fence}\n{body}{fence}"
    return "\n\n".join(blocks) or empty


_FULL_FILE_TOKENS = 4000


def _compact(source: str, wanted: set[str]) -> str:
    """`source` with the lines outside any symbol, the symbols in `wanted` whole (a class: its
    own lines, its members judged one by one), and for every other symbol one line: its
    signature and how many lines are not shown."""
    lines = source.splitlines()
    shown: dict[int, str] = {}
    covered: set[int] = set()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, _SymbolNode):
                continue
            name = prefix + node.name
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            last = node.end_lineno or node.lineno
            covered.update(range(first, last + 1))
            if isinstance(node, ast.ClassDef):
                nested = {
                    n
                    for child in node.body
                    if isinstance(child, _SymbolNode)
                    for n in range(
                        min([child.lineno, *(d.lineno for d in child.decorator_list)]),
                        (child.end_lineno or child.lineno) + 1,
                    )
                }
                own = range(first, last + 1) if name in wanted else range(first, node.lineno + 1)
                shown.update((n, lines[n - 1]) for n in own if n not in nested)
                visit(node.body, f"{name}.")
            elif name in wanted:
                shown.update((n, lines[n - 1]) for n in range(first, last + 1))
            else:
                head = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
                indent = " " * node.col_offset
                hidden = last - first + 1
                shown[first] = (
                    f"{indent}{head} {node.name}({ast.unparse(node.args)}): ...  "
                    f"# {hidden} line{'s' if hidden != 1 else ''} not shown"
                )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        visit(ast.parse(source).body, "")
    shown.update((n, lines[n - 1]) for n in range(1, len(lines) + 1) if n not in covered)
    return "\n".join(shown[n] for n in sorted(shown))


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def _execute_code(commit: _Commit) -> list[_Draft]:
    edits = _gold(commit).edits
    idle = [e.path for e in edits if not e.delete and e.search == e.replace]
    if idle:
        raise SyntheticError(f"commit {commit.sha}: gold edits that change nothing: {idle}")
    personal = sorted({e.path for e in edits if EMAIL.search(e.search) or EMAIL.search(e.replace)})
    if personal:
        raise SyntheticError(
            f"commit {commit.sha}: the edits to {', '.join(personal)} carry an e-mail address"
        )
    answer = [edit.model_dump() for edit in edits]
    return [
        _draft(
            "execute_code",
            answer,
            context=_context(commit.code, False, _ONLY_ADDS),
            task=commit.task,
        )
    ]


def _part_header(part: PlanPart) -> dict[str, object]:
    return {"id": part.id, "title": part.title, "depends_on": part.depends_on}


def _meta_plan(commit: _Commit) -> list[_Draft]:
    plan = _gold(commit).plan
    answer = {"summary": plan.summary, "parts": [_part_header(p) for p in plan.parts]}
    context = _context(commit.code, True, _ONLY_ADDS)
    return [_draft("meta_plan", answer, context=context, task=commit.task)]


def _step_plan(commit: _Commit) -> list[_Draft]:
    drafts = []
    for part in _gold(commit).plan.parts:
        repeated = [step.description for step in part.steps if step.description == part.title]
        if repeated:
            raise SyntheticError(
                f"commit {commit.sha}: part {part.id} has a step that repeats its title "
                f"{part.title!r}"
            )
        files = {step.file for step in part.steps}
        drafts.append(
            _draft(
                "step_plan",
                {"steps": [step.model_dump() for step in part.steps]},
                context=_context(
                    [c for c in commit.code if c.path in files],
                    True,
                    "(this part only adds files)",
                ),
                task=commit.task,
                part=_json(_part_header(part)),
            )
        )
    return drafts


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
    return [_draft("test_plan", answer, task=commit.task, diff=redact_emails(commit.diff))]


_BUILDERS: dict[Stage, Callable[[_Commit], list[_Draft]]] = {
    "task_analysis": _task_analysis,
    "scope": _scope,
    "precision": _precision,
    "execute_code": _execute_code,
    "meta_plan": _meta_plan,
    "step_plan": _step_plan,
    "test_plan": _test_plan,
}
