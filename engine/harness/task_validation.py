"""Gold task validation: which of a commit's tests its own change makes pass (SWE-bench style).

For a manifest commit, the tests it touches (its `test_files`) are run on two sides, each in a
checkout of its own, inside `run_sandboxed` with the harness limits:

- before: the parent's tree with the commit's test-file changes applied;
- after: the commit's tree.

Results come from pytest's JUnit XML, written through an inherited descriptor to a file outside
the sandbox's view (the tested code cannot name it) and cross-checked against pytest's summary
line and exit status; a run where they disagree is untrusted, and so is its side.

FAIL_TO_PASS: passing after, not passing before (failed, error or absent: a test of a module
the commit adds cannot even be collected at the parent). PASS_TO_PASS: passing in both. A test
whose outcome differs between runs of one side is flaky and excluded from both. A commit with no
FAIL_TO_PASS is recorded as unusable, with the reason.

What is run, to keep a commit's cost near two runs of its tests: each side's files run once
(the two sides at once when `parallel_sides` allows: two cores, memory for two runs at
`test_memory_mb`), so a PASS_TO_PASS test has passed in both runs that ran it. Only the would-be
FAIL_TO_PASS, where a flaky test would make a false task, are run again, on both sides in their
own checkouts, up to `harness.flaky_runs` runs in all (at the parent, those it could collect).
A rerun names them by node id (`_node_ids`); one that cannot runs the same files and reads only
them. A commit without would-be FAIL_TO_PASS, or with a broken first run, is unusable whatever a
rerun says, so it is not run again. Artifacts go to `runs/<task>/gold/`: the commit's patch,
each run's output and JUnit XML (`<side>-<n>/`), and `report.json`.

A task is its repository and commit, not its package: a commit that another package of the same
repository (the manifest's name) already validated in its own sandbox run reuses that result
(status, tests, reason and report), its row naming the package in `validated_in`; the sandbox is
not run again. Validating that package again carries its new result to the rows that reuse it.
"""

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.core.staged import remove_tree
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.ast_diff import commit_changes
from engine.harness.environments import TaskEnv, ensure_env
from engine.harness.junit import JunitError, Outcome, read_checked_junit
from engine.harness.package import CorpusPackage, HarnessError, load_package
from engine.harness.pytest_account import (
    Reason,
    ReasonKind,
    RunAccount,
    account_run,
    candidates_reason,
    evidence,
    run_reason,
    touched_tests,
)
from engine.harness.pytest_config import PytestConfigError, collected_test_files
from engine.harness.repo_sites import RepoInstallError, RepoSite, repo_site
from engine.harness.runner_compat import runner_options
from engine.harness.worktrees import checkout, overlay_files
from engine.intake.manifest import ManifestCommit
from engine.isolation.gitsafe import run_git
from engine.isolation.sandbox import SandboxResult, python_paths, run_sandboxed

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
    account: RunAccount | None = Field(
        default=None, description="pytest's account of the run (None in older reports)"
    )
    selected: list[str] | None = Field(
        default=None, description="the tests a rerun was for; None: every test of the files"
    )
    installed: str | None = Field(
        default=None,
        description="how the repository was installed for the run's tree (install_repo only)",
    )


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
    reason_kind: ReasonKind | None = Field(
        default=None, description="why unusable, to group by (None: usable, or an older report)"
    )
    test_files: list[str]
    not_collected: dict[str, str] = Field(
        default_factory=dict,
        description="test files the repository's pytest configuration does not collect as test "
        "modules, so not run, with why",
    )
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


def _pytest_argv(
    env: TaskEnv, package: CorpusPackage, files: list[str], junit: str, options: Sequence[str]
) -> list[str]:
    """pytest on `files` (never none: pytest would then run the whole suite), its JUnit report
    to `junit`, with `options` (`runner_options`) first. A module that cannot be collected (at
    the parent, one importing what the commit adds) must not stop the other files' tests from
    running, or they would count as absent. pytest-randomly is not loaded: it shuffles the
    tests on every run, and an order-dependent suite would give each run other outcomes."""
    assert files, "pytest with no files runs the repository's whole suite"
    return [
        str(env.python),
        "-m",
        package.manifest.runner,
        *options,
        *files,
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--continue-on-collection-errors",
        "-q",
    ]


