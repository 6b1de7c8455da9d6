"""Packages with `install_repo`: each side's tree is built (sandboxed) and installed, then tested.

The demo package gets a tiny PEP 517 backend shipped as a wheel, then commits made on top of
it, so the parent and the commit of each new task both build with that backend. Trees with the
same build configuration share one build (engine.harness.repo_sites): the tests import each
tree's own code.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from package_commits import add_task_commit
from test_dry_run import BACKEND, add_build_backend

from engine.core.workspace import Workspace
from engine.demo.hostile import commit_files
from engine.harness.attempts import run_attempt
from engine.harness.campaigns import CampaignSpec, create_campaign
from engine.harness.package import load_package
from engine.harness.repo_sites import SITES_DIR
from engine.harness.task_validation import find_commit, validate_task
from engine.intake.approval import approve_package

SHOUT = 'def shout(text: str) -> str:\n    return text.upper() + "!"\n'
TEST_SHOUT = (
    "from textkit.shout import shout\n\n\ndef test_shout():\n    assert shout('hi') == 'HI!'\n"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]):
    root = tmp_path_factory.mktemp("install-repo")
    package, shout = shout_package(root, copy_package, BACKEND, TEST_SHOUT)
    pyproject = (package / "repo" / "pyproject.toml").read_text(encoding="utf-8")
    broken = add_task_commit(
        package,
        {
            "pyproject.toml": pyproject.replace('"mini_backend"', '"missing_backend"'),
            "tests/test_shout.py": TEST_SHOUT + "\n\ndef test_more():\n    assert True\n",
        },
        "Switch to a backend that is not shipped",
        ["tests/test_shout.py"],
    )
    commit_files(package, {"pyproject.toml": pyproject}, "Build with mini-backend again")
    return *approved_once(root, package), shout, broken


def shout_package(
    root: Path, copy_package: Callable[[Path], Path], backend: str, test: str
) -> tuple[Path, str]:
    """A copy of the demo package built with `backend`, and its new commit adding shout with
    `test`."""
    package = copy_package(root)
    add_build_backend(package, backend)
    sha = add_task_commit(
        package,
        {"textkit/shout.py": SHOUT, "tests/test_shout.py": test},
        "Add shout",
        ["tests/test_shout.py"],
    )
    return package, sha


def approved_once(root: Path, package: Path) -> tuple[Workspace, str]:
    """A workspace at `root/ws` that runs each side once, and the package's digest there."""
    ws_root = root / "ws"
    ws_root.mkdir()
    (ws_root / "cra.toml").write_text("[harness]\nflaky_runs = 1\n", encoding="utf-8")
    ws = Workspace.open(ws_root)
    return ws, approve_package(ws, package).digest


def test_both_sides_share_one_build_and_test_their_own_code(installed) -> None:
    """The parent and the commit build alike, so one build serves both; the parent's tests
    still cannot import the module only the commit adds."""
    ws, digest, shout, _ = installed
    report = validate_task(ws, digest, shout)
    assert report.status == "usable", report.reason
    assert report.fail_to_pass == ["tests/test_shout.py::test_shout"]
    [share] = shares(ws)
    built = json.loads((share / "site.json").read_text())
    assert built["roots"] == [""] and built["not_shared"] is None
    assert built["built_from"] in (
        shout[:12],
        f"{shout_parent(ws, digest, shout)} with {shout[:12]}'s test files",
    )
    assert (share / "metadata" / "textkit-0.1.0.dist-info" / "METADATA").is_file()
    assert not (share / "metadata" / "textkit").exists()
    how = f"shared by its build configuration ({share.name})"
    for side in ("before", "after"):
        assert how in (report.artifacts / f"{side}-install" / "install.txt").read_text()
    assert all(how in (run.installed or "") for run in report.runs)


def test_a_tree_with_the_same_build_configuration_reuses_the_build(installed) -> None:
    ws, digest, shout, _ = installed
    validate_task(ws, digest, shout)
    [share] = shares(ws)
    stamp = (share / "site.json").stat().st_mtime_ns
    report = validate_task(ws, digest, shout)
    assert report.status == "usable", report.reason
    assert shares(ws) == [share]
    assert (share / "site.json").stat().st_mtime_ns == stamp
    assert not list(report.artifacts.rglob("site"))


