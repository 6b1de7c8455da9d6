"""Fail-fast style score of a repository's Python at HEAD (LoRA Training Strategy §6.7), 0–100.

The LoRA Training Strategy (§6.7) ranks candidate corpus repositories by how much their code fails
fast: narrow `except` clauses, no silent swallowing, errors raised with their cause, `d["key"]`
rather than `.get()`. The score reads production code only: test files (a `test`/`tests` folder, or
one ending or starting with it such as `typing_tests`, and `test_*.py`, `*_test.py`, `conftest.py`)
are counted in `test_files` and skipped, because the style the model should learn is the library's,
and tests catch broadly and index freely for reasons of their own. Files that do not parse are
counted in `unparsable_files` and skipped; when no file is left to score, that is an error, not a
score. Files are read from git objects at HEAD (symlinks and submodules left out), never from a work
tree.

Metrics (stable names in `StyleScore.metrics`), with their weight and how they earn marks (0–1):

- `bare_except_ratio` (15): bare `except:` / all handlers; lower is better, no marks at 0.1.
- `blind_except_ratio` (15): handlers catching `Exception` or `BaseException`, alone or in a
  tuple / all handlers; lower is better, no marks at 0.5.
- `try_except_pass_count` (15): handlers whose body is only `pass` or `...`; marked on their share
  of all handlers, lower is better, no marks at 0.5.
- `specific_exception_ratio` (10): handlers naming only specific classes / all handlers; the ratio.
- `subscript_vs_get_ratio` (15): `x["const"]` reads / (those + `.get(k)` and `.get(k, d)` calls);
  the ratio.
- `assert_density` (5): `assert` statements per 1,000 lines of code; full marks at 5.
- `raise_density` (15): `raise` statements per 1,000 lines of code; full marks at 15.
- `exception_chaining_ratio` (10): `raise X from y` / `raise X` inside except handlers; the ratio.

The score is the sum of weight × marks. A penalised ratio loses its marks linearly: a tenth of the
handlers bare, or half of them blind or silent, is as bad as it gets. These thresholds put attrs
(the strategy's top-tier example) in its 75–100 band and long-running UI code that catches
broadly (textual, rich) near 60.

A ratio whose denominator is empty (no handlers, no raises inside handlers, no key reads) takes
its best value: the code shows none of the pattern the metric penalises. The denominators are in
the metrics too (`handlers`, `raises_in_handlers`, `key_reads`), as are `lines_of_code` (non-blank
lines that are not only a comment), `test_files` and `unparsable_files`. A bare `raise` inside a
handler re-raises the same exception and is left out of the chaining ratio; `raise X from None`
counts as chained (the author decided what the cause is).
"""

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from engine.core.errors import CraError
from engine.intake.manifest import StyleScore
from engine.isolation.gitobjects import read_blobs, repo_git

BLIND_NAMES = frozenset({"Exception", "BaseException"})
ASSERT_FULL_MARKS_PER_KLOC = 5.0
RAISE_FULL_MARKS_PER_KLOC = 15.0
BARE_NO_MARKS_AT = 0.1
BLIND_NO_MARKS_AT = 0.5
SILENT_NO_MARKS_AT = 0.5
WEIGHTS = {
    "bare_except_ratio": 15,
    "blind_except_ratio": 15,
    "try_except_pass_count": 15,
    "specific_exception_ratio": 10,
    "subscript_vs_get_ratio": 15,
    "assert_density": 5,
    "raise_density": 15,
    "exception_chaining_ratio": 10,
}
NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class StyleScoreError(CraError):
    """The style score of a repository cannot be computed."""


