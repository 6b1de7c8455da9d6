"""Assemble a repo package: clone, mine, gather wheels, score, write the manifest, place it.

Everything is written into a staging folder beside the output (`.NAME.cra-staging-…`); the
finished folder is fsynced and renamed to the output in one step, so a package still being
written, or one whose build failed, never sits at the output path, and a failure removes the
staging folder. manifest.json is written last, so a staging folder a crash leaves behind holds
no manifest and is never taken for a package. An existing output is refused, never touched.

The repository is cloned first (`--no-local --no-hardlinks`, an empty template: no hooks) and
everything else reads the clone, so the commits, the dependencies and the HEAD recorded in the
manifest all describe the same commit. Git runs through `engine.isolation.gitsafe`: the
repository's own hooks and config never run, on this side either.
"""

import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.core.durable import fsync_dir, fsync_tree
from engine.core.errors import validation_lines
from engine.intake.manifest import MANIFEST_FILE, ManifestV1, runner_of
from engine.isolation.gitsafe import run_git
from engine.mining.blobs import ObjectReader
from engine.mining.pipeline import MiningResult, mine_commits
from engine.mining.settings import FilterSettings
from engine.packaging.build_history import BuildRequires, history_build_requires
from engine.packaging.deps import (
    Dependencies,
    GroupNames,
    apply_choices,
    discover_dependencies,
)
from engine.packaging.errors import PackagingError
from engine.packaging.license import FoundLicense, infer_license
from engine.packaging.plan_artifacts import find_plan_artifacts
from engine.packaging.requirement_history import history_requirements, without_pytest_plugins
from engine.packaging.style_score import score_style
from engine.packaging.tree_files import TreeFiles
from engine.packaging.wheels import DEFAULT_PLATFORM, Target, download_wheels, select_wheels
from engine.packaging.window import WindowCut, default_window

CREATED_BY = "cra package"
DEFAULT_PYTHON = "3.11"
DEFAULT_TEST_COMMAND = "python -m pytest"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class PackageOptions(BaseModel):
    """What `cra package` was asked to build."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: Path
    out: Path
    domain: str = Field(min_length=1, max_length=100)
    filters: FilterSettings = Field(default_factory=FilterSettings)
    python_version: str = DEFAULT_PYTHON
    platform: str = DEFAULT_PLATFORM
    test_command: str = DEFAULT_TEST_COMMAND
    license: str | None = None
    name: str | None = None
    wheels: Path | None = None
    test_groups: tuple[str, ...] = ()
    pins: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    exclude_newer: datetime | None = None


class PackageResult(BaseModel):
    """The package written at `path`, and what went into it."""

    model_config = ConfigDict(frozen=True)

    path: Path
    manifest: ManifestV1
    mining: MiningResult
    dependencies: Dependencies
    license: FoundLicense
    builds: list[BuildRequires]
    window: WindowCut | None = None
    exclude_newer: datetime | None = None


def _refuse_existing(out: Path) -> None:
    if os.path.lexists(out):
        raise PackagingError(f"--out {out}: already exists; it is left untouched")


def _runner(test_command: str) -> str:
    try:
        argv = shlex.split(test_command)
    except ValueError as exc:
        raise PackagingError(f"--test-command {test_command!r} cannot be split: {exc}") from exc
    runner = runner_of(argv)
    if runner is None:
        raise PackagingError(
            f"--test-command {test_command!r} must run pytest (`pytest …` or `python -m pytest …`)"
        )
    return runner


def _source_git_dir(repo: Path) -> Path:
    """The git folder of the repository at `repo` (a clone with a work tree, or bare)."""
    path = repo.expanduser().absolute()
    if not path.is_dir():
        raise PackagingError(f"{repo}: not a folder")
    git_dir = path / ".git" if os.path.lexists(path / ".git") else path
    where = f"--git-dir={git_dir}"
    if run_git(path, where, "rev-parse", "--git-dir", check=False).returncode != 0:
        raise PackagingError(f"{repo}: not a git repository")
    head = run_git(path, where, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        raise PackagingError(f"{repo}: HEAD names no commit (an empty repository?)")
    return git_dir


def _head(git_dir: Path) -> str:
    out = run_git(git_dir, f"--git-dir={git_dir}", "rev-parse", "--verify", "HEAD^{commit}")
    return out.stdout.decode("ascii").strip()


def _clone(source_git_dir: Path, dest: Path) -> str:
    """Clone into `dest` without hooks, remote or reflog; return its HEAD, the source's HEAD."""
    run_git(
        dest.parent,
        *("clone", "--quiet", "--no-local", "--no-hardlinks", "--template=", "--single-branch"),
        *(str(source_git_dir), str(dest)),
        timeout=1800.0,
    )
    git_dir = dest / ".git"
    where = f"--git-dir={git_dir}"
    # The remote would name a folder on this machine; its HEAD is a symref `remote remove` leaves.
    run_git(dest, where, "update-ref", "-d", "--no-deref", "refs/remotes/origin/HEAD")
    run_git(dest, where, "remote", "remove", "origin")
    run_git(dest, where, "reflog", "expire", "--expire=all", "--all")
    head, source_head = _head(git_dir), _head(source_git_dir)
    if head != source_head:
        raise PackagingError(
            f"the clone's HEAD {head} is not the repository's HEAD {source_head}; "
            "did the repository change while it was being packaged?"
        )
    return head


