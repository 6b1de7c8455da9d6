"""Gold validation says truly why a commit is unusable, and runs only what the repository's own
pytest configuration collects.

Each case is a commit on top of the demo package, gold-validated by real pytest runs in the
sandbox: a test skipped on this Python, a `setup.cfg` pytest refuses, a marker the configuration
does not register, a plugin that is not installed, a test module that cannot be imported, a
data file under tests/, a module that cannot be collected at the parent, a run past the limit.
A commit that leaves a broken configuration or test module behind is followed by one that
mends it (not a task), so the next task's parent runs and the package's dry run passes.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from package_commits import add_task_commit

from engine.core.workspace import Workspace
from engine.demo.hostile import commit_files
from engine.demo.repo import PYPROJECT
from engine.harness.task_validation import TaskValidation, validate_task
from engine.intake.approval import approve_package

PLAIN_INI = "[pytest]\npythonpath = .\ntestpaths = tests\n"

SKIPPED_ON_THIS_PYTHON = """\
import sys

import pytest


def test_still_true():
    assert True


@pytest.mark.skipif(sys.version_info < (3, 99), reason="needs Python 3.99's new slugs")
def test_new_slugs():
    assert False
"""

SHOUT = 'def shout(text: str) -> str:\n    return text.upper() + "!"\n'
TEST_SHOUT = (
    "from textkit.shout import shout\n\n\ndef test_shout():\n    assert shout('hi') == 'HI!'\n"
)
WHISPER = "def whisper(text: str) -> str:\n    return text.lower() + '...'\n"
TEST_WHISPER = (
    "from textkit.whisper import whisper\n\n\ndef test_whisper():\n"
    "    assert whisper('HI') == 'hi...'\n"
)
CLOSES_OUTPUT = (
    "import sys\n\n\ndef test_closes():\n    sys.__stdout__.close()\n    sys.__stderr__.close()\n"
)
TEST_SLUG_MORE = (
    "from textkit.slug import slugify\n\n\ndef test_two_words():\n"
    "    assert slugify('Two Words') == 'two-words'\n"
)


def _mend(package: Path) -> None:
    commit_files(
        package,
        {"pyproject.toml": PYPROJECT, "setup.cfg": "[metadata]\nname = textkit\n"}
        | {"pytest.ini": PLAIN_INI},
        "Mend the pytest configuration",
    )


@pytest.fixture(scope="module")
def cases(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> tuple[Workspace, str, dict[str, str]]:
    """One approved package holding every case; case name → its commit's sha."""
    root = tmp_path_factory.mktemp("reasons")
    package = copy_package(root)
    shas = {}
    shas["skipped"] = add_task_commit(
        package,
        {"tests/test_future.py": SKIPPED_ON_THIS_PYTHON},
        "Cover slugs of the next Python",
        ["tests/test_future.py"],
    )
    shas["old setup.cfg"] = add_task_commit(
        package,
        {
            "pyproject.toml": PYPROJECT.split("[tool.pytest")[0],
            "setup.cfg": "[pytest]\naddopts = -q\n",
            "tests/test_oldcfg.py": "def test_ok():\n    assert True\n",
        },
        "Configure pytest in setup.cfg",
        ["tests/test_oldcfg.py"],
    )
    _mend(package)
    shas["unknown marker"] = add_task_commit(
        package,
        {
            "pytest.ini": PLAIN_INI + "addopts = --strict-markers\n",
            "tests/test_marked.py": "import pytest\n\n\n@pytest.mark.slowish\n"
            "def test_marked():\n    assert True\n",
        },
        "Mark a slow test",
        ["tests/test_marked.py"],
    )
    _mend(package)
    shas["missing plugin"] = add_task_commit(
        package,
        {
            "pytest.ini": PLAIN_INI + "addopts = -p pytest_nosuchplugin\n",
            "tests/test_plugged.py": "def test_plugged():\n    assert True\n",
        },
        "Use a plugin",
        ["tests/test_plugged.py"],
    )
    _mend(package)
    shas["collection error"] = add_task_commit(
        package,
        {"tests/test_imports.py": "import no_such_module\n\n\ndef test_a():\n    assert True\n"},
        "Test with a module that is not there",
        ["tests/test_imports.py"],
    )
    commit_files(package, {"tests/test_imports.py": "def test_a():\n    assert True\n"})
    shas["data file"] = add_task_commit(
        package,
        {
            "pytest.ini": PLAIN_INI + "norecursedirs = data\n",
            "textkit/shout.py": SHOUT,
            "tests/test_shout.py": TEST_SHOUT,
            "tests/cases/shout_case.py": 'shout("hi"\n# output\nHI!\n',
            "tests/data/test_data_case.py": "def test_case():\n    assert False\n",
        },
        "Add shout",
        ["tests/test_shout.py", "tests/cases/shout_case.py", "tests/data/test_data_case.py"],
    )
    shas["parent collection"] = add_task_commit(
        package,
        {
            "textkit/whisper.py": WHISPER,
            "tests/test_whisper.py": TEST_WHISPER,
            "tests/test_slug_more.py": TEST_SLUG_MORE,
        },
        "Add whisper",
        ["tests/test_whisper.py", "tests/test_slug_more.py"],
    )
    shas["broken output"] = add_task_commit(
        package,
        {"tests/test_closes_output.py": CLOSES_OUTPUT},
        "Test a logger that closes its streams",
        ["tests/test_closes_output.py"],
    )
    commit_files(package, {"tests/test_closes_output.py": "def test_a():\n    assert True\n"})
    shas["timeout"] = add_task_commit(
        package,
        {"tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(600)\n"},
        "Add a slow test",
        ["tests/test_slow.py"],
    )
    ws_root = root / "ws"
    ws_root.mkdir()
    (ws_root / "cra.toml").write_text(
        "[harness]\nflaky_runs = 1\ntest_timeout_s = 20\n", encoding="utf-8"
    )
    ws = Workspace.open(ws_root)
    return ws, approve_package(ws, package).digest, shas