@dataclass
class StyleCounts:
    """Raw counts over the production files measured; the metrics are derived from these."""

    files: int = 0
    test_files: int = 0
    unparsable_files: int = 0
    lines_of_code: int = 0
    handlers: int = 0
    bare_handlers: int = 0
    blind_handlers: int = 0
    silent_handlers: int = 0
    asserts: int = 0
    raises: int = 0
    raises_in_handlers: int = 0
    chained_raises: int = 0
    key_subscripts: int = 0
    get_calls: int = 0

    def add(self, other: "StyleCounts") -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def metrics(self) -> dict[str, float]:
        """The eight metrics, then the denominators and file counts, rounded for the manifest."""
        handlers = self.handlers
        key_reads = self.key_subscripts + self.get_calls
        kloc = self.lines_of_code / 1000
        values = {
            "bare_except_ratio": _ratio(self.bare_handlers, handlers, empty=0.0),
            "blind_except_ratio": _ratio(self.blind_handlers, handlers, empty=0.0),
            "try_except_pass_count": float(self.silent_handlers),
            "specific_exception_ratio": _ratio(
                handlers - self.bare_handlers - self.blind_handlers, handlers, empty=1.0
            ),
            "subscript_vs_get_ratio": _ratio(self.key_subscripts, key_reads, empty=1.0),
            "assert_density": self.asserts / kloc if kloc else 0.0,
            "raise_density": self.raises / kloc if kloc else 0.0,
            "exception_chaining_ratio": _ratio(
                self.chained_raises, self.raises_in_handlers, empty=1.0
            ),
            "handlers": float(handlers),
            "raises_in_handlers": float(self.raises_in_handlers),
            "key_reads": float(key_reads),
            "lines_of_code": float(self.lines_of_code),
            "test_files": float(self.test_files),
            "unparsable_files": float(self.unparsable_files),
        }
        return {name: round(value, 4) for name, value in values.items()}

    def score(self) -> float:
        """The weighted sum of each metric's share of full marks, 0–100."""
        metrics = self.metrics()
        silent_share = _ratio(self.silent_handlers, self.handlers, empty=0.0)
        marks = {
            "bare_except_ratio": _penalty(metrics["bare_except_ratio"], BARE_NO_MARKS_AT),
            "blind_except_ratio": _penalty(metrics["blind_except_ratio"], BLIND_NO_MARKS_AT),
            "try_except_pass_count": _penalty(silent_share, SILENT_NO_MARKS_AT),
            "specific_exception_ratio": metrics["specific_exception_ratio"],
            "subscript_vs_get_ratio": metrics["subscript_vs_get_ratio"],
            "assert_density": min(1.0, metrics["assert_density"] / ASSERT_FULL_MARKS_PER_KLOC),
            "raise_density": min(1.0, metrics["raise_density"] / RAISE_FULL_MARKS_PER_KLOC),
            "exception_chaining_ratio": metrics["exception_chaining_ratio"],
        }
        return round(sum(WEIGHTS[name] * mark for name, mark in marks.items()), 1)


def _ratio(part: int, whole: int, *, empty: float) -> float:
    return part / whole if whole else empty


def _penalty(ratio: float, no_marks_at: float) -> float:
    return max(0.0, 1 - ratio / no_marks_at)


def is_test_path(path: str) -> bool:
    """Whether `path` is test code: in a tests folder, or named like a test module."""
    parts = PurePosixPath(path).parts
    for folder in parts[:-1]:
        name = folder.lower()
        if name in ("test", "tests") or name.startswith(("test_", "tests_")):
            return True
        if name.endswith(("_test", "_tests")):
            return True
    name = parts[-1]
    return name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py")


def count_source(source: bytes) -> StyleCounts:
    """The counts of one module; SyntaxError, ValueError or RecursionError if it does not parse."""
    tree = ast.parse(source)
    counts = StyleCounts(files=1, lines_of_code=_lines_of_code(source))
    raises_in_handlers: dict[int, ast.Raise] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            _count_handler(node, counts)
            raises = (r for r in _raises_within(node.body) if r.exc is not None)
            raises_in_handlers.update((id(r), r) for r in raises)
        elif isinstance(node, ast.Assert):
            counts.asserts += 1
        elif isinstance(node, ast.Raise):
            counts.raises += 1
        elif isinstance(node, ast.Subscript):
            counts.key_subscripts += _is_key_read(node)
        elif isinstance(node, ast.Call):
            counts.get_calls += _is_get_call(node)
    counts.raises_in_handlers = len(raises_in_handlers)
    counts.chained_raises = sum(r.cause is not None for r in raises_in_handlers.values())
    return counts


