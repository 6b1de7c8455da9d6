"""Checks on repo/: a sound git repository (fsck), nothing in it that runs code when git runs,
and every manifest commit present with the parent the manifest gives.

Every git call names the git folder itself (`--git-dir`), so a broken repo/.git never lets git
wander up to a repository around the package. Git is not run at all on a git folder that holds
links, special files or config includes: git would follow them, and a FIFO blocks it for good.
"""

import fnmatch
import os
import posixpath
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.intake.checks.context import PackageContext, failed, not_run, passed
from engine.intake.manifest import MANIFEST_FILE
from engine.intake.validation_report import CheckResult
from engine.isolation.gitsafe import GitError, run_git

FSCK = "git-fsck"
SAFETY = "git-safety"
COMMITS = "commits"
GIT_TIMEOUT_S = 600.0
MAX_LISTED = 100

RUNS_A_COMMAND = (
    *("core.fsmonitor", "core.sshcommand", "core.editor", "core.pager", "core.askpass"),
    *("core.gitproxy", "core.alternaterefscommand", "diff.external", "diff.*.textconv"),
    *("diff.*.command", "filter.*", "merge.*.driver", "mergetool.*", "difftool.*", "diff.tool"),
    *("merge.tool", "interactive.difffilter", "sequence.editor", "pager.*", "alias.*"),
    *("credential.*", "gpg.*", "hook.*", "lfs.*", "trailer.*.command", "trailer.*.cmd"),
    *("tar.*.command", "sendemail.*", "imap.tunnel", "web.browser", "browser.*", "man.*"),
    *("guitool.*", "instaweb.*", "uploadpack.*", "receive.*", "remote.*.uploadpack"),
    *("remote.*.receivepack", "remote.*.vcs"),
)
FETCHES = "lets git fetch from outside the package"
DENIED_CONFIG = (
    *((pattern, "runs a command when git runs") for pattern in RUNS_A_COMMAND),
    ("core.hookspath", "runs hooks from a folder of its choosing"),
    ("core.worktree", "moves the work tree outside repo/"),
    ("core.attributesfile", "reads attributes, which name drivers, from outside the package"),
    ("log.showsignature", "makes every log run gpg"),
    ("include.*", "makes git read config from another file"),
    ("includeif.*", "makes git read config from another file"),
    ("extensions.worktreeconfig", "makes git read config besides .git/config"),
    ("url.*", "rewrites the addresses git fetches from"),
    ("protocol.*", "enables git transports that run commands"),
    ("remote.*.promisor", FETCHES),
    ("extensions.partialclone", FETCHES),
    ("submodule.*", FETCHES),
    ("fsck.*", "hides problems from git fsck"),
)
FOREIGN_PATHS = (
    ("commondir", "points git at another repository's folder"),
    ("objects/info/alternates", "borrows objects from outside the package"),
    ("objects/info/http-alternates", "borrows objects from a server"),
    ("info/grafts", "rewrites commit parents"),
    ("config.worktree", "adds config besides .git/config"),
    ("worktrees", "links work trees outside the package"),
    ("modules", "holds submodule repositories with their own config and hooks"),
)
DRIVER_ATTRIBUTE = re.compile(rb"(?:^|\s)(filter|diff|merge)=(\S+)")
BUILTIN_DIFF = frozenset(
    {
        "ada",
        "bash",
        "bibtex",
        "cpp",
        "csharp",
        "css",
        "dts",
        "elixir",
        "fortran",
        "fountain",
        "golang",
        "html",
        "java",
        "kotlin",
        "markdown",
        "matlab",
        "objc",
        "pascal",
        "perl",
        "php",
        "python",
        "ruby",
        "rust",
        "scheme",
        "tex",
    }
)
BUILTIN_MERGE = frozenset({"text", "binary", "union"})


@dataclass(frozen=True)
class TreeEntry:
    """One entry of `git ls-tree -r -l` (size is None for gitlinks)."""

    mode: str
    kind: str
    sha: str
    size: int | None
    path: bytes

    @property
    def shown(self) -> str:
        """The path as reports name it: under repo/, bad UTF-8 and control characters escaped."""
        return "repo/" + _printable(self.path.decode("utf-8", "backslashreplace"))


