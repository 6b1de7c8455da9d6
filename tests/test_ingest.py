"""Approval into the corpus, rejection, and reading the corpus back (engine/intake/approval.py)."""

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import engine.intake.validate
from engine.core.errors import IngestError
from engine.core.workspace import Workspace
from engine.demo.hostile import edit_manifest
from engine.demo.repo import git_env
from engine.intake.approval import (
    PATH_DIGEST_PREFIX,
    PackageNotValid,
    approve_package,
    corpus_files,
    decision_history,
    list_corpus,
    reject_package,
)
from engine.intake.corpus import STAGING_DIR, folder_name
from engine.intake.label import package_label
from engine.intake.manifest import MANIFEST_FILE, read_manifest
from engine.intake.repo_rebuild import rebuild_repo
from engine.intake.validate import validate_package
from engine.isolation.gitsafe import run_git
from engine.mining import describe_commit


def drive_state(root: Path) -> dict[str, tuple]:
    """Mode, mtime, size and content hash of every entry under `root`, `.git/` included."""
    state = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        content = None
        if stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            content = str(path.readlink())
        state[path.relative_to(root).as_posix()] = (st.st_mode, st.st_mtime_ns, st.st_size, content)
    return state


def corpus_folders(ws: Workspace) -> list[str]:
    return sorted(p.name for p in ws.corpus_dir.iterdir() if not p.name.startswith("."))


def manifest_digest(package: Path) -> str:
    return hashlib.sha256((package / MANIFEST_FILE).read_bytes()).hexdigest()


def git_out(repo: Path, *args: str) -> str:
    return run_git(repo, *args).stdout.decode().strip()


def test_approve_places_the_package_and_records_it(workspace: Workspace, valid_package: Path):
    manifest = read_manifest(valid_package, 1 << 22)
    digest = manifest_digest(valid_package)

    result = approve_package(workspace, valid_package)

    assert not result.already_approved
    assert result.digest == digest
    assert result.corpus_path == workspace.corpus_dir / folder_name("textkit", digest)
    assert result.report is not None and result.report.ok
    folder = result.corpus_path
    assert (folder / MANIFEST_FILE).read_bytes() == (valid_package / MANIFEST_FILE).read_bytes()
    assert sorted(p.name for p in (folder / "packages").iterdir()) == sorted(
        w.filename for w in manifest.wheels
    )
    [entry] = list_corpus(workspace)
    assert (entry.name, entry.digest, entry.present) == ("textkit", digest, True)
    assert (entry.commit_count, entry.wheel_count) == (len(manifest.commits), len(manifest.wheels))
    assert entry.approved_by == workspace.config.operator
    assert entry.approved_at.utcoffset() is not None and entry.approved_at.utcoffset().seconds == 0
    assert entry.corpus_path == folder
    assert entry.source_path == str(valid_package)
    [decision] = decision_history(workspace)
    assert (decision.decision, decision.digest, decision.name) == ("approved", digest, "textkit")
    assert decision.report is not None and decision.report.ok
    assert list((workspace.corpus_dir / STAGING_DIR).iterdir()) == []


def test_operator_argument_overrides_the_config(workspace: Workspace, valid_package: Path):
    approve_package(workspace, valid_package, operator="night-shift")
    assert list_corpus(workspace)[0].approved_by == "night-shift"
    assert decision_history(workspace)[0].operator == "night-shift"


def test_every_corpus_file_is_recorded_with_its_hash(workspace: Workspace, valid_package: Path):
    result = approve_package(workspace, valid_package)
    files = corpus_files(workspace, result.digest)
    folder = result.corpus_path

    tracked = git_out(folder / "repo", "ls-files").splitlines()
    wheels = sorted(p.name for p in (folder / "packages").iterdir())
    assert sorted(f.path for f in files) == sorted(
        [MANIFEST_FILE, *(f"packages/{w}" for w in wheels), *(f"repo/{t}" for t in tracked)]
    )
    for record in files:
        data = (folder / record.path).read_bytes()
        assert record.kind == "file"
        assert record.sha256 == hashlib.sha256(data).hexdigest(), record.path
        assert record.size_bytes == len(data)
    [entry] = list_corpus(workspace)
    assert entry.file_count == len(files)
    assert entry.size_bytes == sum(f.size_bytes for f in files)


