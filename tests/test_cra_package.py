"""`cra package` end to end: a generated repository packaged and validated with `cra ingest`."""

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import demo_counts
import pytest
from click.testing import CliRunner, Result
from simple_index import serve_index

from app.cli import cli
from engine.core.workspace import Workspace
from engine.demo.repo import DEMO_HISTORY, PYPROJECT, DemoCommit, build_demo_repo
from engine.demo.wheels import build_wheel
from engine.intake.manifest import MANIFEST_FILE, parse_manifest
from engine.mining.message import task_subject
from engine.packaging.license import infer_license
from engine.packaging.style_score import score_style
from engine.packaging.tree_files import TreeFiles

PACKAGED_PYPROJECT = PYPROJECT.replace(
    'requires-python = ">=3.11"\n',
    'requires-python = ">=3.11"\nlicense = "MIT"\n',
).replace(
    "\n[tool.pytest",
    '\n[project.optional-dependencies]\ntest = ["pytest>=8"]\ndocs = ["sphinx"]\n\n[tool.pytest',
)
HISTORY = [
    DemoCommit(
        "Create the textkit project",
        {**DEMO_HISTORY[0].files, "pyproject.toml": PACKAGED_PYPROJECT},
    ),
    *DEMO_HISTORY[1:],
    DemoCommit("wip", {"textkit/__init__.py": '"""Small text helpers, more soon."""\n'}),
    DemoCommit(
        "Bump version to 0.2.0",
        {"pyproject.toml": PACKAGED_PYPROJECT.replace('"0.1.0"', '"0.2.0"')},
    ),
]
KEPT_SUBJECTS = demo_counts.KEPT
TOTAL = len(HISTORY)
ATTRITION = [
    ("date range", TOTAL, 0),
    ("non-merge", TOTAL, 0),
    ("has parent", TOTAL - 1, 1),
    ("not automated", TOTAL - 2, 1),
    ("message quality", len(KEPT_SUBJECTS), TOTAL - 2 - len(KEPT_SUBJECTS)),
    ("diff size", len(KEPT_SUBJECTS), 0),
    ("touches Python", len(KEPT_SUBJECTS), 0),
    ("not docs/CI/config-only", len(KEPT_SUBJECTS), 0),
    ("tests exist", len(KEPT_SUBJECTS), 0),
]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A generated repository: the demo's history with a test extra, a wip and a version bump."""
    repo = tmp_path_factory.mktemp("source") / "textkit"
    return repo, build_demo_repo(repo, HISTORY)


def cra(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", "/nonexistent-cra-workspace", *args])


def package(repo: Path, out: Path, wheels: Path, *extra: str) -> Result:
    args = ["package", str(repo), "--out", str(out), "--wheels", str(wheels)]
    return cra(*args, "--domain", "text-processing", *extra)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "cra-staging" in p.name)


