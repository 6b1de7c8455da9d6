"""Gold task validation: which of a commit's tests its own change makes pass (SWE-bench style).

For a manifest commit, the tests it touches (its `test_files`) are run, each side
`harness.flaky_runs` times in one checkout, inside `run_sandboxed` with the harness limits.
Results come from pytest's JUnit XML, written through an inherited descriptor to a file outside
the sandbox's view (the tested code cannot name it) and cross-checked against pytest's summary
line and exit status; a run where they disagree is untrusted, and so is its side:

- before: the parent's tree with the commit's test-file changes applied;
- after: the commit's tree.

FAIL_TO_PASS: passing after, not passing before (failed, error or absent: a test of a module
the commit adds cannot even be collected at the parent). PASS_TO_PASS: passing in both. A test
whose outcome differs between runs of one side is flaky and excluded from both. A commit with no
FAIL_TO_PASS is recorded as unusable, with the reason. Artifacts go to
`runs/<task>/gold/`: the commit's patch, each run's output and JUnit XML, and `report.json`.

A task is its repository and commit, not its package: a commit that another package of the same
repository (the manifest's name) already validated in its own sandbox run reuses that result
(status, tests, reason and report), its row naming the package in `validated_in`; the sandbox is
not run again. Validating that package again carries its new result to the rows that reuse it.
"""

import json
import os
from pathlib import Path
from typing import Literal

import uv
from pydantic import BaseModel, ConfigDict, Field

from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.environments import TaskEnv, ensure_env
from engine.harness.junit import JunitError, Outcome, read_checked_junit
from engine.harness.package import CorpusPackage, HarnessError, load_package
from engine.harness.worktrees import checkout, overlay_files
from engine.intake.corpus import remove_tree
from engine.intake.manifest import ManifestCommit
from engine.isolation.gitsafe import run_git
from engine.isolation.sandbox import SandboxResult, python_paths, run_sandboxed
from engine.isolation.uvtool import offline_install_args, uv_reason, uv_settings

Side = Literal["before", "after"]


class SideRun(BaseModel):
    """One pytest run of one side: how it ended and each test's outcome."""

    model_config = ConfigDict(frozen=True)

    side: Side
    index: int
    returncode: int
    timed_out: bool
    duration_s: float
    outcomes: dict[str, Outcome]
    junit_error: str | None


class TaskValidation(BaseModel):
    """The gold validation of one commit of one approved package."""

    model_config = ConfigDict(frozen=True)

    task: str
    package_digest: str
    sha: str
    parent: str
    subject: str
    status: Literal["usable", "unusable", "structural"]
    reason: str
    test_files: list[str]
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    flaky: list[str]
    runs: list[SideRun]
    env_key: str
    artifacts: Path
    validated_in: str | None = Field(
        default=None, description="the package whose sandbox run this is, when another's"
    )
    validation: Literal["gold", "supplemented", "structural", "skipped"] = "gold"
    tests_from: str | None = Field(
        default=None, description="the later commit whose test files a supplemented task runs"
    )


def task_name(package_digest: str, sha: str) -> str:
    return f"{package_digest[:12]}-{sha[:12]}"


def find_commit(package: CorpusPackage, sha: str) -> ManifestCommit:
    """The manifest's entry for `sha`."""
    for commit in package.manifest.commits:
        if commit.sha == sha:
            return commit
    raise HarnessError(f"{package.root / 'manifest.json'}: commit {sha} is not in the manifest")


SHORT_SHA_MIN = 4
"""The fewest hex digits a commit may be named by, as git's own abbreviations."""