@pytest.mark.slow
def test_rebuilt_repo_has_no_hooks_no_custom_config_and_the_same_history(
    workspace: Workspace, valid_package: Path, tmp_path: Path
):
    manifest = read_manifest(valid_package, 1 << 22)
    drive_repo = valid_package / "repo"
    who = ("-c", "user.name=Packager", "-c", "user.email=packager@example.invalid")
    run_git(
        drive_repo, *who, "tag", "--annotate", "--message", "first release", "v0.1", manifest.head
    )
    run_git(drive_repo, "tag", "light", manifest.commits[0].sha)
    repo = approve_package(workspace, valid_package).corpus_path / "repo"

    pristine = tmp_path / "pristine"
    pristine.mkdir()
    run_git(pristine, "init", "--quiet", "--template=", ".")
    assert (repo / ".git" / "config").read_bytes() == (pristine / ".git" / "config").read_bytes()
    hooks = repo / ".git" / "hooks"
    assert not hooks.exists() or list(hooks.iterdir()) == []
    assert git_out(repo, "rev-parse", "HEAD") == manifest.head
    assert git_out(repo, "symbolic-ref", "HEAD") == git_out(drive_repo, "symbolic-ref", "HEAD")
    refs = ("for-each-ref", "--format=%(refname) %(objectname)")
    assert git_out(repo, *refs) == git_out(drive_repo, *refs)
    assert "refs/tags/v0.1" in git_out(repo, *refs)
    assert git_out(repo, "cat-file", "-t", "v0.1") == "tag"
    for commit in manifest.commits:
        assert git_out(repo, "rev-parse", f"{commit.sha}^") == commit.parent
    assert git_out(repo, "status", "--porcelain") == ""


def test_rebuild_leaves_drive_hooks_and_config_behind_and_runs_none(
    valid_package: Path, tmp_path: Path
):
    """Even a repository that validation would refuse cannot bring hooks or config across."""
    manifest = read_manifest(valid_package, 1 << 22)
    drive_repo = valid_package / "repo"
    marker = tmp_path / "hook-ran"
    hooks = drive_repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("post-checkout", "reference-transaction", "pre-auto-gc", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / hook).chmod(0o755)
    with (drive_repo / ".git" / "config").open("a") as fh:
        fh.write(f'[core]\n\tfsmonitor = "touch {marker}"\n[alias]\n\tsneaky = !touch {marker}\n')
        fh.write(f'[filter "evil"]\n\tsmudge = "touch {marker}"\n')
        fh.write(f"[core]\n\thooksPath = {hooks}\n")

    dest = tmp_path / "rebuilt"
    rebuild_repo(drive_repo, dest, manifest)

    assert not marker.exists()
    assert not (dest / ".git" / "hooks").exists()
    config = (dest / ".git" / "config").read_text()
    assert "fsmonitor" not in config and "alias" not in config and "evil" not in config
    assert git_out(dest, "rev-parse", "HEAD") == manifest.head


def test_rebuild_detaches_at_the_head_when_the_drive_head_is_detached(
    valid_package: Path, tmp_path: Path
):
    manifest = read_manifest(valid_package, 1 << 22)
    drive_repo = valid_package / "repo"
    (drive_repo / ".git" / "HEAD").write_text(manifest.head + "\n")
    dest = tmp_path / "rebuilt"
    rebuild_repo(drive_repo, dest, manifest)
    assert (dest / ".git" / "HEAD").read_text().strip() == manifest.head
    assert git_out(dest, "status", "--porcelain") == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_rebuild_reads_a_repository_owned_by_another_user(valid_package: Path, tmp_path: Path):
    """A drive written on another machine has other owners; git's ownership guard must not bite."""
    manifest = read_manifest(valid_package, 1 << 22)
    for path in [valid_package, *valid_package.rglob("*")]:
        os.lchown(path, 4321, 4321)
    dest = tmp_path / "rebuilt"
    rebuild_repo(valid_package / "repo", dest, manifest)
    assert git_out(dest, "rev-parse", "HEAD") == manifest.head


