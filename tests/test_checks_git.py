"""The git checks on real repositories: fsck, nothing that runs code, the manifest's commits."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.core.config import ValidationConfig
from engine.demo.hostile import HostileCase, commit_files, edit_manifest
from engine.demo.hostile.git_files import CASES
from engine.demo.repo import git_env
from engine.intake.checks.content import scan_content
from engine.intake.checks.context import PackageContext
from engine.intake.checks.files import check_file_policy
from engine.intake.checks.git import check_commits, check_git_fsck, check_git_safety
from engine.intake.checks.manifest_check import check_manifest
from engine.intake.validation_report import CheckResult

GIT_CASES = [case for case in CASES if case.check in ("git-fsck", "git-safety", "commits")]
CHECKS = (check_manifest, check_file_policy, check_git_fsck, check_git_safety, check_commits)


def _context(package: Path, tmp_path: Path) -> PackageContext:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return PackageContext(root=package, config=ValidationConfig(), scratch=scratch)


def _run_all(package: Path, tmp_path: Path) -> list[CheckResult]:
    ctx = _context(package, tmp_path)
    return [result for check in CHECKS for result in check(ctx)]


def _refusals(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.ok and not r.skipped]


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        env=git_env("2024-04-01T00:00:00+00:00"),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _safety(package: Path, tmp_path: Path) -> list[tuple[str | None, str]]:
    results = check_git_safety(_context(package, tmp_path))
    return [(r.path, r.detail) for r in results if not r.ok]


def _tree_state(root: Path) -> dict[str, tuple]:
    """Every path under `root` with its mode, size, mtime and content hash (links: target)."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            if path.is_symlink():
                content = str(path.readlink())
            elif path.is_file():
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = None
            key = os.fsencode(path.relative_to(root)).hex()
            state[key] = (info.st_mode, info.st_size, info.st_mtime_ns, content)
    return state


def test_valid_package_passes(valid_package: Path, tmp_path: Path):
    results = _run_all(valid_package, tmp_path)
    assert all(r.ok for r in results), results
    assert {r.name for r in results} == {
        "manifest",
        "file-policy",
        "git-fsck",
        "git-safety",
        "commits",
    }


@pytest.mark.parametrize("case", GIT_CASES, ids=lambda case: case.name)
def test_hostile_case_is_refused_by_its_check(
    case: HostileCase, valid_package: Path, tmp_path: Path
):
    case.mutate(valid_package)
    refusals = _refusals(_run_all(valid_package, tmp_path))
    assert {r.name for r in refusals} == {case.check}, refusals
    assert any(case.expect in r.detail and r.path == case.path for r in refusals), refusals


def test_checks_leave_the_drive_untouched(valid_package: Path, tmp_path: Path):
    chosen = [c for c in CASES if c.name in ("git-hook", "flag-prompt-injection")]
    assert len(chosen) == 2
    for case in chosen:
        case.mutate(valid_package)
    before = _tree_state(valid_package)
    ctx = _context(valid_package, tmp_path)
    for check in CHECKS:
        check(ctx)
    assert scan_content(ctx)
    assert _tree_state(valid_package) == before


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("core.editor", "vi"),
        ("core.pager", "less"),
        ("core.askPass", "/tmp/ask"),
        ("core.gitProxy", "/tmp/proxy"),
        ("core.alternateRefsCommand", "/tmp/refs"),
        ("core.worktree", "/etc"),
        ("core.attributesFile", "/tmp/attributes"),
        ("diff.pdf.textconv", "pdftotext"),
        ("diff.pdf.command", "/tmp/diff"),
        ("merge.ours.driver", "true"),
        ("mergetool.meld.cmd", "meld"),
        ("interactive.diffFilter", "/tmp/filter"),
        ("sequence.editor", "/tmp/editor"),
        ("pager.log", "/tmp/pager"),
        ("alias.st", "!sh -c 'touch /tmp/x'"),
        ("credential.helper", "/tmp/helper"),
        ("gpg.program", "/tmp/gpg"),
        ("gpg.ssh.program", "/tmp/ssh-keygen"),
        ("log.showSignature", "true"),
        ("trailer.sign.command", "/tmp/sign"),
        ("tar.tgz.command", "/tmp/gzip"),
        ("uploadpack.packObjectsHook", "/tmp/hook"),
        ("receive.procReceiveRefs", "refs/for"),
        ("url.https://example.invalid/.insteadOf", "https://github.com/"),
        ("protocol.ext.allow", "always"),
        ("remote.origin.uploadpack", "/tmp/upload"),
        ("remote.origin.vcs", "evil"),
        ("remote.origin.promisor", "true"),
        ("extensions.partialClone", "origin"),
        ("submodule.recurse", "true"),
        ("fsck.hasDotdot", "ignore"),
        ("includeIf.gitdir:/srv/.path", "/tmp/extra"),
        ("hook.pre-commit.command", "/tmp/hook"),
        ("lfs.standalonetransferagent", "evil"),
    ],
)
def test_denied_config_key(key: str, value: str, valid_package: Path, tmp_path: Path):
    _git(valid_package / "repo", "config", "--file", ".git/config", key, value)
    failures = _safety(valid_package, tmp_path)
    refused = [
        d for path, d in failures if path == "repo/.git/config" and not d.startswith("not run")
    ]
    section, _, rest = key.partition(".")
    subsection, _, variable = rest.rpartition(".")
    printed = ".".join(p for p in (section.lower(), subsection, variable.lower()) if p)
    assert len(refused) == 1, failures
    assert refused[0].startswith(f"{printed} "), refused