def test_package_validates_and_lists_the_mined_commits(
    tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path
):
    repo, shas = source
    out = tmp_path / "drive" / "textkit"
    out.parent.mkdir()
    result = package(repo, out, wheel_cache, "--report")
    assert result.exit_code == 0, result.output
    assert f"packaged textkit at {out}" in result.stdout
    assert "license: MIT (from pyproject.toml [project] license)" in result.stdout
    assert re.search(
        r"pytest>=8 +pyproject.toml \[project.optional-dependencies\] test", result.stdout
    )
    mix = ", ".join(f"{kind} {count}" for kind, count in demo_counts.PLANNING_TYPES.items())
    assert f"planning types: {mix}" in result.stdout
    assert f"{len(KEPT_SUBJECTS)} of {TOTAL} commits kept" in result.stdout

    ws_root = Workspace.open(tmp_path / "ws").root
    validation = cra("--workspace", str(ws_root), "ingest", "validate", "--json", str(out))
    assert validation.exit_code == 0, validation.output
    report = json.loads(validation.stdout)
    assert [c["name"] for c in report["checks"] if not c["ok"]] == []
    assert {c["name"] for c in report["checks"]} >= {"git-safety", "requirements", "dry-run"}

    manifest = parse_manifest((out / MANIFEST_FILE).read_bytes())
    by_subject = dict(zip((task_subject(c.message) for c in HISTORY), shas, strict=True))
    assert [c.subject for c in manifest.commits] == KEPT_SUBJECTS
    assert [c.sha for c in manifest.commits] == [by_subject[s] for s in KEPT_SUBJECTS]
    assert [(s.name, s.kept, s.dropped) for s in manifest.filter_stages] == ATTRITION
    assert manifest.head == shas[-1]
    assert manifest.requirements == ["stopwords-mini>=1.0", "pytest>=8"]
    assert manifest.install_repo is False
    assert manifest.license == "MIT"
    assert manifest.name == "textkit"
    assert manifest.created_by == "cra package"
    assert {w.filename for w in manifest.wheels} == {p.name for p in wheel_cache.glob("*.whl")}
    assert {p.name for p in (out / "packages").iterdir()} == {w.filename for w in manifest.wheels}
    assert manifest.style == score_style(out / "repo")

    git_dir = out / "repo" / ".git"
    assert not (git_dir / "hooks").exists() or not any((git_dir / "hooks").iterdir())
    assert "remote" not in (git_dir / "config").read_text()
    assert leftovers(out.parent) == []

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    manifest_bytes = (out / MANIFEST_FILE).read_bytes()
    again = package(repo, out, wheel_cache)
    assert again.exit_code == 1
    assert f"--out {out}: already exists; it is left untouched" in again.stderr
    assert "Traceback" not in again.output
    assert (out / MANIFEST_FILE).read_bytes() == manifest_bytes
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert leftovers(out.parent) == []


def test_a_bare_repository_packages_the_same_commits(
    tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path
):
    repo, shas = source
    bare = tmp_path / "textkit.git"
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", "--template=", str(repo), str(bare)], check=True
    )
    out = tmp_path / "out"
    result = package(bare, out, wheel_cache, "--since", "2024-03-03", "--name", "textkit-bare")
    assert result.exit_code == 0, result.output
    manifest = parse_manifest((out / MANIFEST_FILE).read_bytes())
    assert manifest.head == shas[-1]
    assert manifest.name == "textkit-bare"
    assert manifest.filter_stages[0].model_dump() == {
        "name": "date range",
        "kept": TOTAL - 2,
        "dropped": 2,
    }
    assert [c.subject for c in manifest.commits] == KEPT_SUBJECTS[1:]