@pytest.mark.slow
def test_approving_twice_reports_and_copies_nothing(workspace: Workspace, valid_package: Path):
    first = approve_package(workspace, valid_package)
    inode = first.corpus_path.stat().st_ino
    before = drive_state(first.corpus_path)

    second = approve_package(workspace, valid_package)

    assert second.already_approved
    assert (second.name, second.digest, second.corpus_path) == (
        first.name,
        first.digest,
        first.corpus_path,
    )
    assert second.report is None
    assert first.corpus_path.stat().st_ino == inode
    assert drive_state(first.corpus_path) == before
    assert len(list_corpus(workspace)) == 1
    assert [d.decision for d in decision_history(workspace)] == ["approved"]
    assert corpus_folders(workspace) == [first.corpus_path.name]


@pytest.mark.slow
def test_a_tampered_copy_of_an_approved_package_is_refused(
    workspace: Workspace, valid_package: Path
):
    approve_package(workspace, valid_package)
    copy = valid_package.parent / "textkit-copy"
    shutil.copytree(valid_package, copy, symlinks=True)
    hook = copy / "repo" / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\necho owned\n")
    hook.chmod(0o755)

    with pytest.raises(PackageNotValid, match="git-safety"):
        approve_package(workspace, copy)
    assert len(list_corpus(workspace)) == 1

    decision = reject_package(workspace, copy, reason="hook planted in a copy")
    assert decision.decision == "rejected"
    assert len(list_corpus(workspace)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_nothing_on_the_drive_is_modified(workspace: Workspace, valid_package: Path, action: str):
    drive = valid_package.parent
    before = drive_state(drive)
    if action == "approve":
        approve_package(workspace, valid_package)
    else:
        reject_package(workspace, valid_package, reason="not needed")
    assert drive_state(drive) == before


def test_hostile_package_with_a_hook_is_refused_and_the_corpus_unchanged(
    workspace: Workspace, valid_package: Path, tmp_path: Path
):
    other = tmp_path / "other-drive" / "textkit"
    shutil.copytree(valid_package, other, symlinks=True)
    edit_manifest(other, lambda data: data.update(description="Another approved package."))
    approve_package(workspace, other)
    corpus_before = (list_corpus(workspace), corpus_folders(workspace))
    hooks = valid_package / "repo" / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "post-checkout").write_text("#!/bin/sh\necho owned > /tmp/cra-owned\n")
    (hooks / "post-checkout").chmod(0o755)
    drive_before = drive_state(valid_package)

    with pytest.raises(PackageNotValid) as caught:
        approve_package(workspace, valid_package)

    report = caught.value.report
    assert not report.ok
    failing = {c.name for c in report.failures()}
    assert "git-safety" in failing
    message = str(caught.value)
    label = f"textkit@{report.summary.manifest_sha256[:7]}"
    assert message.startswith(f"{label}: not approved") and "git-safety" in message
    assert (list_corpus(workspace), corpus_folders(workspace)) == corpus_before
    assert list((workspace.corpus_dir / STAGING_DIR).iterdir()) == []
    assert drive_state(valid_package) == drive_before


def test_wheel_changed_after_validation_is_refused(
    workspace: Workspace, valid_package: Path, monkeypatch: pytest.MonkeyPatch
):
    """The drive changes between validation and the copy: the copied wheel's hash catches it."""
    wheel = sorted((valid_package / "packages").glob("*.whl"))[0]

    def validate_then_tamper(path, config):
        report = validate_package(path, config)
        with wheel.open("ab") as fh:
            fh.write(b"\0")
        return report

    monkeypatch.setattr(engine.intake.validate, "validate_package", validate_then_tamper)
    with pytest.raises(IngestError, match=f"{wheel.name}: sha256 of the copy is"):
        approve_package(workspace, valid_package)
    assert list_corpus(workspace) == []
    assert corpus_folders(workspace) == []
    assert list((workspace.corpus_dir / STAGING_DIR).iterdir()) == []