def resolve_commit(package: CorpusPackage, given: str) -> ManifestCommit:
    """The manifest's commit named `given`: its full sha or a unique prefix of at least
    `SHORT_SHA_MIN` hex digits; a prefix that fits several names them all."""
    wanted = given.strip().lower()
    if len(wanted) < SHORT_SHA_MIN or any(ch not in "0123456789abcdef" for ch in wanted):
        raise HarnessError(
            f"commit {given!r}: name a commit by its sha or at least {SHORT_SHA_MIN} of its "
            "leading hex digits"
        )
    found = [c for c in package.manifest.commits if c.sha.lower().startswith(wanted)]
    if not found:
        raise HarnessError(
            f"{package.root / 'manifest.json'}: commit {given} is not in the manifest"
        )
    if len(found) > 1:
        names = ", ".join(commit.sha[:12] for commit in found)
        raise HarnessError(f"commit {given} is ambiguous in the manifest: it starts {names}")
    return found[0]


def _pytest_argv(env: TaskEnv, package: CorpusPackage, files: list[str], junit: str) -> list[str]:
    return [
        str(env.python),
        "-m",
        package.manifest.runner,
        *files,
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        "-p",
        "no:cacheprovider",
        "-q",
    ]


class RepoInstallError(HarnessError):
    """The repository (install_repo) does not build and install as the task has it."""


