"""The harness's test runs are sandboxed: a hanging test is stopped, a network test cannot connect.

A commit's own tests are what the harness runs, so the hostile behaviour is committed into the
demo package's history and validated like any other task.
"""

import json
import socket
from pathlib import Path

import pytest
from package_commits import add_task_commit
from workspaces import open_workspace

from engine.harness.task_validation import validate_task
from engine.intake.approval import approve_package

SLEEPER = """\
import time

from textkit.slug import slugify


def test_sleeps_forever():
    while True:
        time.sleep(1)
"""

CONNECTS = """\
import socket


def test_reaches_the_listener():
    with socket.create_connection(("127.0.0.1", {port}), timeout=2):
        pass
"""


def _commit_test(package: Path, name: str, text: str, subject: str) -> str:
    return add_task_commit(
        package, {name: text}, subject, [name], "test_plan", "2024-04-01T10:00:00Z"
    )


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


@pytest.mark.slow
def test_a_hanging_test_is_stopped_and_a_connecting_test_fails(
    tmp_path: Path, valid_package: Path, listener: int
) -> None:
    package = valid_package
    sleeper = _commit_test(package, "tests/test_sleeper.py", SLEEPER, "Add a test that hangs")
    connects = _commit_test(
        package,
        "tests/test_connects.py",
        CONNECTS.format(port=listener),
        "Add a test that needs the network",
    )
    ws = open_workspace(tmp_path / "ws", "[harness]\nflaky_runs = 1\ntest_timeout_s = 3\n")
    digest = approve_package(ws, package).digest

    hung = validate_task(ws, digest, sleeper)
    assert hung.status == "unusable"
    assert hung.reason == "the tests at the commit ran past the time limit of 3s (test_timeout_s)"
    assert hung.reason_kind == "timeout"
    assert all(run.timed_out and run.duration_s < 10 for run in hung.runs)

    offline = validate_task(ws, digest, connects)
    assert offline.status == "unusable"
    assert offline.reason_kind == "failing", offline.reason
    assert offline.reason.startswith("none of its tests passes at the commit; ")
    assert "Connection refused" in offline.reason
    [after] = [run for run in offline.runs if run.side == "after"]
    assert after.outcomes == {"tests/test_connects.py::test_reaches_the_listener": "failed"}
    output = (offline.artifacts / "after-1" / "output.txt").read_text()
    assert "Connection refused" in output, "the sandbox's own loopback has no listener"
    assert json.loads((offline.artifacts / "report.json").read_text())["status"] == "unusable"


FORGED_MODULE = '''\
"""Present only at the commit, so the test module imports only there."""
'''

# Registered only where the commit's module imports (at the commit, not at the parent): after
# pytest wrote its report and exited 1, the hook rewrites the report to say both tests passed.
FORGER = """\
import atexit
import sys

from textkit import forged

REPORT = (
    '<testsuites><testsuite name="pytest" tests="2">'
    '<testcase classname="tests.test_forger" file="tests/test_forger.py" name="test_passes"/>'
    '<testcase classname="tests.test_forger" file="tests/test_forger.py" name="test_never_passes"/>'
    "</testsuite></testsuites>"
)


def _forge():
    target = next(arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--junitxml="))
    with open(target, "w") as report:
        report.write(REPORT)


atexit.register(_forge)


def test_passes():
    assert forged


def test_never_passes():
    assert False
"""


@pytest.mark.slow
def test_a_report_rewritten_by_the_tested_code_is_not_trusted(
    tmp_path: Path, valid_package: Path
) -> None:
    """A report rewritten by an atexit hook is caught: pytest's summary and exit say 1 failed."""
    package = valid_package
    files = {"textkit/forged.py": FORGED_MODULE, "tests/test_forger.py": FORGER}
    subject = "Add a module whose test forges its report"
    sha = add_task_commit(package, files, subject, ["tests/test_forger.py"])
    ws = open_workspace(tmp_path / "ws", "[harness]\nflaky_runs = 1\n")
    digest = approve_package(ws, package).digest

    report = validate_task(ws, digest, sha)

    assert report.status == "unusable"
    assert report.fail_to_pass == []
    assert report.reason.startswith("the tests at the commit gave no trustworthy result: ")
    assert "holds 0 failures and errors" in report.reason
    assert "'1 failed, 1 passed" in report.reason
    [after] = [run for run in report.runs if run.side == "after"]
    assert after.returncode == 1
    forged = (report.artifacts / "after-1" / "junit.xml").read_text()
    assert 'name="test_never_passes"/>' in forged, "the hook did rewrite the report"
