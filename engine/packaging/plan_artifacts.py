"""Plan files committed to a repository, labelled by what its history did next (LoRA Training
Strategy §6.8).

A plan file is a text file (`.md`, `.markdown`, `.txt`, `.rst`, `.org`, `.adoc` or no extension)
that lives under a folder named `plan`, `plans`, `design` or `designs` (so `plans/*.md`,
`docs/plans/**`, `.claude/plans/*`), or whose name holds the word plan, plans, planning or design
(`PLAN.md`, `IMPLEMENTATION_PLAN.md`, `cache.plan.md`, `TODO-plan`, `DESIGN.md`, `ApiDesign.md`).

Each addition of a plan file is one artifact. The files it names are the paths in its text (as
written at that commit) that the history ever holds: a full path, a path's tail (`checks/git.py`),
a file name unique in the history (`slug.py`), or a dotted module (`attr.validators`). A plan that
names nothing path-like cannot be followed and is left out. The commits that follow it are those
after it (oldest first, parents before children) within 30 days of it; the plan's own commit counts
as implementation when it also touches the files the plan names.

Labels, from the LoRA Training Strategy's table, first match wins:

- bad: a revert touching the plan or its files follows (`Revert …`, git's own wording);
- bad: the plan is deleted and another plan naming some of the same files was added meanwhile
  (replaced; the artifact's `replaced_by` names that plan);
- bad: no commit touched the files it names (abandoned), or none of them was ever committed (a
  partial implementation is not told apart from a full one: any commit on its files counts);
- bad: a commit on its files says it rewrites, reworks, redoes or reimplements them;
- bad: heavy rework: more than 3 fix commits, or fixes changing more than half as many lines as
  the implementation did;
- fine: implemented after the plan itself was revised, or followed by small fixes;
- good: implemented with no revision and no fix.

A fix is a commit on the plan's files, after the first implementing commit, whose subject says
fix, bug, hotfix, regression or broken. A revision is a commit that edits only the plan (not its
files) with commits on its files still to come; edits made with the code, or after the last of
it, are progress notes (ticked steps) and do not count.

The whole history is read with one `git log` and the plan texts with one `git cat-file --batch`,
from git objects, never from a work tree.
"""

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from engine.core.errors import CraError, validation_lines
from engine.intake.manifest import PlanArtifact, PlanLabel, PlanRef
from engine.isolation.gitobjects import read_blobs, repo_git

WINDOW_DAYS = 30
WINDOW_S = WINDOW_DAYS * 24 * 3600
MAX_SMALL_FIXES = 3
MAX_FIX_SHARE = 0.5
PLAN_EXTENSIONS = frozenset({"", ".md", ".markdown", ".txt", ".rst", ".org", ".adoc"})
PLAN_FOLDERS = frozenset({"plan", "plans", "design", "designs"})
PLAN_WORDS = frozenset({"plan", "plans", "planning", "design"})
WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
PATH_TOKEN = re.compile(r"[\w./-]+")
FILE_EXTENSIONS = frozenset(
    {"py", "pyi", "pyx", "toml", "cfg", "ini", "json", "yaml", "yml", "md", "rst", "txt"}
    | {"js", "ts", "tsx", "jsx", "c", "h", "cpp", "rs", "go", "sh", "html", "css", "sql"}
)
MODULE_TOKEN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
REVERT = re.compile(r"^revert\b", re.IGNORECASE)
FIX = re.compile(r"\b(fix(es|ed|ing)?|bug(fix)?|hotfix|regression|broken)\b", re.IGNORECASE)
REWRITE = re.compile(r"\b(rewr[io]te|rewrites|rework(s|ed)?|redo(ne)?|reimplement\w*)\b", re.I)
COMMIT_MARK = "\x01"
LOG_FORMAT = f"--format={COMMIT_MARK}%H %ct %s"


class PlanArtifactError(CraError):
    """The plan artifacts of a repository cannot be found."""