def test_without_a_wheel_folder_the_index_gives_wheels_as_old_as_the_history(
    tmp_path: Path,
    source: tuple[Path, list[str]],
    wheel_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """On the connected side uv resolves against the operator's index and pip fetches the pins;
    a release uploaded after the newest packaged commit is not taken unless --exclude-newer says
    a later date, and the summary says which cutoff applied."""
    index = tmp_path / "index"
    shutil.copytree(wheel_cache, index)
    newer = build_wheel("stopwords-mini", "2.0.0", {"stopwords_mini/__init__.py": ""}, index)
    repo, _ = source
    with serve_index(index, {newer.name: datetime(2025, 1, 1, tzinfo=UTC)}) as url:
        monkeypatch.setenv("UV_INDEX_URL", url)
        monkeypatch.setenv("PIP_INDEX_URL", url)
        monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
        out = tmp_path / "out"
        result = cra("package", str(repo), "--out", str(out), "--domain", "text")
        assert result.exit_code == 0, result.output
        assert "wheels: none uploaded after 2024-" in result.stdout
        manifest = parse_manifest((out / MANIFEST_FILE).read_bytes())
        assert {w.filename for w in manifest.wheels} == {p.name for p in wheel_cache.glob("*.whl")}
        later = tmp_path / "later"
        args = ["package", str(repo), "--out", str(later), "--domain", "text"]
        result = cra(*args, "--exclude-newer", "2026-01-01")
        assert result.exit_code == 0, result.output
        assert "wheels: none uploaded after 2026-01-01T00:00:00+00:00" in result.stdout
        manifest = parse_manifest((later / MANIFEST_FILE).read_bytes())
        assert newer.name in {w.filename for w in manifest.wheels}


def test_pins_and_excludes_shape_the_requirements(
    tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path
):
    """`--exclude` leaves a declared requirement out and `--pin` fixes a version; the summary
    and the manifest show the result, and a pin no wheel meets is named with its sources."""
    repo, _ = source
    out = tmp_path / "out"
    result = package(
        repo, out, wheel_cache, "--exclude", "stopwords-mini", "--pin", "pytest==8.4.2"
    )
    assert result.exit_code == 0, result.output
    assert parse_manifest((out / MANIFEST_FILE).read_bytes()).requirements == ["pytest==8.4.2"]
    assert re.search(
        r"pytest==8.4.2 +pyproject.toml \[project.optional-dependencies\] test; "
        r"--pin pytest==8.4.2",
        result.stdout,
    )
    assert "--exclude stopwords-mini: stopwords-mini>=1.0 dropped (from pyproject.toml" in (
        result.stdout
    )
    missing = tmp_path / "missing"
    refused(
        package(repo, missing, wheel_cache, "--pin", "pytest==7.0"),
        missing,
        "pytest==7.0 (from pyproject.toml [project.optional-dependencies] test; "
        "--pin pytest==7.0): only version 8.4.2 is there",
    )


def test_a_test_requirement_only_older_commits_declare_is_packaged(
    tmp_path: Path, wheel_cache: Path
):
    """The project's tests once needed `oldhelper` and its pyproject dropped it at the last
    commit: every packaged commit's tests still import it, so it is packaged by name, the
    summary says where it came from, and `--exclude` can still leave it out. A pytest plugin
    they declared is not packaged: pytest would load it for every commit."""
    old_pyproject = PACKAGED_PYPROJECT.replace(
        'test = ["pytest>=8"]', 'test = ["pytest>=8", "oldhelper>=1", "pytest-oldplugin"]'
    )
    history = [
        DemoCommit(HISTORY[0].subject, {**HISTORY[0].files, "pyproject.toml": old_pyproject}),
        *DEMO_HISTORY[1:],
        DemoCommit("Drop oldhelper from the tests", {"pyproject.toml": PACKAGED_PYPROJECT}),
    ]
    repo = tmp_path / "textkit"
    build_demo_repo(repo, history)
    wheels = tmp_path / "wheels"
    shutil.copytree(wheel_cache, wheels)
    helper = build_wheel("oldhelper", "2.0", {"oldhelper/__init__.py": ""}, wheels)
    plugin_files = {
        "pytest_oldplugin.py": "",
        "pytest_oldplugin-1.0.dist-info/entry_points.txt": "[pytest11]\nold = pytest_oldplugin\n",
    }
    plugin = build_wheel("pytest-oldplugin", "1.0", plugin_files, wheels)
    out = tmp_path / "out"
    result = package(repo, out, wheels)
    assert result.exit_code == 0, result.output
    manifest = parse_manifest((out / MANIFEST_FILE).read_bytes())
    assert "oldhelper" in manifest.requirements
    assert helper.name in {w.filename for w in manifest.wheels}
    assert "pytest-oldplugin" not in manifest.requirements
    assert plugin.name not in {w.filename for w in manifest.wheels}
    assert (
        "pytest-oldplugin: declared only by older commits, and it registers a pytest plugin, "
        "which would change every commit's test run; not added"
    ) in result.stdout
    newest, kept = manifest.commits[0].sha[:12], len(manifest.commits)
    assert re.search(
        r"oldhelper +pyproject.toml \[project.optional-dependencies\] test; "
        rf"declared by {kept} packaged commit\(s\), the newest {newest}; not at HEAD",
        result.stdout,
    )
    excluded = tmp_path / "excluded"
    result = package(repo, excluded, wheels, "--exclude", "oldhelper")
    assert result.exit_code == 0, result.output
    assert "oldhelper" not in parse_manifest((excluded / MANIFEST_FILE).read_bytes()).requirements


def test_history_older_than_a_config_pytest_refuses_is_cut_with_a_warning(
    tmp_path: Path, wheel_cache: Path
):
    """A `[pytest]` section in setup.cfg (refused by pytest 4 and later) in the first commits
    moves the default window past them, and the summary names the cut commit, the reason and
    how to widen it; `--since` takes the whole history back."""
    old_cfg = "[pytest]\naddopts = -q\n"
    history = [
        DemoCommit(HISTORY[0].subject, {**HISTORY[0].files, "setup.cfg": old_cfg}),
        HISTORY[1],
        DemoCommit(HISTORY[2].subject, {**HISTORY[2].files, "setup.cfg": "[tool:pytest]\n"}),
        *HISTORY[3:],
    ]
    repo = tmp_path / "textkit"
    shas = build_demo_repo(repo, history)
    out = tmp_path / "out"
    result = package(repo, out, wheel_cache)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: history before 2024-03-03 cut (2 commits): at {shas[0][:12]} (2024-03-01) "
        "setup.cfg has a [pytest] section, which pytest 4 and later refuse; "
        "pass --since YYYY-MM-DD to widen the window"
    ) in result.stdout
    manifest = parse_manifest((out / MANIFEST_FILE).read_bytes())
    assert manifest.filter_stages[0].dropped == 2
    whole = tmp_path / "whole"
    result = package(repo, whole, wheel_cache, "--since", "2024-03-01")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stdout
    assert parse_manifest((whole / MANIFEST_FILE).read_bytes()).filter_stages[0].dropped == 0


