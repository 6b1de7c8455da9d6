"""Validation spent by what a commit can become (LoRA Training Strategy §6.9, test supplementation).

The manifest's task class decides (engine.intake.manifest.TaskClass):

- gold (code and tests): gold validation, `task_validation.validate_task`. When none of its
  test files is a test module the repository's pytest collects, it goes on as code_only.
- test_data (tests only): skipped, nothing is run. Its tests pass at the parent once the commit's
  test changes are applied, so there is no failing test to fix: the commit is test-plan data.
- code_only: first the static checks, which run nothing: every changed Python file parses at
  the commit, its syntax tree differs from the parent's beyond docstrings (comments and
  formatting never reach the tree), and the change, as the search/replace edits a pipeline
  answers with, applies to the parent and yields the commit's files. A commit failing one is
  unusable. Then supplementation: test files that later commits added or changed and that import
  a changed module (or its package) are laid over both sides (the parent and the commit) and run
  through task_validation's runners, the files naming a changed symbol first, nearest commit
  first. A test that passes at the commit and not at the parent (not flaky) is FAIL_TO_PASS: the
  commit's change, and nothing else, makes it pass. Each candidate is screened by one run per
  side before the full, flakiness-settling runs. A commit no later test fails for is validated
  structurally only: status `structural`, neither usable nor unusable, since no test can judge
  an attempt at it.

Each result is a `TaskValidation` row labelled with how it was validated (`validation`), under
`runs/<task>/supplement/` (the patch, each candidate's runs, `report.json`).
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from engine.core.staged import remove_tree
from engine.core.workspace import Workspace
from engine.harness.ast_diff import FileChange, commit_changes
from engine.harness.edits import EditError, apply_edits
from engine.harness.environments import TaskEnv, ensure_env
from engine.harness.gold import gold_output
from engine.harness.package import CorpusPackage, load_package
from engine.harness.repo_sites import RepoInstallError
from engine.harness.runner_compat import runner_options
from engine.harness.task_validation import (
    SideRun,
    TaskValidation,
    _broken_side,
    _classify,
    _first_run,
    _record,
    _reruns,
    _reuse,
    _validated_elsewhere,
    _would_be_fail_to_pass,
    find_commit,
    task_name,
    validate_task,
)
from engine.harness.worktrees import checkout, overlay_files
from engine.intake.manifest import ManifestCommit
from engine.isolation.gitobjects import read_blobs
from engine.isolation.gitsafe import run_git
from engine.mining.paths import PathRoles, is_python
from engine.mining.settings import FilterSettings
from engine.mining.tests_exist import IMPORT_STATEMENT, imported_modules, module_names

LATER_COMMITS_SCANNED = 400
"""How many commits after a code-only commit are searched for test files."""
CANDIDATES_TRIED = 3
"""How many later commits' test files are run against a code-only commit, nearest first."""
SKIPPED_REASON = "it changes tests only: test-plan data, no failing test for a change to fix"


@dataclass(frozen=True)
class Candidate:
    """Test files of a later commit that exercise the changed symbols."""

    sha: str
    files: tuple[str, ...]
    names: tuple[str, ...]


def validate_commit(ws: Workspace, package_digest: str, sha: str) -> TaskValidation:
    """Validate commit `sha` of the approved package as its task class allows; record and return
    it. Only a gold commit gets gold validation (see the module doc)."""
    package = load_package(ws, package_digest)
    commit = find_commit(package, sha)
    if (recorded := validation_without_run(ws, package, commit)) is not None:
        return recorded
    if commit.task_class == "gold":
        report = validate_task(ws, package_digest, sha)
        if report.reason_kind != "no-test-files" or not report.not_collected:
            return report
        return supplement_task(ws, package, commit, own_tests=report.reason)
    return supplement_task(ws, package, commit)


