"""One attempt: a pipeline plans and edits a task, the edits are applied and the tests decide.

Stages, reported through `on_stage` for the console's worker lines:
gold (the task's gold validation, once per task, shared by every attempt through a lock) →
index (the parent's tree) → retrieve (context under the token budget) → plan (the pipeline) →
execute (apply the edits, then the commit's test files) → validate (FAIL_TO_PASS and
PASS_TO_PASS, once, sandboxed).

Outcomes, SWE-bench's grading: resolved (every FAIL_TO_PASS and PASS_TO_PASS test passes),
partial (some FAIL_TO_PASS pass), failed (none does, or the planner's answer was malformed or
its edits did not apply: the planner's fault), error (the run did not complete: the endpoint
failed, the tests ran past their limit or wrote no report), unusable (the task has no
FAIL_TO_PASS test, so there is nothing to attempt). Artifacts go to
`runs/<task>/attempts/<id>/`: context.txt, raw.txt, patch.diff, report.json, and the test run's
output and JUnit report under tests/ (`progress.TEST_OUTPUT`). The attempt's row is updated in
one transaction at the end.
"""

import difflib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.core.locks import exclusive_lock
from engine.core.staged import remove_tree
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.alignment import Alignment, score_alignment
from engine.harness.ast_diff import commit_changes
from engine.harness.command_pipeline import propose_command
from engine.harness.edits import EditError, apply_edits
from engine.harness.environments import ensure_env
from engine.harness.gold import gold_output
from engine.harness.openai_pipeline import propose_openai
from engine.harness.package import CorpusPackage, HarnessError, load_package
from engine.harness.pipeline import PipelineResult, PlannerTask
from engine.harness.repo_index import build_index
from engine.harness.repo_sites import RepoInstallError, repo_site
from engine.harness.retrieve import select_context
from engine.harness.runner_compat import runner_options
from engine.harness.supplement import validate_commit
from engine.harness.task_validation import find_commit, run_tests
from engine.harness.worktrees import checkout, overlay_files
from engine.isolation.gitsafe import run_git
from engine.mining.message import clean_task_text

StageCallback = Callable[[str], None]
Proposer = Callable[[CorpusPackage, PlannerTask], PipelineResult]
"""What fills the planner slot for one attempt: the package and task in, the answer out."""


class AttemptRecord(BaseModel):
    """What an attempt found; written to report.json and the attempt's row."""

    model_config = ConfigDict(frozen=True)

    outcome: str
    reason: str
    duration_s: float
    test_duration_s: float
    prompt_tokens: int
    completion_tokens: int
    f2p_passed: int
    f2p_total: int
    p2p_passed: int
    p2p_total: int
    alignment: Alignment | None
    plan_json: str | None


@contextmanager
def commit_lock(ws: Workspace, sha: str) -> Iterator[None]:
    """Hold commit `sha`'s validation lock: one validation of a commit at a time, whichever
    package and process asks."""
    locks = ws.runs_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(locks / f"commit-{sha}.lock"):
        yield


def validated_task(ws: Workspace, package_digest: str, sha: str) -> dict[str, Any]:
    """The task's validation record (gold, supplemented, structural or skipped, as its task
    class allows), validating it now if no worker has yet. The lock is the commit's, so workers
    on two packages that share it validate it once."""
    with commit_lock(ws, sha):
        where = "package_digest = ? AND sha = ?"
        rows = list(ws.db["tasks"].rows_where(where, [package_digest, sha]))
        if not rows:
            validate_commit(ws, package_digest, sha)
            rows = list(ws.db["tasks"].rows_where(where, [package_digest, sha]))
    return rows[0]


def commit_message(package: CorpusPackage, sha: str) -> str:
    """The commit's message as task text (`clean_task_text`: no trailers, references, e-mails
    or squash-merge list): the task's natural-language instruction in every prompt."""
    git_dir = f"--git-dir={package.repo / '.git'}"
    raw = run_git(package.repo, git_dir, "log", "-1", "--format=%B", sha).stdout
    return clean_task_text(raw.decode("utf-8", "replace"))


def _pipeline_proposer(ws: Workspace, attempt: dict[str, Any]) -> Proposer:
    return lambda package, task: _propose(ws, package, attempt, task)


def _propose(
    ws: Workspace, package: CorpusPackage, attempt: dict[str, Any], task: PlannerTask
) -> PipelineResult:
    pipeline = attempt["pipeline"]
    if pipeline == "gold":
        commit = find_commit(package, attempt["sha"])
        return gold_output(package.repo, commit.parent, commit.sha, list(commit.test_files))
    if pipeline == "openai":
        return propose_openai(ws.config.harness.openai, task)
    if pipeline == "command":
        return propose_command(ws.config.harness.command, task)
    raise HarnessError(f"attempt {attempt['id']}: unknown pipeline {pipeline!r}")


