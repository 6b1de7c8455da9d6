"""Find the requirements a repository declares for installing it and running its tests.

Everything is read from the files committed at one revision (HEAD, or an older packaged commit
in `requirement_history`), never by running the repository's code:
`pyproject.toml` (`[project].dependencies`, test-named extras and PEP 735 dependency groups),
`setup.cfg` for projects without a `[project]` table, requirements files (`-r` includes followed
inside the repository only), the deps, extras and dependency groups of tox.ini's test
environments (and the `pip install` lines of their commands: `pip install -e .[d]` makes the `d`
extra a test dependency), and the string literals passed to `session.install` in noxfile.py's test
sessions (read with `ast`). Each requirement keeps every place it came from, an extra or group
reached from tox or nox written with the place that named it (`… cov (via tox.ini [testenv]
dependency_groups)`); what cannot ship as a wheel (editable installs, options, URLs, paths) is
dropped with a note naming the file. The operator's `--pin NAME==VER` and `--exclude NAME` apply
last (`apply_choices`).
"""

import ast
import configparser
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict

from engine.intake.checks.requirements import DEFAULT_BUILD_REQUIRES, unnamed_reason
from engine.packaging.errors import PackagingError
from engine.packaging.tree_files import TreeFiles

PYPROJECT = "pyproject.toml"
SETUP_PY = "setup.py"
SETUP_CFG = "setup.cfg"
TOX_INI = "tox.ini"
NOXFILE = "noxfile.py"
# Extras and dependency groups read as test dependencies; `dev` only where none of these exist.
TEST_GROUP_NAMES = ("test", "tests", "testing")
FALLBACK_GROUP_NAMES = ("dev",)
RUNTIME_FILE_WORDS = frozenset({"base", "main", "prod", "production", "runtime", "install"})
_FILE_NOISE_WORDS = frozenset({"requirements", "requirement", "reqs", "txt"})
_TAKES_VALUE = frozenset(
    {
        *("-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url"),
        *("--extra-index-url", "-f", "--find-links", "--trusted-host", "--hash"),
    }
)
_REPO_ITSELF = re.compile(r"^\.(?:/)?(?:\[(?P<extras>[^\]]*)\])?$")
_TOX_FACTORS = re.compile(r"^(?P<factors>!?[\w.]+(?:[-,]\s*!?[\w.]+)*)\s*:\s+(?P<rest>\S.*)$")
_TOX_SUBSTITUTION = re.compile(r"\{\[(?P<section>[^\]]+)\](?P<key>[\w-]+)\}")
_PYTHON_FACTOR = re.compile(r"^(?:py|pypy)[\d.]*$|^\d\.[\d{},]+$")
_PIP_INSTALL = re.compile(r"^(?:\S*python\S*\s+-m\s+)?(?:uv\s+)?pip3?\s+install\s+(?P<args>.+)$")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==(?P<version>[\w.!+-]+)$")
_TOX_MAX_DEPTH = 5


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FoundRequirement(_Model):
    """A requirement (PEP 508, normalised by packaging) and every place that declared it."""

    text: str
    sources: list[str]


class Dependencies(_Model):
    """What the repository needs installed to run its tests, and how it is installed itself."""

    project_name: str | None
    requires_python: str | None
    requirements: list[FoundRequirement]
    install_repo: bool
    build_requires: list[str]
    notes: list[str]

    def texts(self) -> list[str]:
        return [r.text for r in self.requirements]


@dataclass(frozen=True)
class GroupNames:
    """Which extras, dependency groups and requirements files hold test dependencies.

    In a table of extras or groups, the `primary` names are taken; the `fallback` names only
    when the table has none of them. Requirements files may use either.
    """

    primary: tuple[str, ...] = TEST_GROUP_NAMES
    fallback: tuple[str, ...] = FALLBACK_GROUP_NAMES

    @classmethod
    def exactly(cls, names: Iterable[str]) -> "GroupNames":
        return cls(primary=tuple(canonicalize_name(n) for n in names), fallback=())

    def chosen(self, available: Iterable[str]) -> list[str]:
        """The names in `available` to read, in their own spelling."""
        names = list(available)
        for wanted in (self.primary, self.fallback):
            picked = [n for n in names if canonicalize_name(n) in wanted]
            if picked:
                return picked
        return []

    def all(self) -> frozenset[str]:
        return frozenset(self.primary) | frozenset(self.fallback)


def _str_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PackagingError(f"{where} must be a list of strings")
    return value


