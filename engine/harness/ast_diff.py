"""What a commit changed, file by file and symbol by symbol, and the import order of its files.

Symbols are top-level functions and classes and, recursively, what classes define
(`Class.method`, `Outer.Inner.method`), as in `engine.mining.symbols`. A symbol is modified when
its source text differs: a function's lines from its first decorator to its end; a class's own
lines, without the symbols it defines and without blank lines, so a changed method does not also
count as a changed class. A version that does not parse contributes no symbols; the reason is
recorded instead.

`dependency_order` puts a changed file after the changed files it imports, which is the order a
plan should touch them in.
"""

import ast
import heapq
import re
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from engine.harness.package import HarnessError
from engine.isolation.gitobjects import read_blobs
from engine.isolation.gitsafe import run_git

ChangeStatus = Literal["added", "modified", "deleted"]
_STATUSES: dict[str, ChangeStatus] = {
    "A": "added",
    "M": "modified",
    "T": "modified",
    "D": "deleted",
}
_REGULAR_MODES = ("100644", "100755")
_ABSENT_MODE = "000000"
_NEWLINE = re.compile(r"\r\n|\r|\n")
_SymbolNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChangedSymbols(_Model):
    """Symbols added, removed and modified between two versions of a Python file (sorted)."""

    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []
    parse_error: str | None = None

    @property
    def touched(self) -> list[str]:
        """The symbols the new version adds or changes."""
        return sorted({*self.added, *self.modified})


class FileChange(_Model):
    """One file a commit changed. `text` is False for a link, a submodule or a file that is not
    UTF-8 (then `old` and `new` are None); otherwise `old` is None exactly when the file is added
    and `new` exactly when it is deleted. `symbols` is None for a file that is not Python text."""

    path: str
    status: ChangeStatus
    text: bool
    old: str | None
    new: str | None
    symbols: ChangedSymbols | None

    @model_validator(mode="after")
    def _sides_match_status(self) -> "FileChange":
        if not self.text:
            if self.old is not None or self.new is not None:
                raise ValueError(f"{self.path}: a change that is not text carries no text")
        elif (self.old is None) != (self.status == "added") or (self.new is None) != (
            self.status == "deleted"
        ):
            raise ValueError(f"{self.path}: the texts present do not match status {self.status}")
        return self


def diff_symbols(old_src: str | None, new_src: str | None) -> ChangedSymbols:
    """The symbols `new_src` adds, removes and modifies relative to `old_src` (None: absent)."""
    try:
        before = symbol_texts(old_src) if old_src is not None else {}
        after = symbol_texts(new_src) if new_src is not None else {}
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        return ChangedSymbols(parse_error=f"{where}{exc.msg}")
    return ChangedSymbols(
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        modified=sorted(
            name for name in after.keys() & before.keys() if after[name] != before[name]
        ),
    )


def symbol_texts(source: str) -> dict[str, str]:
    """Each symbol `source` defines and its text; raises SyntaxError if it does not parse.

    A name defined twice at one level (a property and its setter) has its texts joined in order.
    """
    module = _parse(source)
    lines = _NEWLINE.split(source)
    texts: dict[str, str] = {}
    _collect(module.body, "", lines, texts)
    return texts


def _parse(source: str) -> ast.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.parse(source)
    except ValueError as exc:
        raise SyntaxError(str(exc)) from exc


def _collect(body: list[ast.stmt], prefix: str, lines: list[str], texts: dict[str, str]) -> None:
    for node in body:
        if not isinstance(node, _SymbolNode):
            continue
        name = prefix + node.name
        if isinstance(node, ast.ClassDef):
            text = _own_class_text(node, lines)
            _collect(node.body, f"{name}.", lines, texts)
        else:
            text = "\n".join(lines[_first_line(node) - 1 : node.end_lineno])
        texts[name] = f"{texts[name]}\n{text}" if name in texts else text


def _first_line(node: _SymbolNode) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _own_class_text(node: ast.ClassDef, lines: list[str]) -> str:
    nested: set[int] = set()
    for child in node.body:
        if isinstance(child, _SymbolNode):
            nested.update(range(_first_line(child), (child.end_lineno or child.lineno) + 1))
    own = range(_first_line(node), (node.end_lineno or node.lineno) + 1)
    return "\n".join(lines[n - 1] for n in own if n not in nested and lines[n - 1].strip())


def commit_changes(repo: Path, parent: str, sha: str, exclude: Collection[str]) -> list[FileChange]:
    """The files `sha` changes relative to `parent` (paths in `exclude` left out), by path."""
    git_dir = f"--git-dir={repo / '.git'}"
    raw = run_git(
        repo, git_dir, "diff", "--raw", "-z", "--no-abbrev", "--no-renames", parent, sha
    ).stdout
    entries = [entry for entry in _raw_entries(raw) if entry[4] not in exclude]
    blob_names = [
        blob
        for old_mode, new_mode, old_blob, new_blob, _, _ in entries
        for mode, blob in ((old_mode, old_blob), (new_mode, new_blob))
        if mode in _REGULAR_MODES
    ]
    blobs = dict(zip(blob_names, read_blobs(repo, blob_names), strict=True)) if blob_names else {}
    changes = [_file_change(entry, blobs) for entry in entries]
    return sorted(changes, key=lambda change: change.path)