def validation_without_run(
    ws: Workspace, package: CorpusPackage, commit: ManifestCommit
) -> TaskValidation | None:
    """The commit's validation recorded without running anything, when it needs no run: a
    test-only commit is skipped, and a commit another package of the same repository ran in its
    own sandbox reuses that run. None when the commit's tests must run (`validate_commit` runs
    them; a cluster's head sends only those commits to its nodes)."""
    if commit.task_class == "test_data":
        return _skip(ws, package, commit)
    if earlier := _validated_elsewhere(ws, package, commit.sha):
        return _reuse(ws, package, commit.sha, *earlier)
    return None


def _fresh_dir(ws: Workspace, package: CorpusPackage, sha: str, kind: str) -> Path:
    out = ws.runs_dir / task_name(package.digest, sha) / kind
    if out.exists():
        remove_tree(out)
    out.mkdir(parents=True)
    return out


def save_validation(ws: Workspace, report: TaskValidation) -> TaskValidation:
    """Write the validation's report.json in its artifacts folder and record its row."""
    path = report.artifacts / "report.json"
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _record(ws, report, path)
    return report


def _report(
    package: CorpusPackage, commit: ManifestCommit, out: Path, env_key: str, **fields: object
) -> TaskValidation:
    base: dict[str, object] = {
        "task": task_name(package.digest, commit.sha),
        "package_digest": package.digest,
        "sha": commit.sha,
        "parent": commit.parent,
        "subject": commit.subject,
        "test_files": [],
        "fail_to_pass": [],
        "pass_to_pass": [],
        "flaky": [],
        "runs": [],
        "env_key": env_key,
        "artifacts": out,
    }
    return TaskValidation.model_validate({**base, **fields})


def _skip(ws: Workspace, package: CorpusPackage, commit: ManifestCommit) -> TaskValidation:
    out = _fresh_dir(ws, package, commit.sha, "skipped")
    report = _report(
        package,
        commit,
        out,
        "",
        status="unusable",
        reason=SKIPPED_REASON,
        reason_kind="test-only",
        test_files=list(commit.test_files),
        validation="skipped",
    )
    return save_validation(ws, report)


def _write_patch(package: CorpusPackage, commit: ManifestCommit, out: Path) -> None:
    patch = run_git(
        package.repo,
        f"--git-dir={package.repo / '.git'}",
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--binary",
        commit.parent,
        commit.sha,
    ).stdout
    (out / "patch.diff").write_bytes(patch)


def supplement_task(
    ws: Workspace, package: CorpusPackage, commit: ManifestCommit, own_tests: str | None = None
) -> TaskValidation:
    """Validate the code-only `commit` with later tests, else structurally; record it.

    The static checks come first: a change no test can tell apart from its parent (comments,
    docstrings, formatting), or one that does not parse or apply, runs no test at all.

    `own_tests` says why a commit with test files is validated this way: none of them is a test
    module the repository's pytest collects (attrs's `tests/typing_example.py`, a typing
    fixture), so for its tests it is a code-only commit; every reason then says so."""

    def said(reason: str) -> str:
        return reason if own_tests is None else f"{reason}; {own_tests}"

    out = _fresh_dir(ws, package, commit.sha, "supplement")
    _write_patch(package, commit, out)
    changes = commit_changes(package.repo, commit.parent, commit.sha, exclude=())
    if why := static_problem(changes) or edits_problem(package, commit, changes, out):
        return save_validation(
            ws,
            _report(
                package,
                commit,
                out,
                "",
                status="unusable",
                reason=said(why),
                reason_kind="static-check",
                validation="structural",
            ),
        )
    candidates = later_tests(package, commit, changes)
    env = ensure_env(ws, package)
    tried = []
    for index, candidate in enumerate(candidates[:CANDIDATES_TRIED], start=1):
        found = _try_candidate(ws, env, package, commit, candidate, out / f"candidate-{index}")
        if isinstance(found, str):
            tried.append(f"{candidate.sha[:12]}: {found}")
            continue
        before, after, f2p, p2p, flaky = found
        naming = f" naming {', '.join(candidate.names[:3])}" if candidate.names else ""
        report = _report(
            package,
            commit,
            out,
            env.key,
            status="usable",
            reason=said(
                f"{len(f2p)} failing-to-passing, {len(p2p)} passing-to-passing, from the "
                f"tests of later commit {candidate.sha[:12]}{naming}"
            ),
            test_files=list(candidate.files),
            fail_to_pass=f2p,
            pass_to_pass=p2p,
            flaky=flaky,
            runs=[*before, *after],
            validation="supplemented",
            tests_from=candidate.sha,
        )
        return save_validation(ws, report)
    if candidates:
        searched = f"no later test fails at the parent ({'; '.join(tried)})"
    else:
        searched = "no later commit changes a test file importing a changed module"
    report = _report(
        package,
        commit,
        out,
        env.key,
        status="structural",
        reason=said(f"validated structurally only: {searched}"),
        reason_kind="structural",
        validation="structural",
    )
    return save_validation(ws, report)