class NoTestModules(HarnessError):
    """None of the commit's test files is a test module the repository's pytest collects;
    `not_collected` says why of each."""

    def __init__(self, not_collected: dict[str, str]) -> None:
        super().__init__(_no_test_modules(not_collected))
        self.not_collected = not_collected


def _no_test_modules(not_collected: dict[str, str]) -> str:
    if not not_collected:
        return "none of the commit's test files is in the tree at the commit"
    name, why = next(iter(not_collected.items()))
    more = f" and {len(not_collected) - 1} more" if len(not_collected) > 1 else ""
    return (
        "the commit touches no test module that the repository's pytest configuration "
        f"collects: {evidence(f'{name} ({why})')}{more}"
    )


def run_tests(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    tree: Path,
    files: list[str],
    run_dir: Path,
    site: RepoSite | None = None,
    options: Sequence[str] = (),
) -> tuple[SandboxResult, dict[str, Outcome], str | None]:
    """Run `files` once in `tree`, sandboxed; output and JUnit XML go to `run_dir`.

    `site` is where the repository is installed for the tree (`repo_site`, install_repo
    packages); without it the tree itself is put on PYTHONPATH. `options` go to the runner
    (`runner_options`). Returns how the run ended,
    each test's outcome, and why the JUnit report is unusable (None when it is fine).
    """
    limits = ws.config.harness
    python_path = os.pathsep.join(str(p) for p in site.paths) if site else str(tree)
    env_vars = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": python_path}
    run_dir.mkdir(parents=True)
    junit = run_dir / "junit.xml"
    report_fd = os.open(junit, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        result = run_sandboxed(
            _pytest_argv(env, package, files, f"/dev/fd/{report_fd}", options),
            tree,
            timeout_s=limits.test_timeout_s,
            memory_mb=limits.test_memory_mb,
            env=env_vars,
            extra_path=[env.bin_dir],
            tmp_root=run_dir,
            readable=[*python_paths(env.python), *(site.readable if site else [])],
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


RERUN_ARGV_MAX_BYTES = 128 * 1024
"""The most node ids (bytes of command line) a rerun names; beyond it, it runs the files."""


def parallel_sides(memory_mb: int) -> bool:
    """Whether the two sides may run at once: two cores for this process and memory for two
    runs at the harness's limit (`test_memory_mb`)."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    return len(os.sched_getaffinity(0)) >= 2 and memory >= 2 * memory_mb


def _side_run(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    side: Side,
    index: int,
    tree: Path,
    args: list[str],
    out: Path,
    site: RepoSite | None,
    options: Sequence[str],
    selected: list[str] | None = None,
) -> SideRun:
    """One run of `args` (test files or node ids) in `tree`; artifacts in `out/<side>-<index>`."""
    run_dir = out / f"{side}-{index}"
    result, outcomes, junit_error = run_tests(ws, env, package, tree, args, run_dir, site, options)
    return SideRun(
        side=side,
        index=index,
        returncode=result.returncode,
        timed_out=result.timed_out,
        duration_s=result.duration_s,
        outcomes=outcomes,
        junit_error=junit_error,
        account=account_run(result, run_dir / "junit.xml", junit_error),
        selected=selected,
        installed=site.how if site else None,
    )


def _first_run(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    side: Side,
    tree: Path,
    files: list[str],
    out: Path,
    label: str,
    options: Sequence[str],
) -> tuple[RepoSite | None, SideRun]:
    """Install `tree` (install_repo packages; `label` names the tree in the install's
    record) and run all of `files` once: (site, run). A failed install is a RepoInstallError
    naming the side."""
    site = None
    if package.manifest.install_repo:
        try:
            site = repo_site(ws, env, package, tree, out / f"{side}-install", label)
        except RepoInstallError as exc:
            where = "at the commit" if side == "after" else "at the parent"
            raise RepoInstallError(f"{where}: {exc}") from exc
    return site, _side_run(ws, env, package, side, 1, tree, files, out, site, options)


def _node_ids(tests: set[str], files: list[str]) -> list[str] | None:
    """`tests` (ids relative to pytest's rootdir) as node ids relative to the tree, which is
    where pytest runs; None when one does not lie in exactly one of `files` or the ids would
    not fit `RERUN_ARGV_MAX_BYTES`."""
    nodes = []
    for test in sorted(tests):
        path, sep, rest = test.partition("::")
        owners = [f for f in files if f == path or f.endswith(f"/{path}")]
        if not sep or len(owners) != 1:
            return None
        nodes.append(f"{owners[0]}::{rest}")
    return nodes if sum(len(n) + 1 for n in nodes) <= RERUN_ARGV_MAX_BYTES else None


def _reruns(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    side: Side,
    tree: Path,
    files: list[str],
    tests: set[str],
    out: Path,
    site: RepoSite | None,
    options: Sequence[str],
) -> list[SideRun]:
    """Run only `tests` again in `tree`, up to `flaky_runs` runs in all; named by node id
    (`_node_ids`), else by running `files` and reading only `tests`. Stops at a broken run."""
    args = _node_ids(tests, files) or files
    runs = []
    for index in range(2, ws.config.harness.flaky_runs + 1):
        run = _side_run(
            ws, env, package, side, index, tree, args, out, site, options, sorted(tests)
        )
        runs.append(run)
        if run.timed_out or run.junit_error is not None:
            break
    return runs


def _would_be_fail_to_pass(before: SideRun, after: SideRun) -> set[str]:
    """Tests passing in the commit's first run and not in the parent's; none when a first run
    is broken (the commit is unusable whatever a rerun says)."""
    if any(run.timed_out or run.junit_error is not None for run in (before, after)):
        return set()
    passing_before = {t for t, o in before.outcomes.items() if o == "passed"}
    return {t for t, o in after.outcomes.items() if o == "passed"} - passing_before


def _run_sides(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    commit: ManifestCommit,
    out: Path,
) -> tuple[list[SideRun], list[SideRun], dict[str, str]]:
    """Every run of both sides (see the module doc): (before, after, the commit's test files
    the repository's pytest configuration does not collect, with why). Raises NoTestModules
    when it collects none of them."""
    files = list(commit.test_files)
    options = runner_options(package, commit)
    slots = 2 if parallel_sides(ws.config.harness.test_memory_mb) else 1
    with (
        checkout(package.repo, commit.sha, out) as after_tree,
        checkout(package.repo, commit.parent, out) as before_tree,
        ThreadPoolExecutor(max_workers=slots, thread_name_prefix="gold-side") as pool,
    ):
        at_commit, not_collected = collected_test_files(after_tree, files)
        if not at_commit:
            raise NoTestModules(not_collected)
        overlay_files(package.repo, commit.sha, files, before_tree)
        sides: list[tuple[Side, Path, str]] = [
            ("after", after_tree, commit.sha[:12]),
            ("before", before_tree, f"{commit.parent[:12]} with {commit.sha[:12]}'s test files"),
        ]
        jobs = [
            pool.submit(_first_run, ws, env, package, side, tree, at_commit, out, label, options)
            for side, tree, label in sides
        ]
        try:
            after_site, after_first = jobs[0].result()
        except RepoInstallError:
            jobs[1].cancel()
            raise
        before_site, before_first = jobs[1].result()
        f2p = _would_be_fail_to_pass(before_first, after_first)
        if not f2p or ws.config.harness.flaky_runs == 1:
            return [before_first], [after_first], not_collected
        # At the parent only those it could collect are run again (a node id it lacks is an
        # error of the whole run).
        again_before = f2p & before_first.outcomes.keys()
        again: list[tuple[Side, Path, set[str], RepoSite | None]] = [
            ("after", after_tree, f2p, after_site)
        ]
        if again_before:
            again.append(("before", before_tree, again_before, before_site))
        more = {
            side: pool.submit(
                _reruns, ws, env, package, side, tree, at_commit, tests, out, site, options
            )
            for side, tree, tests, site in again
        }
        runs = {side: job.result() for side, job in more.items()}
        before = [before_first, *runs.get("before", [])]
        return before, [after_first, *runs["after"]], not_collected


def _flaky(runs: list[SideRun]) -> set[str]:
    """Tests whose outcome in a later run is not the first run's (absent counts as an outcome);
    a rerun of candidates (`selected`) speaks only for them."""
    first = runs[0].outcomes
    found: set[str] = set()
    for run in runs[1:]:
        ids = first.keys() | run.outcomes.keys() if run.selected is None else set(run.selected)
        found |= {tid for tid in ids if run.outcomes.get(tid) != first.get(tid)}
    return found


def _broken_side(runs: list[SideRun], side: str, limit_s: float) -> Reason | None:
    """Why the runs of one side give no usable outcomes, or None when each does."""
    for run in runs:
        if run.account is not None and run.account.kind is not None:
            return run_reason(run.account, side, limit_s)
        if run.timed_out:
            return Reason(
                "timeout",
                f"the tests {side} ran past the time limit of {limit_s:g}s (test_timeout_s)",
            )
        if run.junit_error is not None:
            return Reason(
                "untrusted-report",
                f"the tests {side} gave no trustworthy result: {run.junit_error}",
            )
    return None


def _classify(
    before: list[SideRun],
    after: list[SideRun],
    limit_s: float,
    touched: set[tuple[str, str]],
) -> tuple[list[str], list[str], list[str], Reason | None]:
    """(FAIL_TO_PASS, PASS_TO_PASS, flaky, why unusable or None); `touched`: the test functions
    and classes the commit adds or changes (`pytest_account.touched_tests`)."""
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
        account = after[0].account
        said = f': "{account.evidence}"' if account and account.evidence else ""
        why = Reason("no-tests", f"no test ran at the commit{said}")
    elif flaky_passing:
        why = Reason(
            "flaky", f"its only failing-to-passing tests are flaky: {', '.join(flaky_passing)}"
        )
    else:
        why = candidates_reason(first_after, after[0].account, set(p2p) | flaky, touched)
    return [], p2p, sorted(flaky), why


_RESULT = (
    "status",
    "reason",
    "reason_kind",
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
        "reason_kind": report.reason_kind,
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
    not_collected: dict[str, str] = {}
    if files:
        try:
            before, after, not_collected = _run_sides(ws, env, package, commit, out)
            touched = touched_tests(commit_changes(package.repo, commit.parent, sha, ()))
            limit_s = ws.config.harness.test_timeout_s
            f2p, p2p, flaky, why = _classify(before, after, limit_s, touched)
        except RepoInstallError as exc:
            f2p, p2p, flaky, why = [], [], [], Reason("install-error", str(exc))
        except NoTestModules as exc:
            not_collected = exc.not_collected
            f2p, p2p, flaky, why = [], [], [], Reason("no-test-files", str(exc))
        except PytestConfigError as exc:
            reason = f"the repository's pytest configuration at the commit: {exc}"
            f2p, p2p, flaky, why = [], [], [], Reason("config-error", reason)
    else:
        f2p, p2p, flaky, why = (
            [],
            [],
            [],
            Reason("no-test-files", "the commit touches no test files"),
        )
    report = TaskValidation(
        task=task,
        package_digest=package_digest,
        sha=sha,
        parent=commit.parent,
        subject=commit.subject,
        status="unusable" if why else "usable",
        reason=why.text if why else f"{len(f2p)} failing-to-passing, {len(p2p)} passing-to-passing",
        reason_kind=why.kind if why else None,
        test_files=files,
        not_collected=not_collected,
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