@dataclass(frozen=True)
class Change:
    """One file a commit changed: `old_path` is set for renames and copies."""

    status: str
    path: str
    old_path: str | None
    blob: str
    lines: int = 0


@dataclass
class Commit:
    """A commit of the history with the files it changed, keyed by their path after it."""

    sha: str
    time: int
    subject: str
    changes: dict[str, Change] = field(default_factory=dict)

    def touched(self, paths: set[str]) -> set[str]:
        """Which of `paths` this commit changed, under their old or new names."""
        names = set(self.changes) | {c.old_path for c in self.changes.values() if c.old_path}
        return names & paths

    def lines_on(self, paths: set[str]) -> int:
        return sum(
            change.lines
            for change in self.changes.values()
            if change.path in paths or change.old_path in paths
        )


@dataclass
class Followed:
    """A plan addition and what the commits after it did."""

    path: str
    index: int
    named: set[str]
    files: list[str]
    implemented: list[Commit] = field(default_factory=list)
    implemented_lines: int = 0
    fixes: list[Commit] = field(default_factory=list)
    fix_lines: int = 0
    revisions: list[Commit] = field(default_factory=list)
    reverts: list[Commit] = field(default_factory=list)
    rewrites: list[Commit] = field(default_factory=list)
    deleted_in: int | None = None


def is_plan_path(path: str) -> bool:
    """Whether `path` looks like a committed plan or design document."""
    pure = PurePosixPath(path)
    if pure.suffix.lower() not in PLAN_EXTENSIONS:
        return False
    if any(folder.lower() in PLAN_FOLDERS for folder in pure.parts[:-1]):
        return True
    words = {word.lower() for word in WORD.findall(pure.name)}
    return bool(words & PLAN_WORDS)


def find_plan_artifacts(repo: Path) -> list[PlanArtifact]:
    """Every plan file added in `repo`'s history up to HEAD, labelled good, fine or bad."""
    git_dir = repo / ".git"
    if not git_dir.exists():
        raise PlanArtifactError(f"{repo}: not a git repository (no .git); cannot look for plans")
    head = repo_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        raise PlanArtifactError(f"{repo}: HEAD names no commit; an empty repository has no plans")
    commits = read_history(repo, head.stdout.decode("ascii").strip())
    additions = [
        (index, change)
        for index, commit in enumerate(commits)
        for change in commit.changes.values()
        if change.status in ("A", "C") and is_plan_path(change.path)
    ]
    if not additions:
        return []
    texts = read_blobs(repo, [change.blob for _, change in additions])
    known = _PathIndex({path for commit in commits for path in commit.changes})
    followed = []
    for (index, change), text in zip(additions, texts, strict=True):
        tokens = {_clean(token) for token in PATH_TOKEN.findall(text.decode("utf-8", "replace"))}
        files = sorted(token for token in tokens if _names_a_file(token))
        modules = [token for token in tokens if MODULE_TOKEN.fullmatch(token)]
        named = {path for path in known.match(files, modules) if not is_plan_path(path)}
        if named or files:
            followed.append(_follow(commits, index, change.path, named, files))
    return [_artifact(repo, commits, plan, followed) for plan in followed]


def _clean(token: str) -> str:
    return token.removeprefix("./").rstrip(".")


def _names_a_file(token: str) -> bool:
    """Whether `token` reads as a file path: a name with a known extension, not a URL's tail."""
    pure = PurePosixPath(token)
    return (
        not token.startswith("//")
        and bool(pure.stem)
        and pure.suffix.lower().lstrip(".") in FILE_EXTENSIONS
    )