def _lines_of_code(source: bytes) -> int:
    stripped = (line.strip() for line in source.splitlines())
    return sum(1 for line in stripped if line and not line.startswith(b"#"))


def _count_handler(handler: ast.ExceptHandler, counts: StyleCounts) -> None:
    counts.handlers += 1
    if handler.type is None:
        counts.bare_handlers += 1
    elif _names_blind(handler.type):
        counts.blind_handlers += 1
    counts.silent_handlers += all(_is_silent(stmt) for stmt in handler.body)


def _names_blind(node: ast.expr) -> bool:
    if isinstance(node, ast.Tuple):
        return any(_names_blind(element) for element in node.elts)
    if isinstance(node, ast.Name):
        return node.id in BLIND_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in BLIND_NAMES
    return False


def _is_silent(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and stmt.value.value is Ellipsis
    )


def _is_key_read(node: ast.Subscript) -> bool:
    return (
        isinstance(node.ctx, ast.Load)
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    )


def _is_get_call(node: ast.Call) -> bool:
    return (
        isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and 1 <= len(node.args) <= 2
        and not node.keywords
        and not any(isinstance(arg, ast.Starred) for arg in node.args)
    )


def _raises_within(body: list[ast.stmt]) -> Iterator[ast.Raise]:
    """Raise statements in `body`, not descending into functions or classes defined there."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, NESTED_SCOPES):
            continue
        if isinstance(node, ast.Raise):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def style_of_sources(sources: Iterable[tuple[str, bytes]], origin: str) -> StyleScore:
    """Score `(path, source)` pairs: test files and files that do not parse are only counted.

    `origin` names where the sources came from in the error raised when no file is left to score.
    """
    total = StyleCounts()
    for path, source in sources:
        if is_test_path(path):
            total.test_files += 1
            continue
        try:
            total.add(count_source(source))
        except (SyntaxError, ValueError, RecursionError):
            total.unparsable_files += 1
    if not total.files:
        raise StyleScoreError(
            f"{origin}: no production Python file to score ({total.test_files} test files, "
            f"{total.unparsable_files} that do not parse as Python 3)"
        )
    return StyleScore(score=total.score(), files=total.files, metrics=total.metrics())


def score_style(repo: Path) -> StyleScore:
    """The fail-fast style score of the Python files in `repo`'s HEAD commit."""
    return style_of_sources(python_sources_at_head(repo), f"{repo} at HEAD")


def python_sources_at_head(repo: Path) -> list[tuple[str, bytes]]:
    """(path, content) of every regular `.py` file in HEAD's tree: one ls-tree, one cat-file."""
    git_dir = repo / ".git"
    if not git_dir.exists():
        raise StyleScoreError(f"{repo}: not a git repository (no .git); cannot score its style")
    head = repo_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        raise StyleScoreError(f"{repo}: HEAD names no commit; cannot score an empty repository")
    commit = head.stdout.decode("ascii").strip()
    entries = [
        (path, sha)
        for mode, kind, sha, path in _tree_entries(
            repo_git(repo, "ls-tree", "-r", "-z", commit).stdout
        )
        if kind == "blob" and mode in ("100644", "100755") and path.endswith(".py")
    ]
    if not entries:
        return []
    blobs = read_blobs(repo, [sha for _, sha in entries])
    return [(path, blob) for (path, _), blob in zip(entries, blobs, strict=True)]


def _tree_entries(out: bytes) -> Iterator[tuple[str, str, str, str]]:
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, sha = meta.decode("ascii").split(" ")
        yield mode, kind, sha, raw_path.decode("utf-8", "surrogateescape")