def _texts(tree: Path, paths: set[str]) -> dict[str, str | None]:
    """Each path's text in `tree`, None when it is not a regular file there."""
    return {
        rel: (tree / rel).read_text("utf-8", "replace")
        if (tree / rel).is_file() and not (tree / rel).is_symlink()
        else None
        for rel in paths
    }


def _unified_diff(before: dict[str, str | None], after: Path, paths: list[str]) -> str:
    """The edits as a unified diff: `before` holds the texts read before they were applied."""
    chunks: list[str] = []
    for rel in sorted(set(paths)):
        old = before[rel]
        new = (after / rel).read_text("utf-8", "replace") if (after / rel).is_file() else None
        chunks.extend(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                (new or "").splitlines(keepends=True),
                fromfile=f"a/{rel}" if old is not None else "/dev/null",
                tofile=f"b/{rel}" if new is not None else "/dev/null",
            )
        )
    return "".join(chunks)


def _grade(
    outcomes: Mapping[str, str], f2p: list[str], p2p: list[str]
) -> tuple[str, str, int, int]:
    f2p_ok = sum(outcomes.get(t) == "passed" for t in f2p)
    p2p_ok = sum(outcomes.get(t) == "passed" for t in p2p)
    counts = f"{f2p_ok}/{len(f2p)} failing-to-passing, {p2p_ok}/{len(p2p)} passing-to-passing"
    if f2p_ok == len(f2p) and p2p_ok == len(p2p):
        return "resolved", counts, f2p_ok, p2p_ok
    if f2p_ok:
        return "partial", counts, f2p_ok, p2p_ok
    return "failed", counts, f2p_ok, p2p_ok


class _Run:
    """The mutable tally of one attempt while it runs."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.test_s = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.f2p = (0, 0)
        self.p2p = (0, 0)
        self.alignment: Alignment | None = None
        self.plan_json: str | None = None

    def record(self, outcome: str, reason: str) -> AttemptRecord:
        return AttemptRecord(
            outcome=outcome,
            reason=reason,
            duration_s=round(time.monotonic() - self.started, 3),
            test_duration_s=round(self.test_s, 3),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            f2p_passed=self.f2p[0],
            f2p_total=self.f2p[1],
            p2p_passed=self.p2p[0],
            p2p_total=self.p2p[1],
            alignment=self.alignment,
            plan_json=self.plan_json,
        )


def _attempt(
    ws: Workspace,
    attempt: dict[str, Any],
    out: Path,
    on_stage: StageCallback,
    run: _Run,
    propose: Proposer,
) -> AttemptRecord:
    on_stage("gold")
    task_row = validated_task(ws, attempt["package_digest"], attempt["sha"])
    if task_row["status"] != "usable":
        return run.record("unusable", task_row["reason"])
    package = load_package(ws, attempt["package_digest"])
    commit = find_commit(package, attempt["sha"])
    f2p, p2p = json.loads(task_row["fail_to_pass"]), json.loads(task_row["pass_to_pass"])
    run.f2p, run.p2p = (0, len(f2p)), (0, len(p2p))
    env = ensure_env(ws, package)
    instruction = commit_message(package, commit.sha)
    with checkout(package.repo, commit.parent, out) as tree:
        on_stage("index")
        index = build_index(tree)
        on_stage("retrieve")
        context = select_context(index, tree, instruction, ws.config.harness.context_token_budget)
        (out / "context.txt").write_text(context.text, encoding="utf-8")
        on_stage("plan")
        task = PlannerTask(
            task=attempt["task"],
            repo=package.manifest.name,
            instruction=instruction,
            parent=commit.parent,
            worktree=str(tree),
            context=context.text,
            context_tokens=context.tokens,
            model=attempt["model"],
            temperature=attempt["temperature"],
            seed=attempt["seed"],
        )
        result = propose(package, task)
        (out / "raw.txt").write_text(result.raw, encoding="utf-8")
        run.prompt_tokens, run.completion_tokens = result.prompt_tokens, result.completion_tokens
        if result.output is None:
            kind = "failed" if result.malformed else "error"
            return run.record(kind, f"the {attempt['pipeline']} pipeline: {result.error}")
        plan = result.output.plan
        run.plan_json = plan.model_dump_json()
        changes = commit_changes(package.repo, commit.parent, commit.sha, set(commit.test_files))
        run.alignment = score_alignment(plan, changes, list(commit.test_files))
        on_stage("execute")
        edits = list(result.output.edits)
        before = _texts(tree, {edit.path for edit in edits})
        try:
            changed = apply_edits(tree, edits)
        except EditError as exc:
            return run.record("failed", f"the edits do not apply: {exc}")
        (out / "patch.diff").write_text(_unified_diff(before, tree, changed), encoding="utf-8")
        # A supplemented task's tests are a later commit's files, laid over as its validation did.
        tests_from = task_row["tests_from"] or commit.sha
        test_files = (
            json.loads(task_row["test_files"]) if task_row["tests_from"] else commit.test_files
        )
        overlay_files(package.repo, tests_from, list(test_files), tree)
        on_stage("validate")
        site = None
        if package.manifest.install_repo:
            try:
                label = f"{commit.parent[:12]} with an attempt's edits"
                site = repo_site(ws, env, package, tree, out / "install", label)
            except RepoInstallError as exc:
                return run.record("failed", f"with the edits, {exc}")
        files = [f for f in test_files if (tree / f).is_file()]
        test_run, outcomes, junit_error = run_tests(
            ws, env, package, tree, files, out / "tests", site, runner_options(package, commit)
        )
        run.test_s = test_run.duration_s
        if test_run.timed_out:
            limit = ws.config.harness.test_timeout_s
            return run.record("error", f"the tests ran past the time limit of {limit:g}s")
        if junit_error is not None:
            return run.record("error", f"the tests gave no trustworthy result: {junit_error}")
        outcome, reason, f2p_ok, p2p_ok = _grade(outcomes, f2p, p2p)
        run.f2p, run.p2p = (f2p_ok, len(f2p)), (p2p_ok, len(p2p))
        return run.record(outcome, reason)


def record_attempt(ws: Workspace, attempt_id: int, out: Path, record: AttemptRecord) -> None:
    """Write the attempt's outcome to its row in one transaction; its artifacts are in `out`."""
    alignment = record.alignment.model_dump() if record.alignment else {}
    row = {
        "state": "done",
        "outcome": record.outcome,
        "reason": record.reason,
        "finished_at": utc_now(),
        "duration_s": record.duration_s,
        "test_duration_s": record.test_duration_s,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "f2p_passed": record.f2p_passed,
        "f2p_total": record.f2p_total,
        "p2p_passed": record.p2p_passed,
        "p2p_total": record.p2p_total,
        "plan_json": record.plan_json,
        "artifacts": out.relative_to(ws.root).as_posix(),
        **{
            key: alignment.get(key)
            for key in (
                "file_precision",
                "file_recall",
                "symbol_precision",
                "symbol_recall",
                "order_agreement",
            )
        },
    }
    with ws.db.conn:
        ws.db.table("attempts").update(attempt_id, row)