class _PathIndex:
    """Paths the history holds, looked up by the ways a plan names files."""

    def __init__(self, paths: set[str]) -> None:
        self.paths = paths
        self.by_name: dict[str, set[str]] = defaultdict(set)
        for path in paths:
            self.by_name[PurePosixPath(path).name].add(path)

    def match(self, files: list[str], modules: list[str]) -> set[str]:
        """The paths that file tokens and dotted module names (`a.b` → `a/b.py`) name."""
        found: set[str] = set()
        for token in files:
            found |= self._match_path(token)
        for module in modules:
            stem = module.replace(".", "/")
            found |= self._match_path(f"{stem}.py") | self._match_path(f"{stem}/__init__.py")
        return found

    def _match_path(self, token: str) -> set[str]:
        if token in self.paths:
            return {token}
        same_name = self.by_name.get(PurePosixPath(token).name, set())
        if "/" in token:
            return {path for path in same_name if path.endswith(f"/{token}")}
        return set(same_name) if len(same_name) == 1 else set()


def _follow(
    commits: list[Commit], index: int, path: str, named: set[str], files: list[str]
) -> Followed:
    plan = Followed(path=path, index=index, named=named, files=files)
    origin = commits[index]
    if origin.touched(named):
        plan.implemented.append(origin)
        plan.implemented_lines += origin.lines_on(named)
    current = path
    plan_only_edits: list[Commit] = []
    for later_index in range(index + 1, len(commits)):
        commit = commits[later_index]
        if commit.time > origin.time + WINDOW_S:
            break
        on_plan = _plan_change(commit, current)
        touched = commit.touched(named)
        if REVERT.search(commit.subject) and (touched or on_plan):
            plan.reverts.append(commit)
            continue
        if on_plan is not None:
            if on_plan.status == "D":
                plan.deleted_in = later_index
            elif on_plan.status != "R100" and not touched:
                plan_only_edits.append(commit)
            current = on_plan.path
        if not touched:
            continue
        plan.revisions += plan_only_edits
        plan_only_edits = []
        lines = commit.lines_on(named)
        if plan.implemented and FIX.search(commit.subject):
            plan.fixes.append(commit)
            plan.fix_lines += lines
        elif plan.implemented and REWRITE.search(commit.subject):
            plan.rewrites.append(commit)
        else:
            plan.implemented.append(commit)
            plan.implemented_lines += lines
    return plan


def _plan_change(commit: Commit, path: str) -> Change | None:
    """How `commit` changed the plan at `path` (a rename keeps following it), or None."""
    if path in commit.changes and commit.changes[path].status != "A":
        return commit.changes[path]
    for change in commit.changes.values():
        if change.old_path == path and change.status.startswith("R"):
            return change
    return None


def _artifact(
    repo: Path, commits: list[Commit], plan: Followed, everything: list[Followed]
) -> PlanArtifact:
    label, reason = _label(commits, plan, everything)
    replacement = _replacement(plan, everything) if label == "bad" else None
    try:
        plan.path.encode("utf-8")
        return PlanArtifact(
            path=plan.path,
            added_in=commits[plan.index].sha,
            label=label,
            reason=reason,
            replaced_by=None
            if replacement is None
            else PlanRef(path=replacement.path, added_in=commits[replacement.index].sha),
        )
    except UnicodeEncodeError as exc:
        raise PlanArtifactError(
            f"{repo}: plan file name {plan.path!r} is not UTF-8; rename it to package the repo"
        ) from exc
    except ValidationError as exc:
        raise PlanArtifactError(validation_lines(f"{repo}: plan {plan.path!r}", exc)) from exc


