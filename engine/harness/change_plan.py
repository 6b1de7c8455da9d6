"""A plan derived from a change: what a correct planner would have said, symbol by symbol.

One source of truth for "plan from a change", used by the gold pipeline and by the planning
stages' training examples (issue 15). From the files a commit changes outside its tests:

- Parts: one per changed code file, in import order (a file after the changed files it
  imports), each depending on the earlier parts whose files it imports; then one final part for
  the documentation and changelog files (`docs/**`, `changelog.d/**`, `CHANGES*`, `*.md`,
  `*.rst`, ... as `engine.mining.paths` classifies them), depending on every code part.
- Steps: one per symbol the file adds, changes or removes (an added or removed class carries its
  members in the same step), saying what to do to which symbol with its kind and signature
  ("Add function `slug(text)` in pkg/util.py"), plus one step for module-level code (imports,
  constants). Inside a file, a symbol comes after the changed symbols it uses (by name), ties in
  source order; removals come last. A file that is not Python gets one step saying how it
  changes. A step's text never equals its part's title.
- Summary: what the change does to which symbols and files, built the same way
  (`change_summary`), never the commit's subject.
"""

import ast
import copy
import difflib
import heapq
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.harness.ast_diff import (
    ChangedSymbols,
    FileChange,
    dependency_order,
    diff_symbols,
    import_graph,
)
from engine.harness.code_equivalence import code_differs
from engine.harness.plan import Plan, PlanPart, PlanStep
from engine.mining.paths import PathRoles, is_changelog
from engine.mining.settings import DEFAULT_TEST_PATTERNS

_ROLES = PathRoles(DEFAULT_TEST_PATTERNS)
_SymbolNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_Defs = dict[str, list[tuple[_SymbolNode, bool]]]
_NEWLINE = re.compile(r"\r\n|\r|\n")
_MAX_SIGNATURE = 80
_MAX_NAMES = 4
_MAX_SUMMARY_FILES = 4


def is_docs(path: str) -> bool:
    """Whether `path` is documentation or a changelog, which a plan touches after the code."""
    return _ROLES.role(path) == "docs"


def is_test(path: str) -> bool:
    """Whether `path` lies where the default test globs put tests (data files included)."""
    return _ROLES.role(path) == "test"


def is_python(path: str) -> bool:
    """Python source or a stub: both have symbols a step can name."""
    return path.endswith((".py", ".pyi"))


def plan_from_changes(changes: list[FileChange]) -> Plan:
    """The plan for `changes` (the commit's files outside its tests); see the module doc."""
    code = [change for change in changes if not is_docs(change.path)]
    docs = [change for change in changes if is_docs(change.path)]
    by_path = {change.path: change for change in code}
    order = dependency_order(code)
    graph = import_graph(code)
    ids = {path: f"part-{n}" for n, path in enumerate(order, start=1)}
    parts = [
        PlanPart(
            id=ids[path],
            title=_part_title(by_path[path]),
            depends_on=[ids[dep] for dep in order[:n] if dep in graph[path]],
            steps=file_steps(by_path[path]),
        )
        for n, path in enumerate(order)
    ]
    if docs:
        ordered = sorted(docs, key=lambda c: (is_changelog(c.path), c.path))
        parts.append(
            PlanPart(
                id=f"part-{len(parts) + 1}",
                title=_docs_title(docs),
                depends_on=[part.id for part in parts],
                steps=[_docs_step(change) for change in ordered],
            )
        )
    return Plan(summary=change_summary(changes), parts=parts)


def change_summary(changes: list[FileChange]) -> str:
    """One sentence on what `changes` do: the symbols added, changed and removed per code file
    in import order (at most four files named), then the documentation."""
    code = [change for change in changes if not is_docs(change.path)]
    by_path = {change.path: change for change in code}
    phrases = [_file_phrase(by_path[path]) for path in dependency_order(code)]
    if len(phrases) > _MAX_SUMMARY_FILES:
        more = len(phrases) - _MAX_SUMMARY_FILES + 1
        phrases = [*phrases[: _MAX_SUMMARY_FILES - 1], f"and change {more} more files"]
    docs = [change.path for change in changes if is_docs(change.path)]
    changelog = [path for path in docs if is_changelog(path)]
    if len(docs) > len(changelog):
        n = len(docs) - len(changelog)
        phrases.append(f"document it in {n} file{'s' if n > 1 else ''}")
    if changelog:
        phrases.append("add a changelog entry")
    text = "; ".join(phrases)
    return f"{text[:1].upper()}{text[1:]}."