def _table(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise PackagingError(f"{where} must be a table")
    return value


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, content) of each requirements-file line: continuations joined,
    comments and blank lines left out."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = re.split(r"(?:^|\s)#", pending + raw, maxsplit=1)[0].strip()
        pending = ""
        if line:
            yield start, line
    if line := re.split(r"(?:^|\s)#", pending, maxsplit=1)[0].strip():
        yield start, line


def _line_args(line: str) -> list[str]:
    """A requirements line as install arguments: an option and its value, or a requirement
    followed by its per-requirement options (`--hash=…`)."""
    if line.startswith("-"):
        return line.split(None, 1)
    requirement, *options = re.split(r"\s+(?=--?[A-Za-z])", line)
    return [requirement, *(part for option in options for part in option.split(None, 1))]


class _Collector:
    """Gathers requirements with their sources, and notes on what was left out."""

    def __init__(self, files: TreeFiles, names: GroupNames) -> None:
        self.files = files
        self.names = names
        self.pyproject = files.read_toml(PYPROJECT) if files.has(PYPROJECT) else {}
        self.project = _table(self.pyproject.get("project", {}), f"{PYPROJECT} [project]")
        name = self.project.get("name")
        self.project_name = canonicalize_name(name) if isinstance(name, str) else None
        self.found: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self._files_read: set[str] = set()
        self._extras_reading: set[str] = set()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def add(self, text: str, source: str) -> None:
        """Add one requirement; a URL, a path or the repository itself is not added."""
        try:
            req = Requirement(text)
        except InvalidRequirement:
            self.note(f"{source}: {text!r} is not a named requirement (PEP 508); dropped")
            return
        if (reason := unnamed_reason(text)) is not None:
            self.note(f"{source}: {reason}; dropped")
            return
        if self.project_name and canonicalize_name(req.name) == self.project_name:
            self.note(f"{source}: {text!r} names the repository itself; its extras are read")
            for extra in sorted(req.extras):
                self.add_extra(extra, source)
            return
        sources = self.found.setdefault(str(req), [])
        if source not in sources:
            sources.append(source)

    def optional_dependencies(self) -> dict:
        where = f"{PYPROJECT} [project.optional-dependencies]"
        return _table(self.project.get("optional-dependencies", {}), where)

    def dependency_groups(self) -> dict:
        return _table(
            self.pyproject.get("dependency-groups", {}), f"{PYPROJECT} [dependency-groups]"
        )

    def add_extra(self, extra: str, via: str) -> None:
        extras = {canonicalize_name(k): k for k in self.optional_dependencies()}
        key = extras.get(canonicalize_name(extra))
        if key is None:
            self.note(f"{via}: extra {extra!r} is not in {PYPROJECT}; ignored")
            return
        if key in self._extras_reading:
            return
        where = f"{PYPROJECT} [project.optional-dependencies] {key}"
        self._extras_reading.add(key)
        try:
            for text in _str_list(self.optional_dependencies()[key], where):
                self.add(text, _reached(where, via))
        finally:
            self._extras_reading.remove(key)

    def add_group(self, group: str, via: str, chain: tuple[str, ...] = ()) -> None:
        groups = {canonicalize_name(k): k for k in self.dependency_groups()}
        key = groups.get(canonicalize_name(group))
        if key is None:
            self.note(f"{via}: dependency group {group!r} is not in {PYPROJECT}; ignored")
            return
        if key in chain:
            cycle = " -> ".join([*chain, key])
            raise PackagingError(f"{PYPROJECT} [dependency-groups]: include-group cycle {cycle}")
        where = f"{PYPROJECT} [dependency-groups] {key}"
        entries = self.dependency_groups()[key]
        if not isinstance(entries, list):
            raise PackagingError(f"{where} must be a list")
        source = _reached(where, via)
        for entry in entries:
            if isinstance(entry, str):
                self.add(entry, source)
            elif isinstance(entry, dict) and set(entry) == {"include-group"}:
                self.add_group(str(entry["include-group"]), source, (*chain, key))
            else:
                raise PackagingError(
                    f"{where}: {entry!r} is neither a requirement nor {{include-group = …}}"
                )

    def install_args(self, args: Sequence[str], source: str, base: str) -> None:
        """pip-style install arguments; `-r` files are resolved against the folder `base`."""
        i = 0
        while i < len(args):
            arg = args[i]
            if not arg.startswith("-"):
                self._target(arg, source, editable=False)
                i += 1
                continue
            option, _, value = arg.partition("=")
            if not arg.startswith("--") and len(arg) > 2:
                option, value = arg[:2], arg[2:].lstrip("=")
            if option in _TAKES_VALUE and not value and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            self._option(option, value.strip(), source, base)
            i += 1

    def _option(self, option: str, value: str, source: str, base: str) -> None:
        if option in ("-r", "--requirement"):
            self.requirements_file(value, source, base)
        elif option in ("-e", "--editable"):
            self._target(value, source, editable=True)
        elif option == "--hash":
            return
        else:
            shown = f"{option} {value}".strip()
            self.note(f"{source}: option {shown!r} dropped (wheels come from packages/ only)")

    def _target(self, text: str, source: str, editable: bool) -> None:
        if match := _REPO_ITSELF.match(text):
            self.note(f"{source}: {text!r} installs the repository itself (see install_repo)")
            for extra in filter(None, (e.strip() for e in (match["extras"] or "").split(","))):
                self.add_extra(extra, source)
        elif editable:
            self.note(f"{source}: editable install {text!r} dropped")
        else:
            self.add(text, source)

    def requirements_file(self, path: str, via: str | None, base: str) -> None:
        resolved = posixpath.normpath(posixpath.join(base, path))
        if path.startswith("/") or resolved == ".." or resolved.startswith("../"):
            self.note(f"{via}: -r {path} leaves the repository; not followed")
            return
        if resolved in self._files_read:
            return
        self._files_read.add(resolved)
        if not self.files.has(resolved):
            at = self.files.at
            self.note(f"{via}: -r {path}: {resolved} is not a file at {at}; not followed")
            return
        folder = posixpath.dirname(resolved)
        for number, line in _logical_lines(self.files.read(resolved)):
            self.install_args(_line_args(line), f"{resolved}:{number}", folder)


