"""Which of a commit's test files the repository's own pytest configuration collects as tests.

pytest collects every file named on its command line as a test module, whatever the
repository's `python_files`, `testpaths` or `norecursedirs` say, and gold validation names a
commit's test files. So the harness applies the repository's rules itself, to the tree at the
commit being validated (the configuration changes over history), and names only the files a
plain `pytest` in that tree would collect:

- the configuration file pytest would use: from the files' common folder up to the tree's root,
  in each folder `pytest.ini`, `.pytest.ini`, `pyproject.toml` (`[tool.pytest.ini_options]`),
  `tox.ini` (`[pytest]`), `setup.cfg` (`[tool:pytest]`), the first that has a pytest section;
- under one of `testpaths` (relative to the configuration's folder, globs allowed), when set;
- no folder on the way matching `norecursedirs`, none ignored by `--ignore`/`--ignore-glob` in
  `addopts` or by a `conftest.py`'s literal top-level `collect_ignore`/`collect_ignore_glob`;
- a `.py` file matching `python_files`, and never a `conftest.py` or `__init__.py`.

A `collect_ignore` built by code (a condition on the Python version, say) cannot be read
without running the conftest; only literal lists, `+=` and `.append`/`.extend` of literals count.
"""

import ast
import configparser
import fnmatch
import glob
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.harness.package import HarnessError

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
DEFAULT_NORECURSEDIRS = (
    "*.egg",
    ".*",
    "_darcs",
    "build",
    "CVS",
    "dist",
    "node_modules",
    "venv",
    "{arch}",
)
NEVER_TEST_MODULES = ("conftest.py", "__init__.py")
_CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


class PytestConfigError(HarnessError):
    """The repository's pytest configuration cannot be read, so what it collects is unknown."""


@dataclass(frozen=True)
class PytestConfig:
    """The collection rules of a tree's pytest configuration (pytest's defaults when none)."""

    inifile: str | None
    rootdir: PurePosixPath
    testpaths: tuple[str, ...] = ()
    python_files: tuple[str, ...] = DEFAULT_PYTHON_FILES
    norecursedirs: tuple[str, ...] = DEFAULT_NORECURSEDIRS
    ignore: tuple[str, ...] = ()
    ignore_glob: tuple[str, ...] = ()


def _words(value: object) -> tuple[str, ...]:
    """An ini value split as pytest splits `args` options; a TOML list as it is."""
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return tuple(shlex.split(str(value)))


def _ini_section(path: Path, section: str) -> dict[str, object] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False, allow_no_value=True)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise PytestConfigError(f"{path.name}: cannot be read as pytest reads it ({exc})") from exc
    if not parser.has_section(section):
        return None
    return {key: value or "" for key, value in parser.items(section)}


def _pyproject_section(path: Path) -> dict[str, object] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PytestConfigError(f"{path.name}: not valid TOML ({exc})") from exc
    pytest_table = data.get("tool", {}).get("pytest")
    if not isinstance(pytest_table, dict):
        return None
    options = pytest_table.get("ini_options")
    native = {k: v for k, v in pytest_table.items() if k != "ini_options"}
    if isinstance(options, dict):
        return {**native, **options}
    return native or None


def _section_of(path: Path) -> dict[str, object] | None:
    """The pytest options `path` holds, or None when it has no pytest section."""
    if path.name in ("pytest.ini", ".pytest.ini"):
        return _ini_section(path, "pytest") or {}
    if path.name == "pyproject.toml":
        return _pyproject_section(path)
    if path.name == "tox.ini":
        return _ini_section(path, "pytest")
    return _ini_section(path, "tool:pytest")