@dataclass(frozen=True)
class _Symbol:
    """One added, changed or removed symbol: where it is, what it is, what it uses."""

    name: str
    action: str
    kind: str
    display: str
    old_display: str | None
    line: int
    members: tuple[str, ...] = ()
    uses: frozenset[str] = field(default_factory=frozenset)


def file_steps(change: FileChange) -> list[PlanStep]:
    """The steps that make `change`, in order (see the module doc)."""
    path = change.path
    if not change.text:
        return [PlanStep(description=f"Replace the binary file or link {path}", file=path)]
    if not is_python(path):
        return [_text_step(change)]
    symbols = _changed_symbols(change)
    if symbols.parse_error is not None:
        return [_text_step(change)]
    if change.status == "deleted":
        names = _top_names(symbols.removed)
        defines = f", which defines {_names(names)}" if names else ""
        return [PlanStep(description=f"Delete the module {path}{defines}", file=path)]
    old = _nodes(change.old)
    new = _nodes(change.new)
    cosmetic = _cosmetic(symbols.modified, old, new)
    added = _grouped(symbols.added, new, "add")
    changed = [
        _symbol(name, "change", new[name][0], old[name][0])
        for name in symbols.modified
        if name not in cosmetic
    ]
    removed = _grouped(symbols.removed, old, "remove")
    ordered = _uses_first([*added, *changed])
    imports, statements, mentioned = _module_steps(change)
    defined = {s.name.rsplit(".", 1)[-1] for s in ordered}
    early = statements if not mentioned & defined else []
    steps = [*imports, *early, *(_symbol_step(s, path) for s in ordered)]
    steps += [step for step in statements if step not in early]
    if cosmetic:
        steps.append(_cosmetic_step(sorted(cosmetic, key=lambda n: new[n][0][0].lineno), path))
    steps += [_symbol_step(s, path) for s in sorted(removed, key=lambda s: s.line)]
    if not steps:
        steps = [
            PlanStep(
                description=f"Edit {path} outside its code: comments, docstrings or layout",
                file=path,
            )
        ]
    return steps


def cosmetic_symbols(change: FileChange) -> set[str]:
    """The symbols `change` modifies only in docstrings, comments or layout (not as code, as
    `code_differs` decides); empty for a file whose symbols are unknown."""
    if not change.text or not is_python(change.path) or change.status != "modified":
        return set()
    symbols = _changed_symbols(change)
    if symbols.parse_error is not None:
        return set()
    return _cosmetic(symbols.modified, _nodes(change.old), _nodes(change.new))


def _cosmetic(names: list[str], old: _Defs, new: _Defs) -> set[str]:
    return {
        name
        for name in names
        if not code_differs(
            "\n".join(_code_text(n) for n, _ in old[name]),
            "\n".join(_code_text(n) for n, _ in new[name]),
        )
    }


def _code_text(node: _SymbolNode) -> str:
    """A symbol's code as text: a class without the symbols it defines (they count alone)."""
    if isinstance(node, ast.ClassDef):
        node = copy.copy(node)
        node.body = [s for s in node.body if not isinstance(s, _SymbolNode)] or [ast.Pass()]
    return ast.unparse(node)


def _cosmetic_step(names: list[str], path: str) -> PlanStep:
    return PlanStep(
        description=f"Touch up the docstrings or comments of {_names(names)} in {path}",
        file=path,
        symbols=names,
    )


def _changed_symbols(change: FileChange) -> ChangedSymbols:
    if change.symbols is not None:
        return change.symbols
    return diff_symbols(change.old, change.new)


def _part_title(change: FileChange) -> str:
    verb = {"added": "Create", "modified": "Update", "deleted": "Delete"}[change.status]
    title = f"{verb} {change.path}"
    if change.status == "deleted" or not change.text or not is_python(change.path):
        return title
    symbols = _changed_symbols(change)
    cosmetic = cosmetic_symbols(change)
    names = [
        *_top_names(symbols.added),
        *(name for name in symbols.modified if name not in cosmetic),
        *_top_names(symbols.removed),
    ] or sorted(cosmetic)
    if not names:
        return title
    shown = ", ".join(names[:_MAX_NAMES])
    more = f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
    return f"{title}: {shown}{more}"


def _docs_title(docs: list[FileChange]) -> str:
    changelog = any(is_changelog(change.path) for change in docs)
    pages = any(not is_changelog(change.path) for change in docs)
    if pages and changelog:
        return "Document the change and record it in the changelog"
    if pages:
        return "Document the change"
    return "Record the change in the changelog"