Found = tuple[list[SideRun], list[SideRun], list[str], list[str], list[str]]


def _try_candidate(
    ws: Workspace,
    env: TaskEnv,
    package: CorpusPackage,
    commit: ManifestCommit,
    candidate: Candidate,
    out: Path,
) -> Found | str:
    """FAIL_TO_PASS of `candidate`'s test files laid over both sides, or why there is none.

    One run per side first (the parent's only when some test passes at the commit); only the
    would-be FAIL_TO_PASS are run again, as gold validation does, to settle flakiness."""
    files = list(candidate.files)
    out.mkdir(parents=True)
    limit_s = ws.config.harness.test_timeout_s
    try:
        with (
            checkout(package.repo, commit.sha, out) as after_tree,
            checkout(package.repo, commit.parent, out) as before_tree,
        ):
            for tree in (after_tree, before_tree):
                overlay_files(package.repo, candidate.sha, files, tree)
            label = f"{{}} with {candidate.sha[:12]}'s test files"
            options = runner_options(package, commit)
            after_site, after_first = _first_run(
                ws,
                env,
                package,
                "after",
                after_tree,
                files,
                out,
                label.format(commit.sha[:12]),
                options,
            )
            if why := _broken_side([after_first], "at the commit", limit_s):
                return why.text
            if "passed" not in after_first.outcomes.values():
                return "none of its tests passes at the commit"
            before_site, before_first = _first_run(
                ws,
                env,
                package,
                "before",
                before_tree,
                files,
                out,
                label.format(commit.parent[:12]),
                options,
            )
            if why := _broken_side([before_first], "at the parent", limit_s):
                return why.text
            f2p = _would_be_fail_to_pass(before_first, after_first)
            if not f2p:
                return "its tests that pass at the commit pass at the parent too"
            after = [
                after_first,
                *_reruns(
                    ws, env, package, "after", after_tree, files, f2p, out, after_site, options
                ),
            ]
            again = f2p & before_first.outcomes.keys()
            before = [before_first]
            if again:
                before += _reruns(
                    ws, env, package, "before", before_tree, files, again, out, before_site, options
                )
    except RepoInstallError as exc:
        return str(exc)
    found, p2p, flaky, reason = _classify(before, after, limit_s, set())
    if reason:
        return reason.text
    return before, after, found, p2p, flaky


_WORD = re.compile(r"[A-Za-z_]\w*")


def _targets(changes: list[FileChange], roles: PathRoles) -> tuple[set[str], set[str]]:
    """(names of the symbols the change adds or modifies, modules it changes with their
    packages). A dunder method counts by its class's name: tests name the class, not it."""
    names: set[str] = set()
    modules: set[str] = set()
    for change in changes:
        if change.symbols is None or roles.role(change.path) != "code" or change.new is None:
            continue
        for module in module_names(change.path):
            parts = module.split(".")
            modules.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        for symbol in change.symbols.touched:
            parts = symbol.split(".")
            leaf = parts[-1]
            if leaf.startswith("__") and leaf.endswith("__"):
                leaf = parts[-2] if len(parts) > 1 else ""
            if leaf:
                names.add(leaf)
    return names, modules