def test_manifest_changed_during_validation_is_refused(
    workspace: Workspace, valid_package: Path, monkeypatch: pytest.MonkeyPatch
):
    def tamper_then_validate(path, config):
        with (valid_package / MANIFEST_FILE).open("a") as fh:
            fh.write("\n")
        return validate_package(path, config)

    monkeypatch.setattr(engine.intake.validate, "validate_package", tamper_then_validate)
    with pytest.raises(IngestError, match="changed while the package was being validated"):
        approve_package(workspace, valid_package)
    assert list_corpus(workspace) == []


def test_working_tree_that_is_not_head_is_refused(workspace: Workspace, valid_package: Path):
    """What was validated is the drive's working tree; the corpus gets HEAD: they must agree."""
    readme = valid_package / "repo" / "README.md"
    readme.write_text(readme.read_text() + "\nAn edit nobody committed.\n")
    with pytest.raises(IngestError, match="README.md: differs from the same file at HEAD"):
        approve_package(workspace, valid_package)
    assert list_corpus(workspace) == []
    assert corpus_folders(workspace) == []


@pytest.mark.slow
def test_manifest_commit_outside_every_branch_and_tag_is_refused(
    workspace: Workspace, valid_package: Path
):
    """Only branches, tags and HEAD are rebuilt: a commit kept alive by a reflog alone is not."""
    repo = valid_package / "repo"
    env = git_env("2024-03-01T00:00:00+00:00")

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().strip()

    git("switch", "--quiet", "--create", "side")
    (repo / "tests" / "test_side.py").write_text("def test_side():\n    assert True\n")
    git("add", "tests/test_side.py")
    git("commit", "--quiet", "--no-verify", "-m", "Add a side test")
    side = git("rev-parse", "HEAD")
    git("switch", "--quiet", "main")
    git("branch", "--quiet", "-D", "side")
    commit = describe_commit(repo, side).model_dump(mode="json")
    edit_manifest(valid_package, lambda data: data["commits"].append(commit))

    with pytest.raises(IngestError, match=f"not reachable from any branch or tag.*{side}"):
        approve_package(workspace, valid_package)
    assert list_corpus(workspace) == []
    assert corpus_folders(workspace) == []


@pytest.mark.slow
def test_leftover_staging_folders_are_removed_by_the_next_approval(
    workspace: Workspace, valid_package: Path
):
    leftover = workspace.corpus_dir / STAGING_DIR / "textkit-000000000000-dead"
    (leftover / "packages").mkdir(parents=True)
    (leftover / "packages" / "half.whl").write_bytes(b"PK")

    result = approve_package(workspace, valid_package)

    assert result.removed_leftovers == [leftover]
    assert list((workspace.corpus_dir / STAGING_DIR).iterdir()) == []


@pytest.mark.slow
def test_corpus_folder_without_a_record_is_replaced(workspace: Workspace, valid_package: Path):
    orphan = workspace.corpus_dir / folder_name("textkit", manifest_digest(valid_package))
    orphan.mkdir()
    (orphan / "junk").write_text("a crash left this")

    result = approve_package(workspace, valid_package)

    assert result.removed_leftovers == [orphan]
    assert result.corpus_path == orphan
    assert not (orphan / "junk").exists()
    assert (orphan / MANIFEST_FILE).is_file()
    assert len(list_corpus(workspace)) == 1


def test_missing_corpus_folder_shows_as_not_present(workspace: Workspace, valid_package: Path):
    result = approve_package(workspace, valid_package)
    result.corpus_path.rename(workspace.root / "moved-away")
    [entry] = list_corpus(workspace)
    assert not entry.present


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_approving_something_that_is_not_a_package_folder_fails_clearly(
    workspace: Workspace, tmp_path: Path, kind: str
):
    path = tmp_path / "nope"
    if kind == "file":
        path.write_text("not a folder")
    with pytest.raises(IngestError, match="nope: (no such folder|a repo package must be a folder)"):
        approve_package(workspace, path)