def _validate(cases: tuple[Workspace, str, dict[str, str]], name: str) -> TaskValidation:
    ws, digest, shas = cases
    return validate_task(ws, digest, shas[name])


def test_a_test_skipped_on_this_python_is_not_already_passing(cases):
    """A commit whose only new test is skipped here (it needs a newer Python) is unusable because
    it is skipped, quoting pytest's skip reason, not because its tests pass at the parent."""
    report = _validate(cases, "skipped")
    assert (report.status, report.reason_kind) == ("unusable", "skipped")
    assert "tests/test_future.py::test_new_slugs" in report.reason
    assert "needs Python 3.99's new slugs" in report.reason
    assert report.pass_to_pass == ["tests/test_future.py::test_still_true"]


def test_a_setup_cfg_pytest_refuses_is_a_configuration_error(cases):
    """pytest refusing the repository's configuration (a `[pytest]` section in setup.cfg) is a
    configuration error quoting pytest's own line, not a missing JUnit report."""
    report = _validate(cases, "old setup.cfg")
    assert (report.status, report.reason_kind) == ("unusable", "config-error")
    assert report.reason.startswith("pytest stopped at the commit before running any test")
    assert "[pytest] section in setup.cfg files is no longer supported" in report.reason
    assert "JUnit" not in report.reason


def test_an_unregistered_marker_is_named(cases):
    """A test module using a marker the configuration does not register (with
    --strict-markers) is reported as such, with pytest's line, not as failing tests."""
    report = _validate(cases, "unknown marker")
    assert (report.status, report.reason_kind) == ("unusable", "unknown-marker")
    assert "'slowish' not found in `markers` configuration option" in report.reason
    assert "tests/test_marked.py" in report.reason


