"""A real approving process killed mid-way leaves nothing the corpus lists, and a retry succeeds.

The child process wraps one of the approval's steps (by monkeypatching the module attribute the
approval calls) so that it SIGKILLs itself there: production code carries no test hook.
"""

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.workspace import Workspace
from engine.intake.approval import approve_package, decision_history, list_corpus
from engine.intake.corpus import STAGING_DIR, folder_name
from engine.intake.manifest import MANIFEST_FILE

CHILD = """
import importlib, os, signal, sys
from pathlib import Path

workspace, package, module_name, attr, calls_before_kill, when = sys.argv[1:]
module = importlib.import_module(module_name)
real = getattr(module, attr)
calls = 0

def die_at_the_nth_call(*args, **kwargs):
    global calls
    calls += 1
    if when == "before" and calls == int(calls_before_kill):
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    if when == "after" and calls == int(calls_before_kill):
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(module, attr, die_at_the_nth_call)

from engine.intake.approval import approve_package
from engine.core.workspace import Workspace

approve_package(Workspace.open(Path(workspace)), Path(package))
sys.exit(3)
"""


def approve_and_die(ws: Workspace, package: Path, target: str, calls: int, when: str) -> None:
    module_name, attr = target.rsplit(".", 1)
    argv = [sys.executable, "-c", CHILD, str(ws.root), str(package), module_name, attr]
    result = subprocess.run([*argv, str(calls), when], capture_output=True, text=True, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr


def staging_leftovers(ws: Workspace) -> list[Path]:
    return sorted((ws.corpus_dir / STAGING_DIR).iterdir())


def package_folders(ws: Workspace, name: str) -> list[Path]:
    return sorted(ws.corpus_dir.glob(f"{name}-*"))


def assert_retry_recovers(ws: Workspace, package: Path, leftovers: list[Path]) -> None:
    result = approve_package(ws, package)
    assert not result.already_approved
    assert result.removed_leftovers == leftovers
    [entry] = list_corpus(ws)
    assert entry.name == "textkit" and entry.present
    assert package_folders(ws, "textkit") == [result.corpus_path]
    assert staging_leftovers(ws) == []
    assert [d.decision for d in decision_history(ws)] == ["approved"]
    assert approve_package(ws, package).already_approved
    assert len(list_corpus(ws)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("wheels_copied", [1, 3])
def test_kill_mid_copy_leaves_nothing_listed_and_the_retry_succeeds(
    workspace: Workspace, valid_package: Path, wheels_copied: int
):
    approve_and_die(
        workspace, valid_package, "engine.intake.corpus.copy_file", wheels_copied, "after"
    )

    assert list_corpus(workspace) == []
    assert decision_history(workspace) == []
    assert package_folders(workspace, "textkit") == []
    [leftover] = staging_leftovers(workspace)
    assert len(list((leftover / "packages").iterdir())) == wheels_copied
    assert not (leftover / "repo").exists()
    assert_retry_recovers(workspace, valid_package, [leftover])


@pytest.mark.slow
def test_kill_after_staging_before_rename(workspace: Workspace, valid_package: Path):
    approve_and_die(workspace, valid_package, "engine.intake.corpus.rebuild_repo", 1, "after")

    assert list_corpus(workspace) == []
    assert package_folders(workspace, "textkit") == []
    [leftover] = staging_leftovers(workspace)
    assert (leftover / "repo" / ".git").is_dir()
    assert_retry_recovers(workspace, valid_package, [leftover])


@pytest.mark.slow
def test_kill_between_rename_and_db_commit(workspace: Workspace, valid_package: Path):
    approve_and_die(workspace, valid_package, "engine.intake.approval.record_approval", 1, "before")

    digest = hashlib.sha256((valid_package / MANIFEST_FILE).read_bytes()).hexdigest()
    orphan = workspace.corpus_dir / folder_name("textkit", digest)
    assert list_corpus(workspace) == []
    assert decision_history(workspace) == []
    assert package_folders(workspace, "textkit") == [orphan]
    assert (orphan / "repo" / ".git").is_dir()
    assert staging_leftovers(workspace) == []
    assert_retry_recovers(workspace, valid_package, [orphan])
