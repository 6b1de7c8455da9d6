"""pytest's account of a run (engine.harness.pytest_account), from real pytest runs in a tree."""

import subprocess
import sys
from pathlib import Path

from engine.harness.junit import JunitError, read_checked_junit
from engine.harness.pytest_account import EVIDENCE_MAX, RunAccount, account_run, evidence
from engine.isolation.sandbox import SandboxResult


def _run(tree: Path, files: dict[str, str]) -> RunAccount:
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text, encoding="utf-8")
    junit = tree / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "tests", f"--junitxml={junit}", "-p"]
    done = subprocess.run(
        [*argv, "no:cacheprovider", "-o", "junit_family=xunit1", "--continue-on-collection-errors"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = SandboxResult(
        returncode=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        timed_out=False,
        duration_s=1.0,
        stdout_truncated=False,
    )
    try:
        read_checked_junit(junit, done.stdout, done.returncode)
        junit_error = None
    except JunitError as exc:
        junit_error = str(exc)
    return account_run(result, junit, junit_error)


def test_a_crash_inside_a_test_is_not_a_configuration_error(tmp_path):
    """A test that kills the interpreter leaves no report and a traceback that is not pytest's
    configuration code: the run is untrusted, not a configuration error."""
    crash = "import os\n\n\ndef test_crash():\n    os.abort()\n"
    account = _run(tmp_path, {"tests/test_crash.py": crash})
    assert account.kind == "untrusted-report"
    assert "no JUnit XML report was written" in account.evidence


def test_pytest_refusing_its_configuration_is_a_configuration_error(tmp_path):
    """A `[pytest]` section in setup.cfg is refused by pytest before any test runs."""
    account = _run(
        tmp_path,
        {"setup.cfg": "[pytest]\naddopts = -q\n", "tests/test_a.py": "def test_a(): pass\n"},
    )
    assert account.kind == "config-error"
    assert account.evidence.startswith("Failed: [pytest] section in setup.cfg files is no longer")


def test_skip_reasons_and_collection_errors_are_noted_per_test(tmp_path):
    """A run that completes notes each test that did not pass with its telling line."""
    skipping = (
        'import pytest\n\n\n@pytest.mark.skip(reason="not \\u202ehere")\ndef test_s(): pass\n'
    )
    account = _run(
        tmp_path,
        {"tests/test_skip.py": skipping, "tests/test_broken.py": "import nowhere_module\n"},
    )
    assert account.kind is None
    assert account.notes["tests/test_skip.py::test_s"].line == "not \\u202ehere"
    broken = account.notes["tests/test_broken.py::tests.test_broken"]
    assert broken.collection and "No module named 'nowhere_module'" in broken.line


def test_evidence_is_one_neutralised_line_of_bounded_length():
    """Hostile output becomes one line with its control characters escaped, cut short."""
    line = evidence("a\x1b]0;title\x07\nb" + "x" * 1000)
    assert "\n" not in line and "\x1b" not in line and "\\x1b" in line
    assert len(line) == EVIDENCE_MAX and line.endswith("…")