def test_a_plugin_that_is_not_installed_is_named(cases):
    """A plugin the configuration loads (`-p` in addopts) that is not installed is a missing
    plugin, naming it."""
    report = _validate(cases, "missing plugin")
    assert (report.status, report.reason_kind) == ("unusable", "missing-plugin")
    assert 'Error importing plugin "pytest_nosuchplugin"' in report.reason


def test_a_module_that_cannot_be_collected_is_a_collection_error(cases):
    """A test module that cannot be imported at the commit is a collection error quoting the
    exception, not 'none of its tests passes'."""
    report = _validate(cases, "collection error")
    assert (report.status, report.reason_kind) == ("unusable", "collection-error")
    assert "ModuleNotFoundError: No module named 'no_such_module'" in report.reason


def test_data_files_under_tests_are_never_run_as_test_modules(cases):
    """Files the repository's pytest would not collect (a data file not named like a test; a
    test-named file under a folder `norecursedirs` skips) are not given to pytest: the commit is
    usable on its real test, and the report says what it left out and why."""
    report = _validate(cases, "data file")
    assert report.status == "usable", report.reason
    assert report.fail_to_pass == ["tests/test_shout.py::test_shout"]
    assert report.pass_to_pass == []
    assert "python_files" in report.not_collected["tests/cases/shout_case.py"]
    assert "norecursedirs" in report.not_collected["tests/data/test_data_case.py"]


def test_a_module_not_collected_at_the_parent_hides_no_other_tests(cases):
    """At the parent, a test module importing what the commit adds cannot be collected; the
    commit's other test modules still run there, so their tests that pass on both sides are
    PASS_TO_PASS, not FAIL_TO_PASS."""
    report = _validate(cases, "parent collection")
    assert report.status == "usable", report.reason
    assert report.fail_to_pass == ["tests/test_whisper.py::test_whisper"]
    assert report.pass_to_pass == ["tests/test_slug_more.py::test_two_words"]


def test_a_run_that_breaks_pytests_own_output_is_untrusted_with_its_last_words(cases):
    """Tests that close the process's streams leave pytest without its summary line (structlog's
    history has one): the run is not trusted, and the reason quotes the last line the process
    wrote on stderr, not only the missing summary."""
    report = _validate(cases, "broken output")
    assert (report.status, report.reason_kind) == ("unusable", "untrusted-report")
    assert report.reason.startswith("the tests at the commit gave no trustworthy result: ")
    assert "pytest's summary line is not the last line of its output" in report.reason
    assert report.reason.endswith('its stderr ends: "lost sys.stderr"')


@pytest.mark.slow
def test_a_run_past_the_limit_is_a_timeout(cases):
    """Tests past `test_timeout_s` make the commit unusable as a timeout."""
    report = _validate(cases, "timeout")
    assert (report.status, report.reason_kind) == ("unusable", "timeout")
    assert report.reason.startswith("the tests at the commit ran past the time limit of 20s")


def test_a_report_written_before_reason_kinds_still_loads():
    """report.json files written before reasons had kinds (no `reason_kind`, `not_collected` or
    runs' `account`) load, with no kind."""
    old = {
        "task": "abc-def",
        "package_digest": "a" * 64,
        "sha": "b" * 40,
        "parent": "c" * 40,
        "subject": "Fix it",
        "status": "unusable",
        "reason": "its tests already pass at the parent",
        "test_files": ["tests/test_a.py"],
        "fail_to_pass": [],
        "pass_to_pass": ["tests/test_a.py::test_a"],
        "flaky": [],
        "runs": [
            {
                "side": side,
                "index": 1,
                "returncode": 0,
                "timed_out": False,
                "duration_s": 0.5,
                "outcomes": {"tests/test_a.py::test_a": "passed"},
                "junit_error": None,
            }
            for side in ("before", "after")
        ],
        "env_key": "e",
        "artifacts": "/runs/abc-def/gold",
    }
    report = TaskValidation.model_validate_json(json.dumps(old))
    assert (report.reason_kind, report.not_collected) == (None, {})
    assert all(run.account is None for run in report.runs)