def test_a_tree_that_does_not_build_makes_the_task_unusable(installed) -> None:
    ws, digest, _, broken = installed
    report = validate_task(ws, digest, broken)
    assert report.status == "unusable"
    assert report.reason.startswith("at the commit: installing the repository failed: ")
    assert (
        "missing_backend" in (report.artifacts / "after-install" / "install-output.txt").read_text()
    )


def test_a_gold_attempt_resolves_an_installed_package(installed) -> None:
    ws, digest, shout, _ = installed
    spec = CampaignSpec(
        packages=[digest], pipeline="gold", model="gold", temperatures=[0.0], seeds=[1]
    )
    campaign_id = create_campaign(ws, spec, "tester")
    [row] = ws.db["attempts"].rows_where("campaign_id = ? AND sha = ?", [campaign_id, shout])
    record = run_attempt(ws, row, lambda stage: None)
    assert (record.outcome, record.reason) == (
        "resolved",
        "1/1 failing-to-passing, 0/0 passing-to-passing",
    )
    out = ws.root / row["task"].join(["runs/", "/attempts/"]) / str(row["id"])
    assert "shared by its build configuration" in (out / "install" / "install.txt").read_text()


def test_an_install_leaves_no_uv_cache_in_runs(installed) -> None:
    """Each side's build scratch (uv's cache, megabytes per build) is removed once the install
    ends, whether it succeeded or not; the share keeps only the install's metadata."""
    ws, digest, shout, broken = installed
    for sha in (shout, broken):
        validate_task(ws, digest, sha)
    assert [p for p in ws.runs_dir.rglob("*") if p.name == "uv-cache"] == []
    assert [p for p in ws.envs_dir.glob(f"*/{SITES_DIR}/**/uv-cache")] == []
    assert shares(ws)


def shares(ws: Workspace) -> list[Path]:
    return sorted(p.parent for p in ws.envs_dir.glob(f"*/{SITES_DIR}/*/site.json"))


def shout_parent(ws: Workspace, digest: str, sha: str) -> str:
    return find_commit(load_package(ws, digest), sha).parent[:12]


GENERATING = BACKEND.replace(
    '    files[DIST_INFO + "/METADATA"]',
    '    files["textkit/_built.py"] = b"BUILT = True\\n"\n    files[DIST_INFO + "/METADATA"]',
)
REWRITING = BACKEND.replace("p.read_bytes() for p in", 'p.read_bytes() + b"# packed\\n" for p in')
TEST_BUILT = (
    "from textkit.shout import shout\n\n\n"
    "def test_shout():\n    from textkit._built import BUILT\n\n"
    "    assert BUILT and shout('hi') == 'HI!'\n"
)


def package_with_backend(root: Path, copy_package: Callable[[Path], Path], backend: str, test: str):
    package, sha = shout_package(root, copy_package, backend, test)
    return *approved_once(root, package), sha


def test_a_file_the_build_generates_is_written_into_each_tree(
    tmp_path: Path, copy_package: Callable[[Path], Path]
) -> None:
    ws, digest, sha = package_with_backend(tmp_path, copy_package, GENERATING, TEST_BUILT)
    report = validate_task(ws, digest, sha)
    assert report.status == "usable", report.reason
    assert report.fail_to_pass == ["tests/test_shout.py::test_shout"]
    [share] = shares(ws)
    assert json.loads((share / "site.json").read_text())["generated"] == ["textkit/_built.py"]


def test_a_build_that_rewrites_the_sources_is_made_for_each_tree(
    tmp_path: Path, copy_package: Callable[[Path], Path]
) -> None:
    """Its install is not the tree's code, so no other tree may use it: each side builds its
    own, and the share records why, so later trees do not try again."""
    ws, digest, sha = package_with_backend(tmp_path, copy_package, REWRITING, TEST_SHOUT)
    report = validate_task(ws, digest, sha)
    assert report.status == "usable", report.reason
    [share] = shares(ws)
    why = json.loads((share / "site.json").read_text())["not_shared"]
    assert why.startswith("the build rewrites textkit/")
    assert list(share.iterdir()) == [share / "site.json"]
    for side in ("before", "after"):
        out = report.artifacts / f"{side}-install"
        assert (out / "install.txt").read_text() == f"built for this tree alone: {why}\n"
        packed = (out / "site" / "textkit" / "__init__.py").read_bytes()
        assert packed.endswith(b"# packed\n")
