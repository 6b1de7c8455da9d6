"""Task environments are built offline once per key and reused; a killed build leaves none ready."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.core.hashing import sha256_file
from engine.core.staged import STAGING_DIR
from engine.core.workspace import ENVS_DIR, Workspace
from engine.demo.hostile import edit_manifest
from engine.demo.wheels import build_wheel
from engine.harness.environments import BUILD_FILE, ensure_env, env_key
from engine.harness.package import HarnessError, load_package
from engine.harness.worktrees import checkout, overlay_files
from engine.intake.approval import approve_package


@pytest.fixture
def approved(workspace: Workspace, valid_package: Path) -> str:
    return approve_package(workspace, valid_package).digest


def test_env_is_built_once_and_reused(workspace: Workspace, approved: str):
    package = load_package(workspace, approved)
    first = ensure_env(workspace, package)
    assert first.built_now
    stamp = (first.path / BUILD_FILE).stat().st_mtime_ns
    second = ensure_env(workspace, package)
    assert (second.built_now, second.path) == (False, first.path)
    assert (second.path / BUILD_FILE).stat().st_mtime_ns == stamp
    assert first.path == workspace.root / ENVS_DIR / env_key(package)
    ran = subprocess.run(
        [str(second.python), "-c", "import pytest, stopwords_mini; print('ok')"],
        capture_output=True,
        text=True,
    )
    assert ran.stdout.strip() == "ok", ran.stderr


def compiled_modules(env_path: Path) -> int:
    return sum(1 for _ in (env_path / "venv" / "lib").rglob("__pycache__/pytest*.pyc"))


def test_an_env_has_its_modules_compiled(workspace: Workspace, approved: str):
    """The sandbox mounts the environment read-only and writes no bytecode: without it, every
    test run would compile pytest and the libraries again."""
    env = ensure_env(workspace, load_package(workspace, approved))
    assert json.loads((env.path / BUILD_FILE).read_text())["bytecode"] is True
    assert compiled_modules(env.path) > 0
    ran = subprocess.run(
        [str(env.python), "-c", "import _pytest.python as m; print(m.__cached__, m.__file__)"],
        capture_output=True,
        text=True,
    )
    cached, source = ran.stdout.split()
    assert Path(cached).is_file() and source.startswith(str(env.path)), ran.stdout


def test_an_env_built_without_bytecode_is_compiled_on_its_next_use(
    workspace: Workspace, approved: str
):
    package = load_package(workspace, approved)
    env = ensure_env(workspace, package)
    for cache in (env.path / "venv" / "lib").rglob("__pycache__"):
        shutil.rmtree(cache)
    build = json.loads((env.path / BUILD_FILE).read_text())
    del build["bytecode"]
    (env.path / BUILD_FILE).write_text(json.dumps(build))
    again = ensure_env(workspace, package)
    assert (again.built_now, again.path) == (False, env.path)
    assert compiled_modules(env.path) > 0
    assert json.loads((env.path / BUILD_FILE).read_text()) == {**build, "bytecode": True}
    assert sorted(p.name for p in env.path.iterdir()) == ["build.json", "requirements.txt", "venv"]


def test_compiling_runs_no_code_a_wheel_ships(workspace: Workspace, valid_package: Path, tmp_path):
    """A wheel's `.pth` file runs whenever a Python with the site module starts; compiling runs
    outside the sandbox, so it must not start one."""
    marker = tmp_path / "ran-outside-the-sandbox"
    pth = f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n"
    wheel = build_wheel("hook", "1.0", {"hook.pth": pth}, valid_package / "packages")

    def edit(data: dict) -> None:
        data["requirements"].append("hook==1.0")
        data["wheels"].append({"filename": wheel.name, "sha256": sha256_file(wheel)})

    edit_manifest(valid_package, edit)
    env = ensure_env(
        workspace, load_package(workspace, approve_package(workspace, valid_package).digest)
    )
    assert next((env.path / "venv" / "lib").rglob("hook.pth")).is_file()
    assert compiled_modules(env.path) > 0
    assert not marker.exists()


_KILLED_BUILD = """
import sys, time
from pathlib import Path
import engine.harness.environments as environments
import engine.isolation.uvtool as uvtool
from engine.harness.package import load_package
from engine.core.workspace import Workspace

real = uvtool.run_uv

def stalling(args, cwd, scratch):
    if args[:2] == ["pip", "install"]:
        Path(sys.argv[2]).write_text("installing")
        time.sleep(600)
    return real(args, cwd, scratch)

uvtool.run_uv = stalling
ws = Workspace.open(Path(sys.argv[1]))
environments.ensure_env(ws, load_package(ws, sys.argv[3]))
"""


def test_a_killed_build_leaves_no_ready_env(workspace: Workspace, approved: str, tmp_path: Path):
    signal_file = tmp_path / "installing"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_KILLED_BUILD),
            str(workspace.root),
            str(signal_file),
            approved,
        ],
        cwd=Path(__file__).parent.parent,
    )
    try:
        while not signal_file.exists():
            assert proc.poll() is None, "the build ended before it was killed"
            os.sched_yield()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    package = load_package(workspace, approved)
    envs = workspace.root / ENVS_DIR
    assert not (envs / env_key(package)).exists()
    assert len(list((envs / STAGING_DIR).iterdir())) == 1
    env = ensure_env(workspace, package)
    assert env.built_now and (env.path / BUILD_FILE).is_file()
    assert list((envs / STAGING_DIR).iterdir()) == []


def test_missing_python_names_the_manifest(workspace: Workspace, approved: str):
    package = load_package(workspace, approved)
    odd = package.manifest.model_copy(update={"python_version": "3.99"})
    with pytest.raises(HarnessError, match=r"manifest.json: looking for Python 3.99"):
        ensure_env(workspace, type(package)(package.digest, package.root, odd))
    assert list((workspace.root / ENVS_DIR / STAGING_DIR).iterdir()) == []


def test_unknown_package_is_refused(workspace: Workspace):
    with pytest.raises(HarnessError, match="no approved package has the manifest digest 00"):
        load_package(workspace, "00" * 32)


def test_checkout_holds_the_commit_and_is_removed(workspace: Workspace, approved: str):
    package = load_package(workspace, approved)
    fold = next(c for c in package.manifest.commits if c.subject.startswith("Fold accented"))
    with checkout(package.repo, fold.parent, workspace.root) as tree:
        assert "unicodedata" not in (tree / "textkit" / "slug.py").read_text()
        overlay_files(package.repo, fold.sha, fold.test_files, tree)
        assert "test_slugify_folds_accents" in (tree / "tests" / "test_slug.py").read_text()
        assert "unicodedata" not in (tree / "textkit" / "slug.py").read_text()
        assert not (tree / ".git").exists()
    assert not tree.parent.exists()
    with pytest.raises(RuntimeError), checkout(package.repo, fold.sha, workspace.root) as tree:
        raise RuntimeError("boom")
    assert not tree.parent.exists()