def later_tests(
    package: CorpusPackage, commit: ManifestCommit, changes: list[FileChange]
) -> list[Candidate]:
    """Later commits' test files that import a changed module (or its package), grouped by
    commit: first the commits whose files also name a changed symbol, then the others, each
    nearest first. A test of a private helper goes through the public API, which names nothing
    the commit changed. Only commits descending from `commit` up to the package's head count,
    the first `LATER_COMMITS_SCANNED` of them that change a test file."""
    roles = PathRoles(FilterSettings().test_patterns)
    names, modules = _targets(changes, roles)
    if not modules:
        return []
    raw = run_git(
        package.repo,
        f"--git-dir={package.repo / '.git'}",
        "log",
        "--ancestry-path",
        "--reverse",
        "--no-renames",
        "--diff-filter=AM",
        "--name-only",
        "-z",
        "--format=%x01%H",
        f"{commit.sha}..{package.manifest.head}",
    ).stdout
    later: list[tuple[str, list[str]]] = []
    for chunk in raw.split(b"\x01")[1:]:
        raw_sha, _, rest = chunk.partition(b"\0")
        paths = [p.decode("utf-8", "replace") for p in rest.lstrip(b"\n").split(b"\0") if p]
        tests = [p for p in paths if is_python(p) and roles.role(p) == "test"]
        if tests:
            later.append((raw_sha.decode("ascii"), tests))
        if len(later) >= LATER_COMMITS_SCANNED:
            break
    if not later:
        return []
    blobs = read_blobs(package.repo, [f"{sha}:{path}" for sha, paths in later for path in paths])
    texts = iter(blobs)
    naming, importing = [], []
    for sha, paths in later:
        named_files, import_files, named = [], [], set()
        for path in paths:
            text = "\n" + next(texts).decode("utf-8", "replace")
            imports = frozenset().union(*map(imported_modules, IMPORT_STATEMENT.findall(text)))
            if not imports & modules:
                continue
            import_files.append(path)
            if hits := names & set(_WORD.findall(text)):
                named_files.append(path)
                named |= hits
        if named_files:
            naming.append(Candidate(sha, tuple(named_files), tuple(sorted(named))))
        elif import_files:
            importing.append(Candidate(sha, tuple(import_files), ()))
    return naming + importing


def _without_docstrings(tree: ast.Module) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def edits_problem(
    package: CorpusPackage, commit: ManifestCommit, changes: list[FileChange], out: Path
) -> str | None:
    """Why the commit's change, as the search/replace edits a pipeline answers with, does not
    apply to the parent and yield the commit's files; None when it does."""
    gold = gold_output(package.repo, commit.parent, commit.sha, [])
    if gold.output is None:
        return f"its change cannot be given as edits: {gold.error}"
    with checkout(package.repo, commit.parent, out) as tree:
        try:
            apply_edits(tree, list(gold.output.edits))
        except EditError as exc:
            return f"its change does not apply to the parent: {exc}"
        for change in changes:
            if change.new is not None and (tree / change.path).read_bytes() != change.new.encode():
                return f"its edits do not reproduce {change.path}"
    return None


def static_problem(changes: list[FileChange]) -> str | None:
    """Why the change cannot be a task whatever is run: a changed Python file does not parse at
    the commit, or no syntax tree differs from the parent's beyond docstrings. None otherwise."""
    python = [c for c in changes if is_python(c.path) and c.text]
    differs = not python
    for change in python:
        if change.new is None or change.old is None:
            differs = True
            continue
        try:
            new = ast.parse(change.new, change.path)
        except SyntaxError as exc:
            return f"{change.path} does not parse at the commit: {exc.msg} (line {exc.lineno})"
        try:
            old = ast.parse(change.old, change.path)
        except SyntaxError:
            differs = True
            continue
        differs = differs or _without_docstrings(old) != _without_docstrings(new)
    if not differs:
        return "its change alters only comments, docstrings or formatting: no test tells it apart"
    return None