def test_ordinary_clone_config_is_allowed(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    for key, value in [
        ("remote.origin.url", "https://example.invalid/textkit.git"),
        ("remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"),
        ("branch.main.remote", "origin"),
        ("branch.main.merge", "refs/heads/main"),
        ("core.ignorecase", "false"),
        ("user.name", "Someone"),
    ]:
        _git(repo, "config", "--file", ".git/config", key, value)
    assert _safety(valid_package, tmp_path) == []


def test_builtin_attributes_allowed_drivers_refused(valid_package: Path, tmp_path: Path):
    commit_files(valid_package, {".gitattributes": "* text=auto\n*.py diff=python\n*.png -diff\n"})
    (valid_package / "repo" / ".git" / "info").mkdir()
    info = valid_package / "repo" / ".git" / "info" / "attributes"
    info.write_text("# local\n*.png diff=exif\n*.lock merge=union\n")
    assert _safety(valid_package, tmp_path) == [
        (
            "repo/.git/info/attributes",
            "line 2: diff='exif' names a diff driver, which runs a command once configured; "
            "a corpus repo must name no drivers",
        )
    ]


def test_sample_hooks_allowed(valid_package: Path, tmp_path: Path):
    hooks = valid_package / "repo" / ".git" / "hooks"
    hooks.mkdir()
    (hooks / "pre-commit.sample").write_text("#!/bin/sh\nexit 0\n")
    assert _safety(valid_package, tmp_path) == []


def test_gitlink_at_head_is_refused(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    head = _git(repo, "rev-parse", "HEAD")
    _git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor")
    _git(repo, "commit", "--quiet", "--no-verify", "-m", "Vendor a submodule")
    assert _safety(valid_package, tmp_path) == [
        ("repo/vendor", f"gitlink to commit {head}: a corpus repo must hold no submodules")
    ]


def test_bare_repository_is_refused(valid_package: Path, tmp_path: Path):
    _git(valid_package / "repo", "config", "--file", ".git/config", "core.bare", "true")
    results = check_git_fsck(_context(valid_package, tmp_path))
    assert [(r.ok, r.path) for r in results] == [(False, "repo/.git/config")]
    assert "core.bare" in results[0].detail


def test_empty_repository_has_no_head(valid_package: Path, tmp_path: Path):
    repo = valid_package / "repo"
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    results = check_git_fsck(_context(valid_package, tmp_path))
    assert ("repo/.git/HEAD", "HEAD does not resolve to a commit") in [
        (r.path, r.detail) for r in results
    ]


def test_missing_repo_is_reported_once(valid_package: Path, tmp_path: Path):
    shutil.rmtree(valid_package / "repo")
    ctx = _context(valid_package, tmp_path)
    fsck, safety = check_git_fsck(ctx), check_git_safety(ctx)
    assert [(r.path, r.detail) for r in fsck] == [
        ("repo", "repo/ is missing: a package carries its git clone there")
    ]
    assert [r.detail.startswith("not run:") for r in safety] == [True]


def test_fifo_inside_git_folder_stops_git_before_it_blocks(valid_package: Path, tmp_path: Path):
    os.mkfifo(valid_package / "repo" / ".git" / "packed-refs")
    ctx = _context(valid_package, tmp_path)
    check_manifest(ctx)
    results = check_git_fsck(ctx) + check_commits(ctx)
    assert [(r.name, r.path) for r in results] == [
        ("git-fsck", "repo/.git"),
        ("commits", "repo/.git"),
    ]
    assert "repo/.git/packed-refs is a special file" in results[0].detail
    assert results[1].detail.startswith("not run:")
    assert [f.kind for f in scan_content(ctx)] == ["not-scanned"]


def test_manifest_commit_that_is_not_a_commit(valid_package: Path, tmp_path: Path):
    tree = _git(valid_package / "repo", "rev-parse", "HEAD^{tree}")
    edit_manifest(valid_package, lambda data: data["commits"][0].update(sha=tree))
    refusals = _refusals(_run_all(valid_package, tmp_path))
    assert [(r.name, r.detail) for r in refusals] == [
        ("commits", f"{tree} is a tree in repo/, not a commit")
    ]