def install_tree(
    ws: Workspace, env: TaskEnv, package: CorpusPackage, tree: Path, dest: Path
) -> Path:
    """Build and install `tree` (the repository as the task has it) into `dest/site`.

    For a package with `install_repo`: its build backend is untrusted code, so the build runs
    sandboxed, offline, from the package's wheels, without dependencies (the shared environment
    has them). Tests then find the installed copy first on PYTHONPATH; the shared environment
    itself is never changed. Raises RepoInstallError, with uv's reason, when the build fails.
    """
    site = dest / "site"
    cache = dest / "uv-cache"
    site.mkdir(parents=True)
    cache.mkdir()
    limits = ws.config.harness
    argv = [
        uv.find_uv_bin(),
        *offline_install_args(package.packages, env.python),
        "--no-deps",
        "--target",
        str(site),
        str(tree),
    ]
    result = run_sandboxed(
        argv,
        tree,
        timeout_s=limits.test_timeout_s,
        memory_mb=limits.test_memory_mb,
        env={**uv_settings(dest), "UV_CACHE_DIR": str(cache)},
        tmp_root=dest,
        readable=[Path(argv[0]), package.packages, *python_paths(env.python)],
        writable=[site, cache],
    )
    (dest / "install-output.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.timed_out:
        raise RepoInstallError(
            "installing the repository ran past the time limit of "
            f"{limits.test_timeout_s:g}s (test_timeout_s)"
        )
    if result.returncode != 0:
        raise RepoInstallError(f"installing the repository failed: {uv_reason(result.stderr)}")
    return site


def run_tests(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    tree: Path,
    files: list[str],
    run_dir: Path,
    site: Path | None = None,
) -> tuple[SandboxResult, dict[str, Outcome], str | None]:
    """Run `files` once in `tree`, sandboxed; output and JUnit XML go to `run_dir`.

    `site` is where `install_tree` installed the repository (install_repo packages); without
    it the tree itself is put on PYTHONPATH. Returns how the run ended, each test's outcome,
    and why the JUnit report is unusable (None when it is fine).
    """
    limits = ws.config.harness
    env_vars = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(site or tree)}
    run_dir.mkdir(parents=True)
    junit = run_dir / "junit.xml"
    report_fd = os.open(junit, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        result = run_sandboxed(
            _pytest_argv(env, package, files, f"/dev/fd/{report_fd}"),
            tree,
            timeout_s=limits.test_timeout_s,
            memory_mb=limits.test_memory_mb,
            env=env_vars,
            extra_path=[env.bin_dir],
            tmp_root=run_dir,
            readable=[*python_paths(env.python), *([site] if site else [])],
            pass_fds=[report_fd],
        )
    finally:
        os.close(report_fd)
    (run_dir / "output.txt").write_text(
        f"$ exit {result.returncode} timed_out={result.timed_out}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}\n",
        encoding="utf-8",
    )
    try:
        return result, read_checked_junit(junit, result.stdout, result.returncode), None
    except JunitError as exc:
        return result, {}, str(exc)


def _run_side(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    side: Side,
    tree: Path,
    files: list[str],
    out: Path,
) -> list[SideRun]:
    """Run `files` in `tree` `flaky_runs` times; each run's output and JUnit XML go to `out`."""
    site = None
    if package.manifest.install_repo:
        site = install_tree(ws, env, package, tree, out / f"{side}-install")
    runs = []
    for index in range(1, ws.config.harness.flaky_runs + 1):
        result, outcomes, junit_error = run_tests(
            ws, env, package, tree, files, out / f"{side}-{index}", site
        )
        runs.append(
            SideRun(
                side=side,
                index=index,
                returncode=result.returncode,
                timed_out=result.timed_out,
                duration_s=result.duration_s,
                outcomes=outcomes,
                junit_error=junit_error,
            )
        )
    return runs


def _flaky(runs: list[SideRun]) -> set[str]:
    """Tests whose outcome is not the same in every run (absent counts as an outcome)."""
    ids = {tid for run in runs for tid in run.outcomes}
    return {tid for tid in ids if len({run.outcomes.get(tid) for run in runs}) > 1}


def _broken_side(runs: list[SideRun], side: str, limits_s: float) -> str | None:
    for run in runs:
        if run.timed_out:
            return f"the tests {side} ran past the time limit of {limits_s:g}s (test_timeout_s)"
        if run.junit_error is not None:
            return f"the tests {side} gave no trustworthy result: {run.junit_error}"
    return None


def _classify(
    before: list[SideRun], after: list[SideRun], limit_s: float
) -> tuple[list[str], list[str], list[str], str | None]:
    """(FAIL_TO_PASS, PASS_TO_PASS, flaky, why unusable or None)."""
    for runs, side in ((after, "at the commit"), (before, "at the parent")):
        if why := _broken_side(runs, side, limit_s):
            return [], [], [], why
    flaky = _flaky(before) | _flaky(after)
    first_before, first_after = before[0].outcomes, after[0].outcomes
    passing_after = {t for t, o in first_after.items() if o == "passed"} - flaky
    passing_before = {t for t, o in first_before.items() if o == "passed"} - flaky
    f2p = sorted(passing_after - passing_before)
    p2p = sorted(passing_after & passing_before)
    if f2p:
        return f2p, p2p, sorted(flaky), None
    flaky_passing = sorted(t for t in flaky if any(r.outcomes.get(t) == "passed" for r in after))
    if not first_after:
        why = "no test ran at the commit"
    elif flaky_passing:
        why = f"its only failing-to-passing tests are flaky: {', '.join(flaky_passing)}"
    elif not passing_after:
        why = "none of its tests passes at the commit"
    else:
        why = "its tests already pass at the parent"
    return [], p2p, sorted(flaky), why


_RESULT = (
    "status",
    "reason",
    "fail_to_pass",
    "pass_to_pass",
    "flaky",
    "report_path",
    "validation",
    "tests_from",
    "test_files",
)


def _record(ws: Workspace, report: TaskValidation, report_path: Path) -> None:
    """Upsert the task's row; an own run also updates the rows of other packages that reuse
    this package's validation of the commit."""
    row = {
        "package_digest": report.package_digest,
        "sha": report.sha,
        "parent": report.parent,
        "subject": report.subject,
        "status": report.status,
        "reason": report.reason,
        "fail_to_pass": json.dumps(report.fail_to_pass),
        "pass_to_pass": json.dumps(report.pass_to_pass),
        "flaky": json.dumps(report.flaky),
        "validated_at": utc_now(),
        "report_path": report_path.relative_to(ws.root).as_posix(),
        "validated_in": report.validated_in,
        "validation": report.validation,
        "tests_from": report.tests_from,
        "test_files": json.dumps(report.test_files),
    }
    with ws.db.conn:
        ws.db.table("tasks").upsert(row, pk=("package_digest", "sha"))
        if report.validated_in is None:
            ws.db.execute(
                f"UPDATE tasks SET {', '.join(f'{name} = ?' for name in _RESULT)}, "
                "validated_at = ? WHERE validated_in = ? AND sha = ?",
                [
                    *(row[name] for name in _RESULT),
                    row["validated_at"],
                    report.package_digest,
                    report.sha,
                ],
            )


def _validated_elsewhere(
    ws: Workspace, package: CorpusPackage, sha: str
) -> tuple[str, Path] | None:
    """The package and report of the newest own sandbox run of commit `sha` in another package
    of the same repository, or None."""
    row = ws.db.execute(
        "SELECT t.package_digest, t.report_path FROM tasks t "
        "JOIN packages p ON p.digest = t.package_digest "
        "WHERE p.name = ? AND t.sha = ? AND t.package_digest != ? AND t.validated_in IS NULL "
        "ORDER BY t.validated_at DESC, t.id DESC LIMIT 1",
        [package.manifest.name, sha, package.digest],
    ).fetchone()
    return None if row is None else (row[0], ws.root / row[1])


def _reuse(
    ws: Workspace, package: CorpusPackage, sha: str, source: str, path: Path
) -> TaskValidation:
    """Record package `source`'s gold validation of `sha` (its report at `path`) as this
    package's, without running anything."""
    try:
        earlier = TaskValidation.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise HarnessError(
            f"commit {sha} of {package.manifest.name} was validated in package {source[:12]}, "
            f"but its report {path} cannot be read ({exc}); run `cra harness validate "
            f"{source[:12]} --commit {sha}` again"
        ) from exc
    report = earlier.model_copy(
        update={
            "task": task_name(package.digest, sha),
            "package_digest": package.digest,
            "validated_in": source,
        }
    )
    _record(ws, report, path)
    return report


def validate_task(ws: Workspace, package_digest: str, sha: str) -> TaskValidation:
    """Validate commit `sha` of the approved package `package_digest`; record and return it.

    When another package of the same repository validated the commit in its own sandbox run,
    that result is reused (see the module doc)."""
    package = load_package(ws, package_digest)
    commit = find_commit(package, sha)
    if earlier := _validated_elsewhere(ws, package, sha):
        return _reuse(ws, package, sha, *earlier)
    env = ensure_env(ws, package)
    task = task_name(package_digest, sha)
    out = ws.runs_dir / task / "gold"
    if out.exists():
        remove_tree(out)
    out.mkdir(parents=True)
    git_dir = f"--git-dir={package.repo / '.git'}"
    patch = run_git(
        package.repo,
        git_dir,
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--binary",
        commit.parent,
        sha,
    ).stdout
    (out / "patch.diff").write_bytes(patch)
    files = list(commit.test_files)
    before: list[SideRun] = []
    after: list[SideRun] = []
    if files:
        try:
            with checkout(package.repo, sha, out) as tree:
                at_commit = [f for f in files if (tree / f).is_file()]
                after = _run_side(ws, env, package, "after", tree, at_commit, out)
            with checkout(package.repo, commit.parent, out) as tree:
                overlay_files(package.repo, sha, files, tree)
                before = _run_side(ws, env, package, "before", tree, at_commit, out)
            f2p, p2p, flaky, why = _classify(before, after, ws.config.harness.test_timeout_s)
        except RepoInstallError as exc:
            side = "at the commit" if not after else "at the parent"
            f2p, p2p, flaky, why = [], [], [], f"{side}: {exc}"
    else:
        f2p, p2p, flaky, why = [], [], [], "the commit touches no test files"
    report = TaskValidation(
        task=task,
        package_digest=package_digest,
        sha=sha,
        parent=commit.parent,
        subject=commit.subject,
        status="unusable" if why else "usable",
        reason=why or f"{len(f2p)} failing-to-passing, {len(p2p)} passing-to-passing",
        test_files=files,
        fail_to_pass=f2p,
        pass_to_pass=p2p,
        flaky=flaky,
        runs=before + after,
        env_key=env.key,
        artifacts=out,
    )
    report_path = out / "report.json"
    report_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _record(ws, report, report_path)
    return report
