"""A deterministic index of a worktree's Python files: docstrings, symbols and imports.

The harness builds it from the parent commit's checkout before retrieval ranks files for the
planner. Every `*.py` file under the tree is indexed, in path order, except under hidden folders,
`__pycache__`, `.venv`, `build` and `dist`. Each file records its module docstring's first line,
its top-level and class-level symbols (functions, classes, methods as `Class.method`) with line
ranges and a one-line signature, and its imports resolved to repository files where the import
names a module in the repository. A file that cannot be read or parsed is recorded with the
reason instead of its symbols; it never stops the index. The same tree always gives the same
`RepoIndex.model_dump_json()`, byte for byte.
"""

import ast
import os
import stat
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.harness.ast_diff import from_base, module_name
from engine.harness.package import HarnessError

SKIPPED_DIRS = frozenset({"__pycache__", ".venv", "build", "dist"})

SymbolKind = Literal["function", "async function", "class", "method", "async method"]
_SymbolNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Symbol(_Model):
    """A function, class or method; `name` is dotted inside classes (`Class.method`).

    `start` is the first line (its first decorator's, if any) and `end` the last, 1-based.
    """

    name: str
    kind: SymbolKind
    start: int
    end: int
    signature: str


class Import(_Model):
    """One imported module (absolute when resolvable), the names taken from it, and the
    repository files it names: the module itself and each imported name that is a module."""

    line: int
    module: str
    names: list[str]
    files: list[str]


class FileEntry(_Model):
    """One Python file; `error` says why it has no symbols or imports (unreadable, unparsable)."""

    path: str
    module: str
    lines: int
    docstring: str
    symbols: list[Symbol]
    imports: list[Import]
    error: str | None


class RepoIndex(_Model):
    """Every indexed Python file of a tree, in path order."""

    files: list[FileEntry]

    def file(self, path: str) -> FileEntry:
        """The entry for `path` (a tree-relative POSIX path)."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(f"{path} is not in the index")


def _python_files(tree: Path) -> list[str]:
    """The tree-relative POSIX paths of the `*.py` files the index covers, sorted."""
    found: list[str] = []
    for folder, dirs, files in os.walk(tree, onerror=_walk_error):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        rel = Path(folder).relative_to(tree)
        found.extend((rel / name).as_posix() for name in files if name.endswith(".py"))
    return sorted(found)


def _walk_error(exc: OSError) -> None:
    raise HarnessError(f"{exc.filename}: cannot list the folder to index it: {exc.strerror}")


def build_index(tree: Path) -> RepoIndex:
    """Index every Python file under `tree` (see the module docstring)."""
    paths = _python_files(tree)
    modules = {path: module_name(path) for path in paths}
    return RepoIndex(files=[_entry(tree, path, modules) for path in paths])


def _entry(tree: Path, path: str, modules: dict[str, str]) -> FileEntry:
    mode = (tree / path).lstat().st_mode
    if not stat.S_ISREG(mode):
        what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        return _unreadable(path, modules[path], 0, f"{what}; not read")
    data = (tree / path).read_bytes()
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            module = ast.parse(data, filename=path)
        symbols, imports = _symbols(module.body, ""), _imports(path, module, modules)
    except SyntaxError as exc:
        error = f"syntax error: line {exc.lineno}: {exc.msg}"
        return _unreadable(path, modules[path], lines, error)
    except ValueError as exc:
        return _unreadable(path, modules[path], lines, f"syntax error: {exc}")
    except (RecursionError, MemoryError):
        error = "cannot be parsed: nested too deeply for Python's parser"
        return _unreadable(path, modules[path], lines, error)
    doc = ast.get_docstring(module)
    return FileEntry(
        path=path,
        module=modules[path],
        lines=lines,
        docstring=doc.strip().splitlines()[0] if doc and doc.strip() else "",
        symbols=symbols,
        imports=imports,
        error=None,
    )


def _unreadable(path: str, module: str, lines: int, error: str) -> FileEntry:
    return FileEntry(
        path=path, module=module, lines=lines, docstring="", symbols=[], imports=[], error=error
    )


def _symbols(body: list[ast.stmt], prefix: str) -> list[Symbol]:
    found: list[Symbol] = []
    for node in body:
        if not isinstance(node, _SymbolNode):
            continue
        name = f"{prefix}{node.name}"
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        found.append(
            Symbol(
                name=name,
                kind=_kind(node, in_class=bool(prefix)),
                start=start,
                end=node.end_lineno or node.lineno,
                signature=_signature(node),
            )
        )
        if isinstance(node, ast.ClassDef):
            found.extend(_symbols(node.body, f"{name}."))
    return found


def _kind(node: _SymbolNode, in_class: bool) -> SymbolKind:
    if isinstance(node, ast.ClassDef):
        return "class"
    is_async = isinstance(node, ast.AsyncFunctionDef)
    if in_class:
        return "async method" if is_async else "method"
    return "async function" if is_async else "function"


def _signature(node: _SymbolNode) -> str:
    if isinstance(node, ast.ClassDef):
        bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
        return f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}"
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"


def _imports(path: str, module: ast.Module, modules: dict[str, str]) -> list[Import]:
    package = modules[path].split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    found: list[Import] = []
    nodes = [n for n in ast.walk(module) if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset)):
        if isinstance(node, ast.Import):
            found.extend(
                Import(
                    line=node.lineno,
                    module=alias.name,
                    names=[],
                    files=[f for f in _files(alias.name, modules) if f != path],
                )
                for alias in node.names
            )
            continue
        names = [alias.name for alias in node.names]
        base = from_base(package, node)
        if base is None:
            spelled = "." * node.level + (node.module or "")
            found.append(Import(line=node.lineno, module=spelled, names=names, files=[]))
            continue
        files = set(_files(base, modules))
        for name in names:
            files.update(_files(f"{base}.{name}" if base else name, modules))
        files.discard(path)
        found.append(Import(line=node.lineno, module=base, names=names, files=sorted(files)))
    return found


def _files(name: str, modules: dict[str, str]) -> list[str]:
    """Repository files whose module is `name`, or failing that ends in `.name` (a repository
    whose import root is deeper than its top folder)."""
    if not name:
        return []
    exact = sorted(path for path, module in modules.items() if module == name)
    if exact:
        return exact
    return sorted(path for path, module in modules.items() if module.endswith(f".{name}"))