def _docs_step(change: FileChange) -> PlanStep:
    path = change.path
    if is_changelog(path):
        text = {
            "added": f"Add the changelog entry {path}",
            "modified": f"Describe the change in the changelog {path}",
            "deleted": f"Remove the changelog entry {path}",
        }[change.status]
    else:
        text = {
            "added": f"Write the new documentation page {path}",
            "modified": f"Update the documentation in {path}",
            "deleted": f"Remove the documentation page {path}",
        }[change.status]
    return PlanStep(description=text, file=path)


def _text_step(change: FileChange) -> PlanStep:
    """The one step of a file whose symbols are unknown (not Python, or not parsing)."""
    path = change.path
    if change.status == "added":
        lines = len(_NEWLINE.split(change.new or "")) if change.new else 0
        text = f"Write {path} ({lines} line{'s' if lines != 1 else ''})"
    elif change.status == "deleted":
        text = f"Remove the file {path}"
    else:
        added = removed = 0
        old = _NEWLINE.split(change.old or "")
        new = _NEWLINE.split(change.new or "")
        for line in difflib.unified_diff(old, new, lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        text = f"Edit {path}: {added} line{'s' if added != 1 else ''} added, {removed} removed"
    return PlanStep(description=text, file=path)


def _file_phrase(change: FileChange) -> str:
    path = change.path
    if change.status == "deleted":
        return f"delete {path}"
    if not change.text or not is_python(path):
        return f"{'create' if change.status == 'added' else 'update'} {path}"
    symbols = _changed_symbols(change)
    if symbols.parse_error is not None:
        return f"{'create' if change.status == 'added' else 'update'} {path}"
    if change.status == "added":
        names = _top_names(symbols.added)
        return f"create {path}" + (f" with {_names(names)}" if names else "")
    cosmetic = cosmetic_symbols(change)
    verbs = [
        f"{verb} {_names(names)}"
        for verb, names in (
            ("add", _top_names(symbols.added)),
            ("change", [name for name in symbols.modified if name not in cosmetic]),
            ("remove", _top_names(symbols.removed)),
            ("touch up the docstrings of", sorted(cosmetic)),
        )
        if names
    ]
    if not verbs:
        return f"update the module-level code of {path}"
    return f"{', '.join(verbs)} in {path}"


def _names(names: list[str]) -> str:
    shown = ", ".join(f"`{name}`" for name in names[:_MAX_NAMES])
    return shown + (f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else "")


def _top_names(names: Iterable[str]) -> list[str]:
    """`names` without those inside another of them (a class's methods go with the class)."""
    given = set(names)
    return sorted(n for n in given if not any(n.startswith(f"{o}.") for o in given))


def _nodes(source: str | None) -> _Defs:
    """Each symbol of `source`: its definitions in order (a property and its setter share a
    name), each with whether it sits in a class."""
    if source is None:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        module = ast.parse(source)
    found: _Defs = {}
    _walk(module.body, "", found)
    return found


def _walk(body: list[ast.stmt], prefix: str, found: _Defs) -> None:
    for node in body:
        if isinstance(node, _SymbolNode):
            name = prefix + node.name
            found.setdefault(name, []).append((node, bool(prefix)))
            if isinstance(node, ast.ClassDef):
                _walk(node.body, f"{name}.", found)


def _grouped(names: list[str], nodes: _Defs, action: str) -> list[_Symbol]:
    """Added (or removed) symbols, each class carrying its added (removed) members."""
    return [
        _symbol(
            top,
            action,
            nodes[top][0],
            None,
            members=tuple(n for n in names if n.startswith(f"{top}.")),
        )
        for top in _top_names(names)
    ]


def _symbol(
    name: str,
    action: str,
    node: tuple[_SymbolNode, bool],
    old: tuple[_SymbolNode, bool] | None,
    members: tuple[str, ...] = (),
) -> _Symbol:
    tree, in_class = node
    display = _display(name, tree)
    old_display = _display(name, old[0]) if old is not None else None
    return _Symbol(
        name=name,
        action=action,
        kind=_kind(tree, in_class),
        display=display,
        old_display=old_display if old_display != display else None,
        line=tree.lineno,
        members=members,
        uses=frozenset(_identifiers(tree)),
    )


def _own_nodes(node: _SymbolNode) -> list[ast.AST]:
    """A function whole; a class without the symbols it defines (they are steps of their own)."""
    if not isinstance(node, ast.ClassDef):
        return [node]
    own = [s for s in node.body if not isinstance(s, _SymbolNode)]
    return [*node.decorator_list, *node.bases, *node.keywords, *own]


def _kind(node: _SymbolNode, in_class: bool) -> str:
    if isinstance(node, ast.ClassDef):
        return "class"
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return prefix + ("method" if in_class else "function")


def _display(name: str, node: _SymbolNode) -> str:
    if isinstance(node, ast.ClassDef):
        bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
        inner = ", ".join(bases)
        if not inner:
            return name
    else:
        inner = ast.unparse(node.args)
    if len(inner) > _MAX_SIGNATURE:
        inner = "..."
    return f"{name}({inner})"


def _identifiers(node: _SymbolNode) -> set[str]:
    found: set[str] = set()
    for child in (c for root in _own_nodes(node) for c in ast.walk(root)):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def _uses_first(symbols: list[_Symbol]) -> list[_Symbol]:
    """`symbols` with each after the others it uses by name; ties (and cycles) in line order."""
    short = {s.name: s.name.rsplit(".", 1)[-1] for s in symbols}
    needs = {
        s.name: {
            o.name
            for o in symbols
            if o.name != s.name and short[o.name] in s.uses and not o.name.startswith(f"{s.name}.")
        }
        for s in symbols
    }
    by_name = {s.name: s for s in symbols}
    done: list[str] = []
    pending = {s.name for s in symbols}
    while pending:
        ready = [(by_name[n].line, n) for n in pending if needs[n] <= set(done)]
        if not ready:
            ready = [(by_name[n].line, n) for n in pending]
        _, chosen = heapq.nsmallest(1, ready)[0]
        done.append(chosen)
        pending.remove(chosen)
    return [by_name[name] for name in done]


def _symbol_step(symbol: _Symbol, path: str) -> PlanStep:
    kind, shown = symbol.kind, symbol.display
    if symbol.action == "add":
        members = [m.rsplit(".", 1)[-1] for m in symbol.members]
        text = f"Add {kind} `{shown}`"
        if members:
            text += f" with {_names(members)}"
        text += f" in {path}"
    elif symbol.action == "change":
        text = f"Change {kind} `{shown}` in {path}"
        if symbol.old_display is not None:
            text += f" (was `{symbol.old_display}`)"
    else:
        text = f"Remove {kind} `{symbol.name}`"
        if symbol.members:
            text += " and its members"
        text += f" from {path}"
    return PlanStep(description=text, file=path, symbols=[symbol.name, *symbol.members])


def _module_steps(change: FileChange) -> tuple[list[PlanStep], list[PlanStep], set[str]]:
    """A step for the imports the file adds or drops; a step for its other module-level
    statements (constants, calls, `__all__`) when they change, with the names and strings those
    changed statements mention (a statement that names a new symbol comes after it). The module
    docstring does not count."""
    old_imports, old_other = _module_level(change.old)
    new_imports, new_other = _module_level(change.new)
    path = change.path
    imports: list[PlanStep] = []
    gained = _imported(new_imports - old_imports) - _imported(old_imports)
    lost = _imported(old_imports - new_imports) - _imported(new_imports)
    if gained or lost:
        parts = []
        if gained:
            parts.append(f"import {_names(sorted(gained))}")
        if lost:
            parts.append(f"drop the import of {_names(sorted(lost))}")
        imports.append(PlanStep(description=f"In {path}, {' and '.join(parts)}", file=path))
    if old_other == new_other:
        return imports, [], set()
    changed = set(old_other).symmetric_difference(new_other)
    names = sorted({name for text in changed for name in _assigned(text)})
    what = f": {_names(names)}" if names else ""
    step = PlanStep(description=f"Change the module-level statements of {path}{what}", file=path)
    mentioned = {word for text in changed for word in _mentions(text)}
    return imports, [step], mentioned


def _mentions(statement: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(statement)):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def _module_level(source: str | None) -> tuple[set[str], list[str]]:
    """The import statements and the other module-level statements (not symbols, not the
    docstring) of `source`, each as normalised text."""
    if source is None:
        return set(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        module = ast.parse(source)
    body = module.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    imports = {ast.unparse(n) for n in body if isinstance(n, ast.Import | ast.ImportFrom)}
    other = [
        ast.unparse(n) for n in body if not isinstance(n, _SymbolNode | ast.Import | ast.ImportFrom)
    ]
    return imports, other


def _imported(statements: Iterable[str]) -> set[str]:
    """The names import statements bind (`from a import b` binds `b`, `import a.b` binds a.b)."""
    found: set[str] = set()
    for text in statements:
        node = ast.parse(text).body[0]
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(alias.asname or alias.name for alias in node.names)
    return found


def _assigned(statement: str) -> set[str]:
    node = ast.parse(statement).body[0]
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
