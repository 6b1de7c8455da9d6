"""Planning type of a kept commit (LoRA Training Strategy §6.9) and the manifest entry that records
it.

test_plan: tests changed, production code not. mixed: both. Production code alone: meta_plan
when 4+ production files change and the change adds symbols (a multi-file feature), else
step_plan (a few files, or existing symbols modified). Docs, CI and config files do not count.
Each entry also records its task class (what it can become: a gold task, test-plan data, or a
code-only change that needs supplemented tests), which the harness spends validation by.
"""

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.intake.manifest import ManifestCommit, ManifestV1, PlanningType, task_class_of
from engine.mining.blobs import ObjectReader
from engine.mining.errors import MiningError
from engine.mining.log import LogCommit, read_log
from engine.mining.message import task_subject
from engine.mining.paths import PathRoles, is_python
from engine.mining.settings import FilterSettings
from engine.mining.symbols import added_symbols
from engine.mining.tests_exist import covering_tests

META_PLAN_MIN_FILES = 4
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def planning_type(code_files: int, test_files: int, adds_symbols: bool) -> PlanningType:
    """The planning type of a change to `code_files` production and `test_files` test files."""
    if test_files:
        return "mixed" if code_files else "test_plan"
    if code_files >= META_PLAN_MIN_FILES and adds_symbols:
        return "meta_plan"
    return "step_plan"


def adds_symbols(objects: ObjectReader, commit: LogCommit, roles: PathRoles) -> bool:
    """Whether the production Python files of `commit` define symbols its parent lacked."""
    return any(
        added_symbols(
            objects.read_file(commit.parents[0], change.old_path),
            objects.read_file(commit.sha, change.path),
        )
        for change in commit.files
        if is_python(change.path) and roles.role(change.path) == "code"
    )


def describe_commits(
    objects: ObjectReader,
    commits: Sequence[LogCommit],
    roles: PathRoles,
    covering: Mapping[str, tuple[str, ...]],
) -> list[ManifestCommit]:
    """Manifest entries for `commits`, each with its planning type and covering test files."""
    for commit in commits:
        if len(commit.parents) != 1:
            raise MiningError(
                f"{objects.repo}: commit {commit.sha} has {len(commit.parents)} parents, not one"
            )
    described = []
    for commit in commits:
        paths = [f.path for f in commit.files]
        code, tests = len(roles.code_files(paths)), len(roles.test_files(paths))
        # Only a production-only change of 4+ files can be a meta_plan: read no file otherwise.
        could_be_meta = not tests and code >= META_PLAN_MIN_FILES
        kind = planning_type(code, tests, could_be_meta and adds_symbols(objects, commit, roles))
        described.append(
            ManifestCommit(
                sha=commit.sha,
                parent=commit.parents[0],
                date=commit.date,
                subject=task_subject(commit.message),
                files_changed=len(commit.files),
                lines_added=commit.lines_added,
                lines_deleted=commit.lines_deleted,
                planning_type=kind,
                task_class=task_class_of(kind),
                test_files=list(covering[commit.sha]),
            )
        )
    return described


def describe_commit(repo: Path, sha: str, settings: FilterSettings | None = None) -> ManifestCommit:
    """The manifest entry of one commit, whether or not the filter would keep it."""
    if not FULL_SHA.fullmatch(sha):
        raise MiningError(f"{repo}: {sha!r} is not a full commit id")
    roles = PathRoles((settings or FilterSettings()).test_patterns)
    commits = list(read_log(repo, "--no-walk", sha))
    with ObjectReader(repo) as objects:
        covering = covering_tests(objects, commits, roles)
        return describe_commits(objects, commits, roles, covering)[0]


def class_lines(manifest: ManifestV1) -> list[str]:
    """What the kept commits can become, as `cra package --report` prints it at packaging."""
    classes = Counter(c.task_class for c in manifest.commits)
    return [
        f"task classes: gold {classes['gold']} (code and tests: gold validation), "
        f"code-only {classes['code_only']} (supplemented tests or structural), "
        f"test data {classes['test_data']} (tests only: test-plan data, not validated)"
    ]