def run_repo_git(
    ctx: PackageContext, *args: str, input_bytes: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run git on repo/.git, never on a repository git finds by itself."""
    git_dir = f"--git-dir={ctx.repo / '.git'}"
    return run_git(
        ctx.repo, git_dir, *args, input_bytes=input_bytes, check=check, timeout=GIT_TIMEOUT_S
    )


def read_config_file(ctx: PackageContext, path: Path) -> list[tuple[str, str]]:
    """(key, value) pairs of one config file, includes not followed; keys as git prints them."""
    out = run_git(ctx.scratch, "config", "--file", str(path), "--list", "--null").stdout
    return _config_pairs(out)


@dataclass(frozen=True)
class Blocker:
    """Why git must not be run on repo/, and which check reports it as its own rule."""

    owner: str
    detail: str
    path: str

    def not_run(self, name: str) -> CheckResult:
        """What a check that needed git says; the owner reports the rule itself."""
        if name == self.owner:
            return failed(name, self.detail, self.path)
        return not_run(name, f"{self.detail} (see {self.owner})", self.path)


def git_blocker(ctx: PackageContext) -> Blocker | None:
    """Why git must not be run on repo/, or None when it may."""
    git_dir = ctx.repo / ".git"
    if not os.path.lexists(ctx.repo):
        return Blocker(FSCK, "repo/ is missing: a package carries its git clone there", "repo")
    if ctx.repo.is_symlink() or not ctx.repo.is_dir():
        return Blocker(FSCK, "repo/ must be a folder holding a git clone", "repo")
    if git_dir.is_symlink():
        detail = "repo/.git is a link: the git folder must be repo/.git itself"
        return Blocker(FSCK, detail, "repo/.git")
    if git_dir.is_file():
        detail = "repo/.git is a file (gitdir: indirection): the git folder must be repo/.git"
        return Blocker(FSCK, detail, "repo/.git")
    if not git_dir.is_dir():
        return Blocker(FSCK, "repo/ is not a git repository: repo/.git is missing", "repo/.git")
    if odd := _first_odd_entry(git_dir):
        return Blocker(FSCK, f"{odd}: git would follow it, so git is not run", "repo/.git")
    config = git_dir / "config"
    if not config.exists():
        return None
    try:
        keys = [key.lower() for key, _ in read_config_file(ctx, config)]
    except GitError as exc:
        detail = f"repo/.git/config cannot be parsed: {_last_line(exc)}"
        return Blocker(SAFETY, detail, "repo/.git/config")
    if any(key.startswith(("include.", "includeif.")) for key in keys):
        detail = "repo/.git/config includes other config files, which git would read"
        return Blocker(SAFETY, detail, "repo/.git/config")
    return None


def head_commit(ctx: PackageContext) -> str | None:
    result = run_repo_git(ctx, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def head_tree(ctx: PackageContext) -> list[TreeEntry]:
    """Every entry of HEAD's tree, recursively, with blob sizes."""
    out = run_repo_git(ctx, "ls-tree", "-r", "-l", "-z", "--full-tree", "HEAD").stdout
    entries = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, sha, size = meta.decode("ascii").split()
        entries.append(TreeEntry(mode, kind, sha, None if size == "-" else int(size), path))
    return entries


def cat_objects(ctx: PackageContext, names: list[str]) -> dict[str, tuple[str, bytes] | None]:
    """Type and content of each object named, None for a missing one: one git process for all."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return {}
    request = "".join(f"{name}\n" for name in unique).encode("ascii")
    out = run_repo_git(ctx, "cat-file", "--batch", input_bytes=request).stdout
    found: dict[str, tuple[str, bytes] | None] = {}
    pos = 0
    for name in unique:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3:
            found[name], pos = None, end + 1
            continue
        start = end + 1
        size = int(header[2])
        found[name] = (header[1].decode("ascii"), out[start : start + size])
        pos = start + size + 1
    return found


def check_git_fsck(ctx: PackageContext) -> list[CheckResult]:
    if blocker := git_blocker(ctx):
        return [blocker.not_run(FSCK)]
    try:
        bare = run_repo_git(ctx, "rev-parse", "--is-bare-repository").stdout.strip()
        fsck = run_repo_git(
            ctx,
            *("-c", "fsck.skipList=/dev/null"),
            *("fsck", "--full", "--strict", "--no-progress", "--no-dangling"),
            check=False,
        )
        head = head_commit(ctx)
    except GitError as exc:
        return [failed(FSCK, git_failure(ctx, exc), "repo")]
    results = []
    if bare == b"true":
        detail = "repo/.git/config says core.bare: repo/ must be a clone with a work tree"
        results.append(failed(FSCK, detail, "repo/.git/config"))
    if fsck.returncode != 0:
        output = (fsck.stderr + fsck.stdout).decode("utf-8", "replace")
        lines = output.replace(f"{ctx.root}/", "").splitlines()
        more = f" (+{len(lines) - 5} more lines)" if len(lines) > 5 else ""
        detail = f"git fsck --full --strict found problems: {'; '.join(lines[:5])}{more}"
        results.append(failed(FSCK, detail, "repo/.git"))
    if head is None:
        results.append(failed(FSCK, "HEAD does not resolve to a commit", "repo/.git/HEAD"))
    return results or [passed(FSCK, f"git fsck --full --strict is clean; HEAD is {head}")]


def check_git_safety(ctx: PackageContext) -> list[CheckResult]:
    git_dir = ctx.repo / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        detail = "repo/.git is not a folder, so there is no git config or hook to inspect"
        return [not_run(SAFETY, detail, "repo/.git")]
    problems = [
        *_config_problems(ctx, git_dir / "config"),
        *_hook_problems(git_dir / "hooks"),
        *(
            (f"repo/.git/{rel}", why)
            for rel, why in FOREIGN_PATHS
            if os.path.lexists(git_dir / rel)
        ),
        *_file_attribute_problems(git_dir / "info" / "attributes", "repo/.git/info/attributes"),
        *_worktree_gitmodules_problems(ctx),
        *_head_problems(ctx),
    ]
    if not problems:
        detail = "no hooks, command-running config, drivers, submodules or borrowed objects"
        return [passed(SAFETY, detail)]
    return [failed(SAFETY, detail, path) for path, detail in dict.fromkeys(problems)]


def check_commits(ctx: PackageContext) -> list[CheckResult]:
    manifest = ctx.manifest
    if manifest is None:
        return [not_run(COMMITS, "the manifest could not be read", MANIFEST_FILE)]
    if blocker := git_blocker(ctx):
        return [blocker.not_run(COMMITS)]
    names = [sha for c in manifest.commits for sha in (c.sha, c.parent)]
    try:
        objects = cat_objects(ctx, names)
        head = head_commit(ctx)
    except GitError as exc:
        return [failed(COMMITS, git_failure(ctx, exc), "repo")]
    problems = []
    for commit in manifest.commits:
        found = objects[commit.sha]
        if found is None:
            problems.append(f"commit {commit.sha} is not in repo/")
        elif found[0] != "commit":
            problems.append(f"{commit.sha} is a {found[0]} in repo/, not a commit")
        elif (parent := _first_parent(found[1])) != commit.parent:
            actual = f"first parent is {parent}" if parent else "has no parent"
            problems.append(f"commit {commit.sha} {actual}; the manifest says {commit.parent}")
        elif objects[commit.parent] is None:
            problems.append(f"parent {commit.parent} of commit {commit.sha} is not in repo/")
    if head != manifest.head:
        problems.append(f"head {manifest.head} is not repo/'s HEAD ({head or 'unresolved'})")
    if not problems:
        detail = f"{len(manifest.commits)} commits present with their parents; HEAD matches"
        return [passed(COMMITS, detail)]
    results = [failed(COMMITS, detail, MANIFEST_FILE) for detail in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        more = f"{len(problems) - MAX_LISTED} more commit problems (not listed)"
        results.append(failed(COMMITS, more, MANIFEST_FILE))
    return results


def _config_pairs(out: bytes) -> list[tuple[str, str]]:
    pairs = []
    for item in out.split(b"\0"):
        if item:
            key, _, value = item.decode("utf-8", "replace").partition("\n")
            pairs.append((key, value))
    return pairs


def _denied(key: str) -> str | None:
    lowered = key.lower()
    for pattern, why in DENIED_CONFIG:
        if fnmatch.fnmatchcase(lowered, pattern):
            return why
    return None


def _config_problems(ctx: PackageContext, path: Path) -> Iterator[tuple[str, str]]:
    if not os.path.lexists(path):
        return
    shown = ctx.rel(path)
    if path.is_symlink() or not path.is_file():
        yield shown, "must be a regular file"
        return
    try:
        pairs = read_config_file(ctx, path)
    except GitError as exc:
        yield shown, f"cannot be parsed: {_last_line(exc)}"
        return
    for key, value in pairs:
        if why := _denied(key):
            yield shown, f"{key} {why} (value {_short(value)})"


def _hook_problems(hooks: Path) -> Iterator[tuple[str, str]]:
    if not os.path.lexists(hooks):
        return
    if hooks.is_symlink() or not hooks.is_dir():
        yield "repo/.git/hooks", "must be a plain folder"
        return
    for entry in sorted(hooks.iterdir()):
        if entry.name.endswith(".sample") and entry.is_file() and not entry.is_symlink():
            continue
        yield _rel_name(hooks.parent, entry), "git hook: hooks run commands when git runs"


def _file_attribute_problems(path: Path, shown: str) -> Iterator[tuple[str, str]]:
    if path.is_file() and not path.is_symlink():
        yield from ((shown, detail) for detail in _attribute_rules(path.read_bytes()))


def _attribute_rules(text: bytes) -> Iterator[str]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(b"#"):
            continue
        for match in DRIVER_ATTRIBUTE.finditer(line):
            attr, value = match.group(1).decode(), match.group(2).decode("utf-8", "replace")
            if value in (BUILTIN_DIFF if attr == "diff" else BUILTIN_MERGE):
                continue
            yield (
                f"line {number}: {attr}={_short(value)} names a {attr} driver, which runs a "
                "command once configured; a corpus repo must name no drivers"
            )


def _worktree_gitmodules_problems(ctx: PackageContext) -> Iterator[tuple[str, str]]:
    path = ctx.repo / ".gitmodules"
    if not path.is_file() or path.is_symlink():
        return
    try:
        pairs = read_config_file(ctx, path)
    except GitError as exc:
        yield "repo/.gitmodules", f"cannot be parsed: {_last_line(exc)}"
        return
    yield from (("repo/.gitmodules", detail) for detail in _submodule_rules(pairs))


def _submodule_rules(pairs: list[tuple[str, str]]) -> Iterator[str]:
    for key, value in pairs:
        if key.lower().endswith((".url", ".update")):
            yield f"{key} = {_short(value)}: submodules fetch code from outside the package"


def _head_problems(ctx: PackageContext) -> Iterator[tuple[str, str]]:
    """Drivers named in .gitattributes files, and submodules declared or linked, at HEAD."""
    if blocker := git_blocker(ctx):
        yield blocker.path, f"not run: HEAD's .gitattributes and .gitmodules: {blocker.detail}"
        return
    try:
        if head_commit(ctx) is None:
            return
        entries = head_tree(ctx)
        readable = [e for e in entries if e.kind == "blob" and not e.mode.startswith("120")]
        attributes = [e for e in readable if e.path.rsplit(b"/", 1)[-1] == b".gitattributes"]
        blobs = cat_objects(ctx, [e.sha for e in attributes])
        modules = [e for e in readable if e.path == b".gitmodules"]
        module_pairs = [(e, _config_pairs(_blob_config(ctx, e.sha))) for e in modules]
        links = [e for e in entries if e.kind == "blob" and e.mode.startswith("120")]
        targets = cat_objects(ctx, [e.sha for e in links])
    except GitError as exc:
        yield "repo", f"HEAD could not be inspected: {git_failure(ctx, exc)}"
        return
    for entry in attributes:
        if (found := blobs[entry.sha]) is None:
            yield entry.shown, f"blob {entry.sha} is missing, so it cannot be inspected"
        else:
            yield from ((entry.shown, detail) for detail in _attribute_rules(found[1]))
    for entry, pairs in module_pairs:
        yield from ((entry.shown, detail) for detail in _submodule_rules(pairs))
    for entry in links:
        if (found := targets[entry.sha]) is None:
            yield entry.shown, f"blob {entry.sha} is missing, so it cannot be inspected"
        elif _link_leaves_repo(entry.path, found[1]):
            target = _short(_printable(found[1].decode("utf-8", "backslashreplace")))
            detail = f"symlink at HEAD points outside the repository ({target})"
            yield entry.shown, detail + ": every checkout would follow it out"
    for entry in entries:
        if entry.kind == "commit":
            detail = f"gitlink to commit {entry.sha}: a corpus repo must hold no submodules"
            yield entry.shown, detail


def _link_leaves_repo(path: bytes, target: bytes) -> bool:
    """Whether a symlink committed at `path` with `target` resolves outside the repository."""
    if target.startswith(b"/"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined == b".." or joined.startswith(b"../")


def _blob_config(ctx: PackageContext, sha: str) -> bytes:
    return run_repo_git(ctx, "config", "--blob", sha, "--list", "--null").stdout


def _first_odd_entry(git_dir: Path) -> str | None:
    """The first link, special file or unreadable folder under `git_dir`, described, or None."""
    pending = [git_dir]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as exc:
            return f"{_rel_name(git_dir, folder)} cannot be read ({exc.strerror})"
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif not entry.is_file(follow_symlinks=False):
                kind = "a link" if entry.is_symlink() else "a special file"
                return f"{_rel_name(git_dir, Path(entry.path))} is {kind}"
    return None


def _rel_name(git_dir: Path, path: Path) -> str:
    rel = path.relative_to(git_dir.parent.parent).as_posix()
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _first_parent(commit: bytes) -> str | None:
    for line in commit.split(b"\n"):
        if not line:
            return None
        if line.startswith(b"parent "):
            return line[7:].decode("ascii")
    return None


def _last_line(exc: GitError) -> str:
    return str(exc).strip().splitlines()[-1]


def git_failure(ctx: PackageContext, exc: GitError) -> str:
    """A failed git call as reports show it: paths relative to the package."""
    return str(exc).replace(f"{ctx.root}/", "").strip()


def _short(value: str, limit: int = 80) -> str:
    text = _printable(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