def refused(result: Result, out: Path, *phrases: str) -> None:
    """The run failed with status 1 and a message, no traceback, nothing at or beside `out`."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.stderr
    assert not out.exists()
    assert leftovers(out.parent) == []


def test_a_folder_that_is_not_a_git_repository(tmp_path: Path, wheel_cache: Path):
    folder = tmp_path / "plain"
    folder.mkdir()
    out = tmp_path / "out"
    refused(package(folder, out, wheel_cache), out, f"{folder}: not a git repository")


def test_no_commit_survives(tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path):
    repo, _ = source
    out = tmp_path / "out"
    result = package(repo, out, wheel_cache, "--until", "2024-03-01")
    refused(
        result, out, "no commits survive the filters", "date range", f"0 of {TOTAL} commits kept"
    )


def test_a_requirement_without_a_wheel_is_named(
    tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path
):
    repo, _ = source
    wheels = tmp_path / "wheels"
    shutil.copytree(wheel_cache, wheels)
    (wheels / "stopwords_mini-1.0.0-py3-none-any.whl").unlink()
    out = tmp_path / "out"
    refused(
        package(repo, out, wheels),
        out,
        "stopwords-mini>=1.0 (from pyproject.toml [project] dependencies): there is no wheel of it",
    )


def test_an_unknown_license_must_be_given(tmp_path: Path, wheel_cache: Path):
    repo = tmp_path / "nolicense"
    build_demo_repo(repo)
    out = tmp_path / "out"
    refused(package(repo, out, wheel_cache), out, "the license is unknown", "pass --license")
    result = package(repo, out, wheel_cache, "--license", "Apache-2.0")
    assert result.exit_code == 0, result.output
    assert parse_manifest((out / MANIFEST_FILE).read_bytes()).license == "Apache-2.0"
    assert re.search(r"pytest +added: the repository declares no pytest requirement", result.stdout)


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        (["--test-command", "make test"], "--test-command 'make test' must run pytest"),
        (["--python", "3.10"], "--python 3.10: the repository requires Python >=3.11"),
        (["--name", "Not A Name"], "--name 'Not A Name': use 1–64 of a-z"),
    ],
)
def test_bad_options_are_refused(
    tmp_path: Path,
    source: tuple[Path, list[str]],
    wheel_cache: Path,
    options: list[str],
    phrase: str,
):
    repo, _ = source
    out = tmp_path / "out"
    refused(package(repo, out, wheel_cache, *options), out, phrase)


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        (["--min-files", "6"], "min_files 6 is above max_files 5"),
        (["--max-lines", "0"], "--max-lines: Input should be greater than or equal to 1"),
        (["--domain", ""], "--domain: String should have at least 1 character"),
    ],
)
def test_option_values_out_of_bounds_are_usage_errors(
    tmp_path: Path,
    source: tuple[Path, list[str]],
    wheel_cache: Path,
    options: list[str],
    phrase: str,
):
    repo, _ = source
    out = tmp_path / "out"
    result = package(repo, out, wheel_cache, *options)
    assert result.exit_code == 2, result.output
    assert phrase in result.stderr
    assert not out.exists()


def test_out_must_be_in_an_existing_folder(
    tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path
):
    repo, _ = source
    out = tmp_path / "missing" / "out"
    result = package(repo, out, wheel_cache)
    assert result.exit_code == 1
    assert f"the folder {out.parent} does not exist" in result.stderr


def one_commit(tmp_path: Path, files: dict[str, str]) -> TreeFiles:
    repo = tmp_path / "repo"
    build_demo_repo(repo, [DemoCommit("Create the project", files)])
    return TreeFiles(repo / ".git")


@pytest.mark.parametrize(
    ("files", "name", "source"),
    [
        (
            {"pyproject.toml": '[project]\nname = "x"\nlicense = {text = "BSD-3-Clause"}\n'},
            "BSD-3-Clause",
            "pyproject.toml [project] license.text",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "x"\nclassifiers = '
                '["License :: OSI Approved :: MIT License", "Typing :: Typed"]\n'
            },
            "MIT License",
            "pyproject.toml [project] classifiers",
        ),
        (
            {"setup.cfg": "[metadata]\nname = x\nlicense = Apache-2.0\n"},
            "Apache-2.0",
            "setup.cfg [metadata] license",
        ),
        (
            {"LICENSE": "\n  The MIT License (MIT)\n\nCopyright (c) 2024 Someone\n"},
            "The MIT License (MIT)",
            "LICENSE heading",
        ),
    ],
)
def test_license_is_read_from_what_the_repository_declares(
    tmp_path: Path, files: dict[str, str], name: str, source: str
):
    found = infer_license(one_commit(tmp_path, files))
    assert found is not None
    assert (found.name, found.source) == (name, source)


def test_a_license_file_starting_with_a_copyright_line_names_no_license(tmp_path: Path):
    files = one_commit(tmp_path, {"LICENSE": "Copyright (c) 2024 Someone\n\nPermission is…\n"})
    assert infer_license(files) is None


def test_uncommitted_changes_are_not_packaged(
    tmp_path: Path, source: tuple[Path, list[str]], wheel_cache: Path
):
    repo, shas = source
    work = tmp_path / "work"
    shutil.copytree(repo, work)
    (work / "pyproject.toml").write_text("broken [", encoding="utf-8")
    out = tmp_path / "out"
    result = package(work, out, wheel_cache)
    assert result.exit_code == 0, result.output
    assert parse_manifest((out / MANIFEST_FILE).read_bytes()).head == shas[-1]
    assert (out / "repo" / "pyproject.toml").read_text(encoding="utf-8") == (
        repo / "pyproject.toml"
    ).read_text(encoding="utf-8")
