"""Test requirements that older packaged commits declare and HEAD no longer does.

The harness runs every packaged commit's tests in one environment built from the manifest's
requirements, read at HEAD. A project that dropped a test dependency (structlog's pretend and
freezegun, attrs's zope.interface) leaves its older commits' tests failing to import at both
sides, so none of them can become a task. Each distinct requirements configuration among the
packaged commits (the top-level files `discover_dependencies` reads) is read as HEAD's is, and
each requirement whose name HEAD does not declare is added: by name with its extras, without its
era's version bounds, since one environment serves every commit and is resolved at the package's
cutoff like HEAD's own; and only where its marker holds on the target. What HEAD declares keeps
HEAD's bounds: an older commit whose tests need an older version of it is not served.

A requirement added this way whose wheel registers a pytest plugin (a `pytest11` entry point) is
dropped again once the wheels are there (`without_pytest_plugins`): pytest loads every installed
plugin at start, so it would change every commit's test run, not only the older ones'. On attrs,
pytest-mypy-plugins imports jsonschema, which imports the `attrs` the commit under test
installed, and pytest stopped before any test on 98 commits.
"""

import configparser
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from engine.intake.checks.requirements import unnamed_reason
from engine.mining.blobs import ObjectReader
from engine.packaging.deps import (
    NOXFILE,
    PYPROJECT,
    SETUP_CFG,
    TOX_INI,
    Dependencies,
    FoundRequirement,
    GroupNames,
    discover_dependencies,
)
from engine.packaging.errors import PackagingError
from engine.packaging.tree_files import TreeFiles
from engine.packaging.wheels import wheels_in

_CONFIG_FILES = frozenset({PYPROJECT, SETUP_CFG, TOX_INI, NOXFILE})


@dataclass
class _Older:
    """A requirement only older commits declare: its name, every extra they ask for, the newest
    of them and where it declares it, and how many packaged commits do."""

    name: str
    newest: str
    sources: list[str]
    extras: set[str] = field(default_factory=set)
    commits: int = 0

    def found(self) -> FoundRequirement:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        history = (
            f"declared by {self.commits} packaged commit(s), the newest {self.newest[:12]}; "
            "not at HEAD"
        )
        return FoundRequirement(text=f"{self.name}{extras}", sources=[*self.sources, history])


def _configuration(reader: ObjectReader, sha: str) -> tuple[tuple[str, bytes], ...]:
    """The top-level entries of `sha` that requirement discovery reads: two commits with the
    same entries declare the same requirements."""
    entries = reader.tree_entries(reader.root_tree(sha))
    return tuple(
        sorted(
            (name, oid)
            for _mode, name, oid in entries
            if name in _CONFIG_FILES
            or name == "requirements"
            or (name.endswith(".txt") and "requirements" in name)
        )
    )


def history_requirements(
    git_dir: Path,
    reader: ObjectReader,
    commits: Sequence[str],
    head: Dependencies,
    runner: str,
    names: GroupNames,
    marker_env: dict[str, str],
) -> tuple[list[FoundRequirement], list[str]]:
    """The requirements `commits` (packaged, newest first, of the repository at `git_dir`,
    read through `reader`) declare that `head` does not, each
    named with where the newest commit declaring it has it and how many commits do; and notes
    on the configurations that cannot be read."""
    at_head = {canonicalize_name(Requirement(found.text).name) for found in head.requirements}
    by_configuration: dict[tuple[tuple[str, bytes], ...], list[str]] = {}
    for sha in commits:
        by_configuration.setdefault(_configuration(reader, sha), []).append(sha)
    older: dict[str, _Older] = {}
    notes: list[str] = []
    for shas in by_configuration.values():
        newest = shas[0]
        try:
            declared = discover_dependencies(TreeFiles(git_dir, newest), runner, names)
        except PackagingError as exc:
            notes.append(
                f"the requirements of {len(shas)} packaged commit(s) as at {newest[:12]} cannot "
                f"be read ({exc}); none of them is added"
            )
            continue
        for found in declared.requirements:
            if unnamed_reason(found.text) is not None:
                continue
            req = Requirement(found.text)
            key = canonicalize_name(req.name)
            if key in at_head or (req.marker is not None and not req.marker.evaluate(marker_env)):
                continue
            entry = older.setdefault(key, _Older(req.name, newest, list(found.sources)))
            entry.extras |= req.extras
            entry.commits += len(shas)
    return [entry.found() for entry in older.values()], notes


def _registers_pytest_plugin(wheel: Path) -> bool:
    """Whether the wheel's `entry_points.txt` has a `pytest11` section."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
            text = "".join(archive.read(n).decode("utf-8", "replace") for n in names)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackagingError(f"{wheel}: cannot be read as a wheel: {exc}") from exc
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=f"{wheel.name} entry_points.txt")
    except configparser.Error:
        return False
    return parser.has_section("pytest11")


def without_pytest_plugins(
    deps: Dependencies, older: Sequence[FoundRequirement], folder: Path
) -> Dependencies:
    """`deps` without those of `older` (added from the history) of which a wheel in `folder`
    registers a pytest plugin, each dropped with a note."""
    added = {canonicalize_name(Requirement(found.text).name) for found in older}
    plugins = {
        wheel.name
        for wheel in wheels_in(folder)
        if wheel.name in added and _registers_pytest_plugin(wheel.path)
    }
    if not plugins:
        return deps
    kept, notes = [], list(deps.notes)
    for found in deps.requirements:
        if canonicalize_name(Requirement(found.text).name) in plugins:
            notes.append(
                f"{found.text}: declared only by older commits, and it registers a pytest plugin, "
                "which would change every commit's test run; not added"
            )
        else:
            kept.append(found)
    return deps.model_copy(update={"requirements": kept, "notes": notes})