def _ignores(addopts: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`--ignore` and `--ignore-glob` values in `addopts` (either spelling of each)."""
    found: dict[str, list[str]] = {"--ignore": [], "--ignore-glob": []}
    args = iter(addopts)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in found:
            found[name].append(value if eq else next(args, ""))
    return tuple(found["--ignore"]), tuple(found["--ignore-glob"])


def read_config(tree: Path, files: list[str]) -> PytestConfig:
    """The configuration pytest would use in `tree` when given `files` (relative paths)."""
    parents = [PurePosixPath(f).parent for f in files] or [PurePosixPath(".")]
    common = PurePosixPath(*_common_parts([p.parts for p in parents]))
    for folder in [common, *common.parents]:
        for name in _CONFIG_FILES:
            path = tree / folder / name
            if not path.is_file():
                continue
            options = _section_of(path)
            if options is None:
                continue
            addopts = _words(options.get("addopts", ""))
            ignore, ignore_glob = _ignores(addopts)
            return PytestConfig(
                inifile=(folder / name).as_posix(),
                rootdir=folder,
                testpaths=_words(options.get("testpaths", "")),
                python_files=_words(options.get("python_files", "")) or DEFAULT_PYTHON_FILES,
                norecursedirs=_words(options.get("norecursedirs", "")) or DEFAULT_NORECURSEDIRS,
                ignore=ignore,
                ignore_glob=ignore_glob,
            )
    return PytestConfig(inifile=None, rootdir=PurePosixPath("."))


def _common_parts(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    common = paths[0]
    for parts in paths[1:]:
        size = 0
        while size < min(len(common), len(parts)) and common[size] == parts[size]:
            size += 1
        common = common[:size]
    return common


def fnmatch_ex(pattern: str, path: PurePosixPath) -> bool:
    """pytest's own match: a pattern without a slash matches the name, else the whole path."""
    if "/" not in pattern:
        return fnmatch.fnmatch(path.name, pattern)
    return fnmatch.fnmatch(path.as_posix(), pattern) or fnmatch.fnmatch(
        path.as_posix(), f"*/{pattern}"
    )


def _under(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return folder == PurePosixPath(".") or path == folder or folder in path.parents


def _testpath_roots(tree: Path, config: PytestConfig) -> list[PurePosixPath]:
    """Each `testpaths` entry as a folder or file relative to the tree, globs expanded."""
    roots = []
    for entry in config.testpaths:
        base = config.rootdir / entry
        if glob.has_magic(entry):
            found = sorted(p.relative_to(tree) for p in tree.glob(base.as_posix()))
            roots += [PurePosixPath(p.as_posix()) for p in found]
        else:
            roots.append(PurePosixPath(*base.parts) if base.parts else PurePosixPath("."))
    return roots


def _literal_strings(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return None


def conftest_ignores(source: bytes) -> tuple[list[str], list[str]]:
    """The literal top-level `collect_ignore` and `collect_ignore_glob` of a conftest's source.

    A conftest that does not parse ignores nothing here: pytest refuses it when the tests run,
    and that run's reason says so."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return [], []
    found: dict[str, list[str]] = {"collect_ignore": [], "collect_ignore_glob": []}
    for stmt in module.body:
        if isinstance(stmt, ast.Assign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names = [t.id for t in targets if isinstance(t, ast.Name) and t.id in found]
            values = _literal_strings(stmt.value)
            for name in names:
                if values is not None:
                    kept = found[name] if isinstance(stmt, ast.AugAssign) else []
                    found[name] = [*kept, *values]
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in found
                and len(call.args) == 1
            ):
                arg = call.args[0]
                if func.attr == "append" and isinstance(arg, ast.Constant):
                    if isinstance(arg.value, str):
                        found[func.value.id].append(arg.value)
                elif func.attr == "extend" and (values := _literal_strings(arg)) is not None:
                    found[func.value.id] += values
    return found["collect_ignore"], found["collect_ignore_glob"]


def why_not_collected(tree: Path, config: PytestConfig, rel: str) -> str | None:
    """Why a plain `pytest` in `tree` would not collect `rel` as a test module, or None."""
    path = PurePosixPath(rel)
    if path.name in NEVER_TEST_MODULES:
        return f"{path.name} is never a test module"
    if path.suffix != ".py":
        return "not a Python file"
    roots = _testpath_roots(tree, config) or [config.rootdir]
    start = next((root for root in roots if _under(path, root)), None)
    if start is None:
        return f"outside testpaths ({' '.join(config.testpaths)}) of {config.inifile}"
    for folder in path.parents:
        if folder == start or not _under(folder, start):
            break
        if pattern := next((p for p in config.norecursedirs if fnmatch_ex(p, folder)), None):
            return f"under {folder.as_posix()}/, which norecursedirs {pattern!r} skips"
    for ignored in config.ignore:
        if _under(path, PurePosixPath(ignored.rstrip("/"))):
            return f"--ignore={ignored} in addopts of {config.inifile}"
    for pattern in config.ignore_glob:
        if fnmatch.fnmatch(path.as_posix(), pattern):
            return f"--ignore-glob={pattern} in addopts of {config.inifile}"
    if why := _conftest_ignored(tree, path):
        return why
    if not any(fnmatch_ex(pattern, path) for pattern in config.python_files):
        patterns = " ".join(config.python_files)
        where = config.inifile or "pytest's default"
        return f"its name does not match python_files ({patterns}) of {where}"
    return None


def _conftest_ignored(tree: Path, path: PurePosixPath) -> str | None:
    for folder in path.parents:
        conftest = tree / folder / "conftest.py"
        if not conftest.is_file():
            continue
        ignore, ignore_glob = conftest_ignores(conftest.read_bytes())
        inside = path.relative_to(folder) if folder != PurePosixPath(".") else path
        where = (folder / "conftest.py").as_posix()
        for entry in ignore:
            if _under(inside, PurePosixPath(entry.rstrip("/"))):
                return f"collect_ignore {entry!r} in {where}"
        for pattern in ignore_glob:
            if fnmatch.fnmatch(inside.as_posix(), pattern):
                return f"collect_ignore_glob {pattern!r} in {where}"
    return None


def collected_test_files(tree: Path, files: list[str]) -> tuple[list[str], dict[str, str]]:
    """(the files of `files` present in `tree` that its pytest configuration collects as test
    modules, in order; each other present file with why not). Files absent from the tree are
    in neither."""
    present = [f for f in files if (tree / f).is_file()]
    config = read_config(tree, present)
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for rel in present:
        if why := why_not_collected(tree, config, rel):
            dropped[rel] = why
        else:
            kept.append(rel)
    return kept, dropped