def _reached(where: str, via: str) -> str:
    """`where` a requirement sits, with what led there unless `where` was read for its name."""
    return where if via == PYPROJECT else f"{where} (via {via})"


def _holds_runtime_or_test(path: str, names: GroupNames) -> bool:
    """Whether a requirements file's name says runtime (`requirements.txt`, `…/base.txt`) or
    test (`requirements-dev.txt`, `test-requirements.txt`) rather than docs, lint and the like."""
    words = set(re.split(r"[-_./]+", path.lower())) - _FILE_NOISE_WORDS - {""}
    if not words or words & RUNTIME_FILE_WORDS:
        return True
    return bool({canonicalize_name(w) for w in words} & names.all())


def _requirements_files(files: TreeFiles) -> list[str]:
    found = []
    for path in sorted(files.paths):
        folder, name = posixpath.split(path)
        if not name.endswith(".txt"):
            continue
        if (folder == "" and "requirements" in name) or folder == "requirements":
            found.append(path)
    return found


def _read_requirements_files(c: _Collector) -> None:
    for path in _requirements_files(c.files):
        if not _holds_runtime_or_test(path, c.names):
            c.note(f"{path}: neither a runtime nor a test requirements file; not read")
            continue
        c.requirements_file(path, None, "")


def _read_setup_cfg(c: _Collector) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(c.files.read(SETUP_CFG), source=SETUP_CFG)
    except configparser.Error as exc:
        c.note(f"{SETUP_CFG} cannot be parsed ({exc.message}); not read")
        return
    if parser.has_option("options", "install_requires"):
        for _, line in _logical_lines(parser.get("options", "install_requires")):
            c.add(line, f"{SETUP_CFG} [options] install_requires")
    if parser.has_section("options.extras_require"):
        extras = parser.options("options.extras_require")
        for extra in c.names.chosen(extras):
            where = f"{SETUP_CFG} [options.extras_require] {extra}"
            for _, line in _logical_lines(parser.get("options.extras_require", extra)):
                c.add(line, where)


def _tox_value(parser: configparser.ConfigParser, section: str, key: str, depth: int = 0) -> str:
    """The value of `key` in `section`, `{[section]key}` substitutions expanded."""
    value = parser.get(section, key)
    if depth >= _TOX_MAX_DEPTH:
        return value

    def expand(match: re.Match) -> str:
        other, other_key = match["section"], match["key"]
        if not parser.has_option(other, other_key):
            return match.group(0)
        return _tox_value(parser, other, other_key, depth + 1)

    return _TOX_SUBSTITUTION.sub(expand, value)


