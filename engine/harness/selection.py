"""Which commits a gold validation or a campaign covers, and which are validated already.

A selection narrows a package's manifest commits, in manifest order: the named commits (a sha
or a unique prefix, `resolve_commit`), those dated on or after `since`, then the first `limit`.
`cra harness validate` skips a commit whose recorded validation was made with the package's
environment and whose report still reads (so a killed run goes on where it stopped), unless
asked to validate again.
"""

from collections.abc import Iterator
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from engine.core.workspace import Workspace
from engine.harness.environments import env_key
from engine.harness.package import CorpusPackage, HarnessError
from engine.harness.supplement import validate_commit
from engine.harness.task_validation import TaskValidation, resolve_commit, task_name
from engine.intake.manifest import ManifestCommit


class CommitSelection(BaseModel):
    """Named commits, a first date and a count; empty, every commit of the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commits: list[str] = Field(default_factory=list, description="shas or unique prefixes")
    since: date | None = Field(default=None, description="the oldest commit date kept")
    limit: int | None = Field(default=None, ge=1, description="the first N commits kept")


def _has(package: CorpusPackage, given: str) -> bool:
    wanted = given.strip().lower()
    return any(commit.sha.startswith(wanted) for commit in package.manifest.commits)


def select_commits(
    packages: list[CorpusPackage], selection: CommitSelection
) -> dict[str, list[ManifestCommit]]:
    """Each package's selected commits, by package digest.

    With several packages a named commit is taken from those that have it; one that none has
    is refused, naming the packages."""
    named: dict[str, list[ManifestCommit]] = {package.digest: [] for package in packages}
    for given in selection.commits:
        holders = [package for package in packages if _has(package, given)]
        if not holders and len(packages) > 1:
            names = ", ".join(f"{p.manifest.name}@{p.digest[:7]}" for p in packages)
            raise HarnessError(f"commit {given} is in none of the packages {names}")
        for package in holders or packages:
            named[package.digest].append(resolve_commit(package, given))
    chosen = {}
    for package in packages:
        commits = named[package.digest] if selection.commits else package.manifest.commits
        commits = list({commit.sha: commit for commit in commits}.values())
        if selection.since is not None:
            commits = [c for c in commits if c.date.date() >= selection.since]
        chosen[package.digest] = commits[: selection.limit]
    return chosen


ROUTES = {
    "gold": {"gold", "supplemented", "structural"},
    "code_only": {"supplemented", "structural"},
    "test_data": {"skipped"},
}
"""How a commit of each task class is validated (`supplement.validate_commit`): a gold commit
none of whose test files pytest collects goes on as a code-only one."""


def recorded_validation(
    ws: Workspace, package: CorpusPackage, commit: ManifestCommit
) -> TaskValidation | None:
    """The commit's recorded validation when it can stand: its report reads, it was made the
    way the commit's task class is validated (`ROUTES`), and with this package's environment or
    is another package's reused run; else None."""
    sha = commit.sha
    row = next(
        ws.db["tasks"].rows_where("package_digest = ? AND sha = ?", [package.digest, sha]), None
    )
    if row is None:
        return None
    try:
        report = TaskValidation.model_validate_json((ws.root / row["report_path"]).read_bytes())
    except (OSError, ValueError):
        return None
    if report.validation not in ROUTES[commit.task_class]:
        return None
    # A validation that ran nothing (a skip, a static refusal) records no environment.
    if row["validated_in"] is None and report.env_key not in ("", env_key(package)):
        return None
    return report.model_copy(
        update={
            "task": task_name(package.digest, sha),
            "package_digest": package.digest,
            "validated_in": row["validated_in"],
        }
    )


def validate_commits(
    ws: Workspace, package: CorpusPackage, commits: list[ManifestCommit], again: bool = False
) -> Iterator[tuple[TaskValidation, bool]]:
    """Validate each of `commits` as its task class allows (`supplement.validate_commit`),
    yielding (validation, whether it was recorded already); a commit with a standing record
    (`recorded_validation`) is not run again unless `again`."""
    for commit in commits:
        earlier = None if again else recorded_validation(ws, package, commit)
        if earlier is not None:
            yield earlier, True
        else:
            yield validate_commit(ws, package.digest, commit.sha), False