def _raw_entries(raw: bytes) -> list[tuple[str, str, str, str, str, ChangeStatus]]:
    """(old mode, new mode, old blob, new blob, path, status) per `git diff --raw -z` entry."""
    tokens = raw.split(b"\0")
    entries = []
    for meta, name in zip(tokens[0:-1:2], tokens[1::2], strict=True):
        old_mode, new_mode, old_blob, new_blob, letter = meta.decode("ascii").lstrip(":").split()
        try:
            path = name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HarnessError(f"git diff names a path that is not UTF-8: {name!r}") from exc
        if letter not in _STATUSES:
            raise HarnessError(f"{path}: git diff reports status {letter!r}, which is not handled")
        entries.append((old_mode, new_mode, old_blob, new_blob, path, _STATUSES[letter]))
    return entries


def _file_change(
    entry: tuple[str, str, str, str, str, ChangeStatus], blobs: dict[str, bytes]
) -> FileChange:
    old_mode, new_mode, old_blob, new_blob, path, status = entry
    sides = ((old_mode, old_blob), (new_mode, new_blob))
    if any(mode not in (*_REGULAR_MODES, _ABSENT_MODE) for mode, _ in sides):
        return FileChange(path=path, status=status, text=False, old=None, new=None, symbols=None)
    try:
        old, new = (
            blobs[blob].decode("utf-8") if mode != _ABSENT_MODE else None for mode, blob in sides
        )
    except UnicodeDecodeError:
        return FileChange(path=path, status=status, text=False, old=None, new=None, symbols=None)
    symbols = diff_symbols(old, new) if path.endswith(".py") else None
    return FileChange(path=path, status=status, text=True, old=old, new=new, symbols=symbols)


def module_name(path: str) -> str:
    """The dotted module a Python file path defines: `src/pkg/a.py` -> `pkg.a`,
    `pkg/__init__.py` -> `pkg` (a leading `src/` is the import root, not a package)."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    if parts[0] == "src" and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


def import_graph(changes: list[FileChange]) -> dict[str, set[str]]:
    """For each changed file, the other changed files it imports (any import in its new text, or
    old text if deleted). An imported module `m` names a changed Python file whose module is `m`,
    or failing that, if `m` is dotted, whose module ends in `.m` (an import root deeper than the
    repository's; a bare `json` is left to the standard library rather than `pkg/json.py`).
    `from m import n` imports `m` and, if it is a module, `m.n`."""
    modules = {c.path: module_name(c.path) for c in changes if c.path.endswith(".py")}
    graph: dict[str, set[str]] = {change.path: set() for change in changes}
    for change in changes:
        source = change.new if change.new is not None else change.old
        if change.path not in modules or source is None:
            continue
        for name in _imported_modules(change.path, source):
            graph[change.path].update(_resolve(name, modules) - {change.path})
    return graph


def _imported_modules(path: str, source: str) -> set[str]:
    try:
        module = _parse(source)
    except SyntaxError:
        return set()
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = from_base(package, node)
            if base is None:
                continue
            names.add(base)
            names.update(".".join(filter(None, (base, alias.name))) for alias in node.names)
    return names


def from_base(package: list[str], node: ast.ImportFrom) -> str | None:
    """The absolute module `from ... import` reads from, or None when it climbs above the root."""
    if node.level == 0:
        return node.module or ""
    if node.level - 1 > len(package):
        return None
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _resolve(name: str, modules: dict[str, str]) -> set[str]:
    exact = {path for path, module in modules.items() if module == name}
    if exact or "." not in name:
        return exact
    return {path for path, module in modules.items() if module.endswith(f".{name}")}


def dependency_order(changes: list[FileChange]) -> list[str]:
    """Changed file paths, each after the changed files it imports; ties by path. Files in an
    import cycle count as one unit, placed by their first path, and keep path order inside it."""
    graph = import_graph(changes)
    components = _components(graph)
    unit_of = {path: i for i, unit in enumerate(components) for path in unit}
    needs: dict[int, set[int]] = {i: set() for i in range(len(components))}
    for path, imported in graph.items():
        needs[unit_of[path]].update(
            unit_of[dep] for dep in imported if unit_of[dep] != unit_of[path]
        )
    ready = [(components[i][0], i) for i, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    done: set[int] = set()
    while ready:
        _, unit = heapq.heappop(ready)
        order.extend(components[unit])
        done.add(unit)
        for other, deps in needs.items():
            if other not in done and unit in deps and deps <= done:
                heapq.heappush(ready, (components[other][0], other))
    return order


def transitive_imports(changes: list[FileChange]) -> dict[str, set[str]]:
    """For each changed file, the other changed files it imports directly or through others."""
    return {path: reach - {path} for path, reach in _closure(import_graph(changes)).items()}


def _closure(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    closure: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            path = stack.pop()
            if path not in seen:
                seen.add(path)
                stack.extend(graph[path])
        closure[start] = seen
    return closure


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of `graph` (import cycles), each a sorted list of paths."""
    reach = {path: {path} | seen for path, seen in _closure(graph).items()}
    components: list[list[str]] = []
    placed: set[str] = set()
    for path in sorted(graph):
        if path not in placed:
            unit = sorted(other for other in reach[path] if path in reach[other])
            placed.update(unit)
            components.append(unit)
    return components