def _tox_lines(value: str, source: str, c: _Collector, quiet: bool = False) -> list[str]:
    """The lines of a tox setting that apply to test environments, factor conditions removed;
    what is dropped is noted unless `quiet` (commands: most lines are not installs)."""
    value = value.replace("{toxinidir}/", "").replace("{toxinidir}", ".")
    kept = []
    for _, line in _logical_lines(value):
        if match := _TOX_FACTORS.match(line):
            factors = re.split(r"[-,]\s*", match["factors"])
            positive = [canonicalize_name(f) for f in factors if not f.startswith("!")]
            if not any(f in c.names.all() or _PYTHON_FACTOR.match(f) for f in positive):
                if not quiet:
                    c.note(f"{source}: {line!r} applies to other environments; dropped")
                continue
            line = match["rest"]
        if "{" in line:
            if not quiet:
                c.note(f"{source}: {line!r} uses a substitution that is not read; dropped")
            continue
        kept.append(line)
    return kept


def _is_test_env(section: str, names: GroupNames) -> bool:
    """Whether a tox section is the base `[testenv]` or an environment named for tests or for a
    Python version (`py311`, `3.12-tests`), as opposed to lint, docs, typing or benchmarks."""
    if section == "testenv":
        return True
    factors = section.removeprefix("testenv:").split("-")
    return any(canonicalize_name(f) in names.all() or _PYTHON_FACTOR.match(f) for f in factors)