def _label(
    commits: list[Commit], plan: Followed, everything: list[Followed]
) -> tuple[PlanLabel, str]:
    window = f"within {WINDOW_DAYS} days"
    if plan.reverts:
        return "bad", f"reverted in {_shas(plan.reverts)}"
    if replacement := _replacement(plan, everything):
        return "bad", f"replaced by {replacement.path} ({_shas([commits[replacement.index]])})"
    if not plan.named:
        names = ", ".join(name[:80] for name in plan.files[:5])
        return "bad", f"abandoned: none of the files it names ({names}) was ever committed"
    if not plan.implemented:
        files = _count(len(plan.named), "file")
        return "bad", f"abandoned: no commit touched the {files} it names {window}"
    implemented = (
        f"implemented in {_count(len(plan.implemented), 'commit')} "
        f"({_count(plan.implemented_lines, 'line')}: {_shas(plan.implemented)})"
    )
    if plan.rewrites:
        return "bad", f"{implemented}, then rewritten in {_shas(plan.rewrites)} {window}"
    fixes = (
        f"{_count(len(plan.fixes), 'fix')} ({_count(plan.fix_lines, 'line')}: {_shas(plan.fixes)})"
    )
    heavy = plan.fix_lines > MAX_FIX_SHARE * plan.implemented_lines
    if len(plan.fixes) > MAX_SMALL_FIXES or (plan.fixes and heavy):
        return "bad", f"heavy rework: {implemented}, then {fixes} {window}"
    if plan.revisions or plan.fixes:
        parts = [f"plan revised in {_shas(plan.revisions)}"] if plan.revisions else []
        parts.append(implemented)
        if plan.fixes:
            parts.append(f"then {fixes} {window}")
        return "fine", ", ".join(parts)
    return "good", f"{implemented}, no revision or fix {window}"


def _replacement(plan: Followed, everything: list[Followed]) -> Followed | None:
    if plan.deleted_in is None:
        return None
    for other in everything:
        if plan.index < other.index <= plan.deleted_in and other.named & plan.named:
            return other
    return None


def _shas(commits: list[Commit]) -> str:
    shown = ", ".join(commit.sha[:7] for commit in commits[:3])
    return f"{shown}, …" if len(commits) > 3 else shown


def _count(number: int, noun: str) -> str:
    if number == 1:
        return f"1 {noun}"
    return f"{number} {noun}{'es' if noun.endswith('x') else 's'}"


def read_history(repo: Path, head: str) -> list[Commit]:
    """Every non-merge commit up to `head`, oldest first, with its changed files and lines."""
    out = repo_git(
        repo,
        "log",
        "--no-merges",
        "--topo-order",
        "--reverse",
        "--no-show-signature",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "-M",
        "--raw",
        "--numstat",
        "--no-abbrev",
        "-z",
        LOG_FORMAT,
        head,
    ).stdout
    return list(_parse_log(repo, out.decode("utf-8", "surrogateescape")))


def _parse_log(repo: Path, text: str) -> Iterator[Commit]:
    tokens = text.split("\0")
    commit: Commit | None = None
    lines: dict[str, int] = {}
    pos = 0
    while pos < len(tokens):
        token = tokens[pos].lstrip("\n")
        pos += 1
        if not token:
            continue
        if token.startswith(COMMIT_MARK):
            if commit is not None:
                yield _with_lines(commit, lines)
            sha, time, subject = token[1:].split(" ", 2)
            commit, lines = Commit(sha=sha, time=int(time), subject=subject), {}
        elif commit is None:
            raise PlanArtifactError(f"{repo}: git log printed {token[:40]!r} before any commit")
        elif token.startswith(":"):
            status, blob = token.split(" ")[-1], token.split(" ")[3]
            if status[0] in "RC":
                old_path, path = tokens[pos], tokens[pos + 1]
                pos += 2
            else:
                old_path, path = None, tokens[pos]
                pos += 1
            commit.changes[path] = Change(status=status, path=path, old_path=old_path, blob=blob)
        else:
            added, deleted, path = token.split("\t", 2)
            if not path:
                path = tokens[pos + 1]
                pos += 2
            lines[path] = _numstat(added) + _numstat(deleted)
    if commit is not None:
        yield _with_lines(commit, lines)


def _numstat(count: str) -> int:
    return 0 if count == "-" else int(count)


def _with_lines(commit: Commit, lines: dict[str, int]) -> Commit:
    commit.changes = {
        path: replace(change, lines=lines.get(path, 0)) for path, change in commit.changes.items()
    }
    return commit