def _check_name(name: str | None) -> None:
    if name is not None and not _NAME.match(name):
        raise PackagingError(
            f"--name {name!r}: use 1–64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )


def _package_name(options: PackageOptions, deps: Dependencies) -> str:
    """`--name`, else the project's name, else the repository folder's, made a valid name."""
    if options.name is not None:
        return options.name
    folder = options.repo.expanduser().absolute().name.removesuffix(".git")
    inferred = deps.project_name or folder
    name = re.sub(r"[^a-z0-9._-]+", "-", inferred.lower()).lstrip("._-")[:64]
    if not _NAME.match(name):
        raise PackagingError(f"cannot make a package name from {inferred!r}; pass --name")
    return name


def _check_requires_python(deps: Dependencies, target: Target) -> None:
    if deps.requires_python is None:
        return
    try:
        allowed = SpecifierSet(deps.requires_python)
    except InvalidSpecifier as exc:
        raise PackagingError(f"pyproject.toml [project] requires-python: {exc}") from exc
    if not allowed.contains(target.python_version, prereleases=True):
        raise PackagingError(
            f"--python {target.python_version}: the repository requires Python "
            f"{deps.requires_python} (pyproject.toml [project] requires-python)"
        )


def _license(options: PackageOptions, files: TreeFiles) -> FoundLicense:
    if options.license is not None:
        return FoundLicense(name=options.license, source="--license")
    found = infer_license(files)
    if found is None:
        raise PackagingError(
            f"{options.repo}: the license is unknown (no license in pyproject.toml or setup.cfg, "
            "no LICENSE file naming one); pass --license"
        )
    return found


@dataclass(frozen=True)
class _Checked:
    """What the options say once checked, before anything is written."""

    options: PackageOptions
    runner: str
    target: Target
    source: Path


def _check_options(options: PackageOptions) -> _Checked:
    """Refuse bad options and a source that is not a git repository before writing anything."""
    _refuse_existing(options.out)
    if not options.out.parent.is_dir():
        raise PackagingError(f"--out {options.out}: the folder {options.out.parent} does not exist")
    _check_name(options.name)
    return _Checked(
        options=options,
        runner=_runner(options.test_command),
        target=Target(options.python_version, options.platform),
        source=_source_git_dir(options.repo),
    )


def _assemble(checked: _Checked, staging: Path, scratch: Path) -> PackageResult:
    """Write repo/, packages/ and, last, manifest.json into `staging`."""
    options, target = checked.options, checked.target
    repo = staging / "repo"
    head = _clone(checked.source, repo)
    filters, window = options.filters, None
    if filters.since is None and (window := default_window(repo, target.python_version)):
        filters = filters.model_copy(update={"since": window.since})
    mining = mine_commits(repo, filters)
    if not mining.commits:
        raise PackagingError(
            f"{options.repo}: no commits survive the filters:\n{mining.attrition_table()}"
        )
    files = TreeFiles(repo / ".git")
    names = GroupNames.exactly(options.test_groups) if options.test_groups else GroupNames()
    deps = discover_dependencies(files, checked.runner, names)
    builds: list[BuildRequires] = []
    with ObjectReader(repo) as reader:
        older, notes = history_requirements(
            repo / ".git",
            reader,
            [c.sha for c in mining.commits],
            deps,
            checked.runner,
            names,
            target.marker_environment(),
        )
        if deps.install_repo:
            revs = [rev for c in mining.commits for rev in (c.sha, c.parent)]
            builds, build_notes = history_build_requires(reader, revs, deps.build_requires)
            notes += build_notes
    deps = deps.model_copy(
        update={"requirements": [*deps.requirements, *older], "notes": [*deps.notes, *notes]}
    )
    deps = apply_choices(deps, options.pins, options.excludes)
    _check_requires_python(deps, target)
    license_ = _license(options, files)
    name = _package_name(options, deps)
    folder = options.wheels
    exclude_newer = None
    if folder is None:
        exclude_newer = options.exclude_newer or max(c.date for c in mining.commits)
        folder = scratch / "downloaded"
        folder.mkdir()
        download_wheels(deps.requirements, builds, target, exclude_newer, folder, scratch)
    deps = without_pytest_plugins(deps, older, folder)
    wheels = select_wheels(deps.requirements, builds, folder, target, staging / "packages", scratch)
    try:
        manifest = ManifestV1(
            schema_version=1,
            name=name,
            head=head,
            python_version=target.python_version,
            test_command=options.test_command,
            requirements=deps.texts(),
            install_repo=deps.install_repo,
            domain=options.domain,
            license=license_.name,
            wheels=wheels,
            commits=mining.commits,
            filter_stages=mining.stages,
            style=score_style(repo),
            plan_artifacts=find_plan_artifacts(repo),
            created_at=datetime.now(UTC).replace(microsecond=0),
            created_by=CREATED_BY,
        )
    except ValidationError as exc:
        raise PackagingError(validation_lines(MANIFEST_FILE, exc)) from exc
    (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", "utf-8")
    return PackageResult(
        path=options.out,
        manifest=manifest,
        mining=mining,
        dependencies=deps,
        license=license_,
        builds=builds,
        window=window,
        exclude_newer=exclude_newer,
    )


def package_repository(options: PackageOptions) -> PackageResult:
    """Build the package `options` asks for at `options.out`, all or nothing."""
    out = options.out.expanduser().absolute()
    checked = _check_options(options.model_copy(update={"out": out}))
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.cra-staging-", dir=out.parent))
    except OSError as exc:
        raise PackagingError(f"--out {out}: cannot write in {out.parent}: {exc.strerror}") from exc
    try:
        staging.chmod(0o755)
        with tempfile.TemporaryDirectory(prefix="cra-package-") as scratch:
            result = _assemble(checked, staging, Path(scratch))
        fsync_tree(staging)
        _refuse_existing(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging)
        raise
    fsync_dir(out.parent)
    return result