def _read_tox(c: _Collector, runner: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(c.files.read(TOX_INI), source=TOX_INI)
    except configparser.Error as exc:
        c.note(f"{TOX_INI} cannot be parsed ({exc.message}); not read")
        return
    envs = [s for s in parser.sections() if s == "testenv" or s.startswith("testenv:")]

    def setting(env: str, key: str) -> tuple[str, str] | None:
        for section in (env, "testenv"):
            if parser.has_option(section, key):
                return section, _tox_value(parser, section, key)
        return None

    for env in (e for e in envs if _is_test_env(e, c.names)):
        commands = setting(env, "commands")
        if commands is None or not re.search(rf"\b{re.escape(runner)}\b", commands[1]):
            continue
        command_source = f"{TOX_INI} [{commands[0]}] commands"
        for line in _tox_lines(commands[1], command_source, c, quiet=True):
            if match := _PIP_INSTALL.match(line):
                c.install_args(match["args"].split(), command_source, "")
        if deps := setting(env, "deps"):
            source = f"{TOX_INI} [{deps[0]}] deps"
            for line in _tox_lines(deps[1], source, c):
                c.install_args(_line_args(line), source, "")
        for key, add in (("extras", c.add_extra), ("dependency_groups", c.add_group)):
            if found := setting(env, key):
                source = f"{TOX_INI} [{found[0]}] {key}"
                for line in _tox_lines(found[1], source, c):
                    for name in filter(None, (n.strip() for n in line.split(","))):
                        add(name, source)


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _runs(call: ast.Call, runner: str) -> bool:
    """Whether `call` is a `….run(…)` with `runner` among its literal arguments."""
    assert isinstance(call.func, ast.Attribute)
    if call.func.attr != "run":
        return False
    literals = [text for arg in call.args if (text := _literal(arg)) is not None]
    return any(text == runner or text.startswith(f"{runner} ") for text in literals)


def _read_nox(c: _Collector, runner: str) -> None:
    try:
        tree = ast.parse(c.files.read(NOXFILE), filename=NOXFILE)
    except SyntaxError as exc:
        c.note(f"{NOXFILE} cannot be parsed (line {exc.lineno}: {exc.msg}); not read")
        return
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        calls = [
            n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        ]
        named_test = canonicalize_name(fn.name) in c.names.all()
        if not named_test and not any(_runs(call, runner) for call in calls):
            continue
        installs = [
            call
            for call in calls
            if isinstance(call.func, ast.Attribute) and call.func.attr == "install"
        ]
        for call in installs:
            source = f"{NOXFILE}:{call.lineno} ({fn.name})"
            args = []
            for arg in call.args:
                if (text := _literal(arg)) is None:
                    c.note(f"{source}: an argument that is not a string literal is not read")
                else:
                    args.append(text)
            c.install_args(args, source, "")


def _install_repo(c: _Collector) -> tuple[bool, list[str]]:
    """Whether the repository is installed itself, and its build backend's requirements."""
    if "build-system" in c.pyproject:
        build = _table(c.pyproject["build-system"], f"{PYPROJECT} [build-system]")
        where = f"{PYPROJECT} [build-system] requires"
        requires = _str_list(build.get("requires", []), where)
        for text in requires:
            try:
                reason = unnamed_reason(text)
            except InvalidRequirement as exc:
                raise PackagingError(f"{where}: {text!r} is not PEP 508: {exc}") from exc
            if reason is not None:
                raise PackagingError(f"{where}: {reason}")
        return True, requires
    if not c.files.has(SETUP_PY):
        return False, []
    if c.pyproject:
        c.note(f"{PYPROJECT} has no [build-system]: {SETUP_PY} is built with setuptools")
        return True, list(DEFAULT_BUILD_REQUIRES)
    c.note(
        f"{SETUP_PY} without {PYPROJECT}: the repository is not installed (the validator builds "
        f"only projects with a {PYPROJECT}); tests run from the source tree"
    )
    return False, []


def discover_dependencies(
    files: TreeFiles, runner: str = "pytest", names: GroupNames | None = None
) -> Dependencies:
    """The requirements `files` (a repository at one revision) declares, each with its sources."""
    c = _Collector(files, names or GroupNames())
    runtime_where = f"{PYPROJECT} [project] dependencies"
    for text in _str_list(c.project.get("dependencies", []), runtime_where):
        c.add(text, runtime_where)
    if "dependencies" in c.project.get("dynamic", []):
        c.note(f"{PYPROJECT}: dependencies are dynamic, so they come only via the repo install")
    if files.has(SETUP_CFG) and not c.project:
        _read_setup_cfg(c)
    for extra in c.names.chosen(c.optional_dependencies()):
        c.add_extra(extra, PYPROJECT)
    for group in c.names.chosen(c.dependency_groups()):
        c.add_group(group, PYPROJECT)
    _read_requirements_files(c)
    if files.has(TOX_INI):
        _read_tox(c, runner)
    if files.has(NOXFILE):
        _read_nox(c, runner)
    runner_key = canonicalize_name(runner)
    if not any(canonicalize_name(Requirement(t).name) == runner_key for t in c.found):
        c.found[runner] = [f"added: the repository declares no {runner} requirement"]
        c.note(f"no {runner} requirement declared; {runner} added as the test runner")
    install_repo, build_requires = _install_repo(c)
    requires_python = c.project.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise PackagingError(f"{PYPROJECT} [project] requires-python must be a string")
    return Dependencies(
        project_name=c.project_name,
        requires_python=requires_python,
        requirements=[FoundRequirement(text=t, sources=s) for t, s in c.found.items()],
        install_repo=install_repo,
        build_requires=build_requires,
        notes=c.notes,
    )


def _pin(text: str) -> tuple[str, str]:
    match = _PIN.match(text.strip())
    if match is None:
        raise PackagingError(f"--pin {text!r}: expected NAME==VERSION, e.g. pytest==8.3.5")
    return match["name"], match["version"]


def apply_choices(deps: Dependencies, pins: Sequence[str], excludes: Sequence[str]) -> Dependencies:
    """`deps` with the operator's choices applied: `--exclude NAME` drops every requirement of
    that name, `--pin NAME==VER` sets the version of those of that name (extras and markers kept)
    or adds `NAME==VER` when none is declared. Each change is noted with the sources it touched."""
    by_name: dict[str, list[FoundRequirement]] = {}
    for found in deps.requirements:
        by_name.setdefault(canonicalize_name(Requirement(found.text).name), []).append(found)
    notes = list(deps.notes)
    excluded = {canonicalize_name(name) for name in excludes}
    for name in excludes:
        key = canonicalize_name(name)
        if key not in by_name:
            declared = ", ".join(sorted(by_name))
            raise PackagingError(
                f"--exclude {name}: no requirement names it (declared: {declared})"
            )
        for found in by_name.pop(key):
            notes.append(
                f"--exclude {name}: {found.text} dropped (from {'; '.join(found.sources)})"
            )
    for text in pins:
        name, version = _pin(text)
        key = canonicalize_name(name)
        if key in excluded:
            raise PackagingError(f"--pin {text}: {name} is also excluded")
        pinned = []
        for found in by_name.get(key, []):
            req = Requirement(found.text)
            req.specifier = SpecifierSet(f"=={version}")
            pinned.append(
                FoundRequirement(text=str(req), sources=[*found.sources, f"--pin {text}"])
            )
            notes.append(f"--pin {text}: {found.text} becomes {req}")
        by_name[key] = pinned or [
            FoundRequirement(text=f"{name}=={version}", sources=[f"--pin {text}"])
        ]
    requirements = [found for group in by_name.values() for found in group]
    return deps.model_copy(update={"requirements": requirements, "notes": notes})