def run_attempt(ws: Workspace, attempt: dict[str, Any], on_stage: StageCallback) -> AttemptRecord:
    """Run the claimed `attempt` row to its outcome and record it; returns the record.

    A HarnessError (the environment cannot be built, a context that cannot fit its budget) is
    the attempt's `error` outcome with the message as the reason, not a crash of the worker.
    """
    out = attempt_dir(ws, attempt)
    record = perform_attempt(ws, attempt, out, on_stage)
    record_attempt(ws, attempt["id"], out, record)
    return record


def attempt_dir(ws: Workspace, attempt: dict[str, Any]) -> Path:
    """Where the attempt's artifacts go: `runs/<task>/attempts/<id>/`."""
    return ws.runs_dir / attempt["task"] / "attempts" / str(attempt["id"])


def perform_attempt(
    ws: Workspace, attempt: dict[str, Any], out: Path, on_stage: StageCallback
) -> AttemptRecord:
    """Run the campaign attempt `attempt` with its pipeline, its artifacts and report.json in
    `out` (created, emptied first); its row is not written (`record_attempt` does that). A
    cluster node runs this in its own workspace and the head records the result."""
    return evaluate_attempt(ws, attempt, out, _pipeline_proposer(ws, attempt), on_stage)


def evaluate_attempt(
    ws: Workspace,
    attempt: dict[str, Any],
    out: Path,
    propose: Proposer,
    on_stage: StageCallback = lambda stage: None,
) -> AttemptRecord:
    """Run an attempt that is not a campaign's: `propose` fills the planner slot, artifacts go
    to `out` (created, emptied first) and nothing is written to `attempts`. An eval run uses it,
    so its answers never become training data.

    `attempt` needs package_digest, sha, task, pipeline (a label), model, temperature, seed.
    """
    if out.exists():
        remove_tree(out)
    out.mkdir(parents=True)
    record = _run_attempt(ws, attempt, out, on_stage, propose)
    (out / "report.json").write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return record


def _run_attempt(
    ws: Workspace,
    attempt: dict[str, Any],
    out: Path,
    on_stage: StageCallback,
    propose: Proposer,
) -> AttemptRecord:
    run = _Run()
    try:
        return _attempt(ws, attempt, out, on_stage, run, propose)
    except HarnessError as exc:
        return run.record("error", str(exc))