def test_reject_records_the_decision_and_copies_nothing(workspace: Workspace, valid_package: Path):
    decision = reject_package(
        workspace, valid_package, reason="  license unclear  ", operator="reviewer"
    )
    assert decision.decision == "rejected"
    assert decision.reason == "license unclear"
    assert decision.operator == "reviewer"
    assert decision.name == "textkit"
    assert decision.digest == manifest_digest(valid_package)
    assert decision.source_path == str(valid_package)
    assert decision.report is not None and decision.report.ok
    assert decision.decided_at.utcoffset().seconds == 0
    assert decision_history(workspace) == [decision]
    assert list_corpus(workspace) == []
    assert corpus_folders(workspace) == []


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_reject_needs_a_reason(workspace: Workspace, valid_package: Path, reason: str):
    with pytest.raises(IngestError, match="a rejection needs a reason"):
        reject_package(workspace, valid_package, reason=reason)
    assert decision_history(workspace) == []


def test_reject_without_a_readable_manifest_uses_the_path_digest(
    workspace: Workspace, valid_package: Path
):
    (valid_package / MANIFEST_FILE).unlink()
    decision = reject_package(workspace, valid_package, reason="no manifest")
    expected = hashlib.sha256(os.fsencode(valid_package)).hexdigest()
    assert decision.digest == PATH_DIGEST_PREFIX + expected
    assert decision.name is None
    assert decision.report is not None and not decision.report.ok
    assert decision.label == "textkit", "a path's digest names no content: the folder alone"


def test_a_package_label_is_its_folder_and_short_digest_as_safe_text():
    """`folder@digest7`, the manifest's name after it only when it differs from the folder;
    a drive's hostile folder or manifest name comes out with its controls escaped."""
    digest = "3f9a1c2e" * 8
    assert package_label("/media/usb/STICK/hooked-repo", digest, "textkit") == (
        "hooked-repo@3f9a1c2 (textkit)"
    )
    assert package_label(Path("/media/usb/STICK/attrs"), digest, "attrs") == "attrs@3f9a1c2"
    assert package_label("/media/usb/STICK/attrs", None) == "attrs"
    assert package_label(None, digest, "textkit") == "textkit@3f9a1c2"
    assert package_label("/d/kit\x1b[2J\u202e", digest, "n\x9b") == (
        "kit\\x1b[2J\\u202e@3f9a1c2 (n\\x9b)"
    )


def test_reject_uses_the_report_given(
    workspace: Workspace, valid_package: Path, monkeypatch: pytest.MonkeyPatch
):
    report = validate_package(valid_package, workspace.config.validation)

    def must_not_validate(path, config):
        raise AssertionError("the given report should be used")

    monkeypatch.setattr(engine.intake.validate, "validate_package", must_not_validate)
    decision = reject_package(workspace, valid_package, reason="seen enough", report=report)
    assert decision.report == report
    other = valid_package.parent / "other"
    other.mkdir()
    with pytest.raises(IngestError, match="the report given is for another package"):
        reject_package(workspace, other, reason="x", report=report)


@pytest.mark.slow
def test_rejecting_an_approved_package_is_refused(workspace: Workspace, valid_package: Path):
    approve_package(workspace, valid_package)
    with pytest.raises(IngestError, match="is in the corpus"):
        reject_package(workspace, valid_package, reason="changed my mind")
    assert [d.decision for d in decision_history(workspace)] == ["approved"]


def test_history_is_newest_first_and_limited(workspace: Workspace, valid_package: Path):
    report = validate_package(valid_package, workspace.config.validation)
    for reason in ("first", "second", "third"):
        reject_package(workspace, valid_package, reason=reason, report=report)
    assert [d.reason for d in decision_history(workspace)] == ["third", "second", "first"]
    assert [d.reason for d in decision_history(workspace, limit=2)] == ["third", "second"]


@pytest.mark.slow
def test_a_rejected_package_can_still_be_approved(workspace: Workspace, valid_package: Path):
    reject_package(workspace, valid_package, reason="not yet")
    approve_package(workspace, valid_package)
    assert [d.decision for d in decision_history(workspace)] == ["approved", "rejected"]
    assert len(list_corpus(workspace)) == 1


@pytest.mark.slow
def test_a_corpus_that_cannot_be_written_fails_clearly(workspace: Workspace, valid_package: Path):
    (workspace.corpus_dir / STAGING_DIR).write_text("a file where the staging folder goes")
    with pytest.raises(IngestError, match=f"cannot be placed in {workspace.corpus_dir}"):
        approve_package(workspace, valid_package)
    assert list_corpus(workspace) == []
    assert decision_history(workspace) == []
