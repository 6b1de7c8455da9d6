"""Which tests cover a commit: the test files it changes, or test files that import its modules.

The import check reads the test files at each commit, so it runs only on the commits that
survived the cheap rules and changed no test file, through the pipeline's one object reader.
"""

import functools
import re
from collections.abc import Sequence

from engine.mining.blobs import TREE_MODE, ObjectReader
from engine.mining.log import LogCommit
from engine.mining.paths import PathRoles, is_python

IMPORT_STATEMENT = re.compile(
    r"\n[ \t]*(from[ \t]+[\w.]+[ \t]+import[ \t]*\([^)]*\)|(?:from|import)[ \t][^\n]*)"
)
_FROM_IMPORT = re.compile(r"\s*from\s+([\w.]+)\s+import\s+(.*)", re.DOTALL)
_COMMENT = re.compile(r"#[^\n]*")
_IMPORT = re.compile(r"\s*import\s+(.*)")
_NAME = re.compile(r"[A-Za-z_][\w.]*")


def module_names(path: str) -> set[str]:
    """Dotted names `path` may be imported as: its full dotted path and each shorter tail of it,
    since the import root (`src/`, the repo root, a subfolder) is not known."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return {".".join(parts[i:]) for i in range(len(parts))}


@functools.lru_cache(maxsize=1 << 16)
def imported_modules(statement: str) -> frozenset[str]:
    """Modules an import statement loads, packages on the way included.

    `from a.b import c` loads a, a.b and a.b.c (when c is a module); `import a.b as x` loads a
    and a.b. Relative imports name no module of the package under test and count for nothing.
    """
    if match := _FROM_IMPORT.match(statement):
        base, rest = match.groups()
        if base.startswith("."):
            return frozenset()
        names = [f"{base}.{name}" for name in _names(rest)]
        return frozenset(p for name in [base, *names] for p in _prefixes(name))
    if match := _IMPORT.match(statement):
        return frozenset(p for name in _names(match.group(1)) for p in _prefixes(name))
    return frozenset()


def _names(text: str) -> list[str]:
    text = _COMMENT.sub("", text).replace("(", " ").replace(")", " ").replace("\\", " ")
    names = []
    for item in text.split(","):
        words = item.split()
        if words and _NAME.fullmatch(words[0]):
            names.append(words[0])
    return names


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def covering_tests(
    objects: ObjectReader, commits: Sequence[LogCommit], roles: PathRoles
) -> dict[str, tuple[str, ...]]:
    """For each commit, the test files that cover it: the ones it changes, else the ones that
    import a module it changes (empty when neither exists)."""
    index = TestImportIndex(objects, roles)
    covering: dict[str, tuple[str, ...]] = {}
    for commit in commits:
        paths = [f.path for f in commit.files]
        if changed := roles.test_files(paths):
            covering[commit.sha] = tuple(changed)
            continue
        modules = {m for p in roles.code_files(paths) if is_python(p) for m in module_names(p)}
        covering[commit.sha] = (
            tuple(
                path
                for path, oid in index.test_files(commit.sha)
                if index.imported_modules(oid) & modules
            )
            if modules
            else ()
        )
    return covering


class TestImportIndex:
    """The Python test files in a commit's tree and what each imports.

    Trees and files are read once each and remembered: commits share most of their trees, so
    after the first commit only the trees and test files a commit changed are read.
    """

    __test__ = False

    def __init__(self, objects: ObjectReader, roles: PathRoles) -> None:
        self._objects = objects
        self._roles = roles
        self._under: dict[tuple[bytes, str], tuple[tuple[str, bytes], ...]] = {}
        self._imports: dict[bytes, frozenset[str]] = {}

    def test_files(self, sha: str) -> tuple[tuple[str, bytes], ...]:
        """(path, blob id) of every Python test file at commit `sha`, sorted by path."""
        return self._walk(self._objects.root_tree(sha), "")

    def _walk(self, tree: bytes, prefix: str) -> tuple[tuple[str, bytes], ...]:
        if (known := self._under.get((tree, prefix))) is not None:
            return known
        found: list[tuple[str, bytes]] = []
        for mode, name, oid in self._objects.tree_entries(tree):
            path = prefix + name
            if mode == TREE_MODE:
                found += self._walk(oid, path + "/")
            elif mode.startswith(b"100") and is_python(path) and self._roles.role(path) == "test":
                found.append((path, oid))
        result = tuple(sorted(found))
        self._under[(tree, prefix)] = result
        return result

    def imported_modules(self, blob: bytes) -> frozenset[str]:
        """Modules the import lines of the test file `blob` load."""
        if (known := self._imports.get(blob)) is not None:
            return known
        text = "\n" + self._objects.read_blob(blob).decode("utf-8", "replace")
        modules = frozenset().union(*map(imported_modules, IMPORT_STATEMENT.findall(text)))
        self._imports[blob] = modules
        return modules
