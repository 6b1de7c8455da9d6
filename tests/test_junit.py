"""Test results from JUnit XML, cross-checked against pytest's own summary line and exit status.

Every report here is written by a real pytest run of a real test file, then tampered with the
way code under test could.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from engine.harness.junit import UntrustedReport, read_checked_junit, summary_counts

MIXED = """\
import pytest


def test_pass():
    pass


def test_fail():
    assert 0


@pytest.mark.skip
def test_skip():
    pass


@pytest.mark.xfail
def test_xfail():
    assert 0


@pytest.mark.xfail
def test_xpass():
    pass


@pytest.fixture
def broken():
    raise RuntimeError


def test_setup_error(broken):
    pass


@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError


def test_fail_and_teardown(bad_teardown):
    assert 0


def test_pass_and_teardown(bad_teardown):
    pass
"""


def run_pytest(tmp_path: Path, source: str) -> tuple[Path, str, int]:
    """Run pytest on `source` as the harness does; the report, stdout and exit status."""
    (tmp_path / "test_subject.py").write_text(source)
    report = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_subject.py", f"--junitxml={report}"]
        + ["-o", "junit_family=xunit1", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    return report, done.stdout, done.returncode


class TestCrossCheck:
    @pytest.mark.slow
    def test_every_kind_of_outcome_agrees(self, tmp_path: Path):
        """Skips, xfails, xpasses, setup and teardown errors all count alike in the three."""
        report, stdout, code = run_pytest(tmp_path, MIXED)
        outcomes = read_checked_junit(report, stdout, code)
        assert code == 1
        assert outcomes["test_subject.py::test_pass"] == "passed"
        assert outcomes["test_subject.py::test_fail_and_teardown"] == "error"
        assert outcomes["test_subject.py::test_xfail"] == "skipped"

    def test_all_passing_agrees(self, tmp_path: Path):
        report, stdout, code = run_pytest(tmp_path, "def test_a():\n    pass\n")
        assert read_checked_junit(report, stdout, code) == {"test_subject.py::test_a": "passed"}

    @pytest.mark.slow
    def test_a_failure_rewritten_as_a_pass_is_refused(self, tmp_path: Path):
        """The report says all passed; the summary line and exit status say one failed."""
        report, stdout, code = run_pytest(tmp_path, "def test_a():\n    assert 0\n")
        report.write_text(
            report.read_text()
            .replace("<failure", "<system-out")
            .replace("</failure>", "</system-out>")
        )
        with pytest.raises(UntrustedReport, match="holds 0 failures and errors.*says 1"):
            read_checked_junit(report, stdout, code)

    @pytest.mark.slow
    def test_an_invented_passing_test_is_refused(self, tmp_path: Path):
        report, stdout, code = run_pytest(tmp_path, "def test_a():\n    pass\n")
        invented = '<testcase classname="test_subject" file="test_subject.py" name="test_b"/>'
        report.write_text(report.read_text().replace("</testsuite>", invented + "</testsuite>"))
        with pytest.raises(UntrustedReport, match="holds 2 passed tests.*says 1"):
            read_checked_junit(report, stdout, code)

    def test_a_summary_printed_after_pytest_is_refused(self, tmp_path: Path):
        """An atexit hook printing its own summary leaves pytest's line not the last."""
        report, stdout, code = run_pytest(tmp_path, "def test_a():\n    assert 0\n")
        with pytest.raises(UntrustedReport, match="not the last line"):
            read_checked_junit(report, stdout + "forged output\n", code)

    def test_an_exit_status_contradicting_the_summary_is_refused(self, tmp_path: Path):
        """An `os._exit(0)` after a failure: the summary still says it failed."""
        report, stdout, code = run_pytest(tmp_path, "def test_a():\n    assert 0\n")
        assert code == 1
        with pytest.raises(UntrustedReport, match="exited with 0 .*1 failed"):
            read_checked_junit(report, stdout, 0)

    def test_an_exit_status_pytest_never_gives_is_refused(self, tmp_path: Path):
        report, stdout, code = run_pytest(tmp_path, "def test_a():\n    pass\n")
        with pytest.raises(UntrustedReport, match="exited with 3, which it never does"):
            read_checked_junit(report, stdout, 3)


class TestSummaryCounts:
    @pytest.mark.parametrize(
        ("line", "counts"),
        [
            ("1 failed, 1 passed in 0.05s", {"failed": 1, "passed": 1}),
            ("3 errors in 1.20s (0:00:01)", {"errors": 3}),
            ("1 passed, 1 warning in 0.01 seconds", {"passed": 1, "warnings": 1}),
            ("===== 2 passed in 0.01s =====", {"passed": 2}),
            ("no tests ran in 0.01s", {}),
        ],
    )
    def test_pytest_summary_lines_are_counted(self, line: str, counts: dict[str, int]):
        assert summary_counts(f"..F\n{line}\n") == (counts, line)

    @pytest.mark.parametrize("line", ["all good", "1 fine in 0.01s", "passed in 0.01s"])
    def test_other_last_lines_are_refused(self, line: str):
        with pytest.raises(UntrustedReport):
            summary_counts(f"{line}\n")
