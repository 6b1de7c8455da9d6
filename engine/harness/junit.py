"""Test outcomes from pytest's JUnit XML report: the only source of results, never the console.

The report is written by code from a repo package, so it is parsed with expat (no external
entities, no DTD fetching) and every surprise is a JunitError naming the file.
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal, NamedTuple

from engine.core.errors import CraError

Outcome = Literal["passed", "failed", "error", "skipped"]
JUNIT_MAX_BYTES = 64 * 1024 * 1024
# A test reported twice (a failure, then an error in teardown) keeps its worse outcome.
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


class JunitError(CraError):
    """A JUnit XML report is missing, too large or not what pytest writes."""


def case_id(case: ET.Element) -> str:
    """`path/to/test_x.py::Class::name`, from the xunit1 `file` and `classname` attributes."""
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file")
    if not file:
        return f"{classname}::{name}" if classname else name
    module = file.removesuffix(".py").replace("/", ".")
    inner = classname.removeprefix(module).lstrip(".") if classname != module else ""
    return "::".join(part for part in (file, inner.replace(".", "::"), name) if part)


def _outcome(case: ET.Element) -> Outcome:
    tags = {child.tag for child in case}
    if "error" in tags:
        return "error"
    if "failure" in tags:
        return "failed"
    if "skipped" in tags:
        return "skipped"
    return "passed"


def _parse(path: Path) -> ET.Element:
    """The report's root element, checked to be what pytest writes."""
    if not path.is_file() or path.is_symlink():
        raise JunitError(f"{path}: no JUnit XML report was written")
    if path.stat().st_size > JUNIT_MAX_BYTES:
        raise JunitError(f"{path}: JUnit XML report is larger than {JUNIT_MAX_BYTES} bytes")
    if path.stat().st_size == 0:
        raise JunitError(f"{path}: no JUnit XML report was written")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise JunitError(f"{path}: not valid JUnit XML: {exc}") from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise JunitError(f"{path}: root element is <{root.tag}>, expected <testsuite(s)>")
    return root


def _outcomes(root: ET.Element) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for case in root.iter("testcase"):
        tid = case_id(case)
        outcome = _outcome(case)
        if tid not in outcomes or _RANK[outcome] > _RANK[outcomes[tid]]:
            outcomes[tid] = outcome
    return outcomes


class CaseNote(NamedTuple):
    """What the report says about a test that did not pass: its outcome, whether it is a
    module that could not be collected, and the line that says why (raw, untrusted text)."""

    outcome: Outcome
    collection: bool
    line: str


def _telling_line(case: ET.Element) -> str:
    """The skip reason of a skipped test; the first `E   ` line of a failure or error (the
    exception pytest shows), else its message, else the first line of its text."""
    for child in case:
        if child.tag not in ("skipped", "failure", "error"):
            continue
        message = child.get("message", "")
        lines = [line.strip() for line in (child.text or "").splitlines() if line.strip()]
        if child.tag == "skipped" and message:
            return message
        raised = [line.removeprefix("E").strip() for line in lines if line.startswith("E ")]
        if raised:
            return raised[0]
        if message and message != "collection failure":
            return message
        return lines[0] if lines else message
    return ""


def read_notes(path: Path) -> dict[str, CaseNote]:
    """Each test in the report at `path` that did not pass, with why (see CaseNote)."""
    notes: dict[str, CaseNote] = {}
    for case in _parse(path).iter("testcase"):
        outcome = _outcome(case)
        tid = case_id(case)
        if outcome == "passed" or (tid in notes and _RANK[notes[tid].outcome] >= _RANK[outcome]):
            continue
        collection = any(child.get("message") == "collection failure" for child in case)
        notes[tid] = CaseNote(outcome, collection, _telling_line(case))
    return notes


def read_junit(path: Path) -> dict[str, Outcome]:
    """Outcome of every test case in the report at `path`, by test id."""
    return _outcomes(_parse(path))


class UntrustedReport(JunitError):
    """The JUnit report, pytest's summary line and its exit status do not tell one story."""


class _Counts(NamedTuple):
    passed: int
    bad: int


_SUMMARY = re.compile(r"^(?:=+ )?(?P<counts>.+?) in [\d.]+(?:s| seconds)(?: \([^)]*\))?(?: =+)?$")
_COUNT = re.compile(r"^(\d+) (\w+)$")
_SUMMARY_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "errors",
    "errors": "errors",
    "skipped": "skipped",
    "deselected": "deselected",
    "xfailed": "xfailed",
    "xpassed": "xpassed",
    "warning": "warnings",
    "warnings": "warnings",
    "rerun": "rerun",
}
_PYTEST_EXIT = {0: "all passed", 1: "some failed", 2: "interrupted", 5: "no tests ran"}


def summary_counts(stdout: str) -> tuple[dict[str, int], str]:
    """pytest's closing summary line, counted by word ("passed", "failed", "errors"…).

    The line must be the last one printed: output after it did not come from pytest.
    Raises UntrustedReport when it is missing or not what pytest prints.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    match = _SUMMARY.match(lines[-1]) if lines else None
    if match is None:
        raise UntrustedReport("pytest's summary line is not the last line of its output")
    counts: dict[str, int] = {}
    text = match.group("counts")
    if text in ("no tests ran", "no tests collected"):
        return counts, lines[-1]
    for part in text.split(", "):
        found = _COUNT.match(part)
        if found is None or found.group(2) not in _SUMMARY_WORDS:
            raise UntrustedReport(f"pytest's summary line {lines[-1]!r} is not one pytest prints")
        counts[_SUMMARY_WORDS[found.group(2)]] = int(found.group(1))
    return counts, lines[-1]


def _junit_counts(root: ET.Element) -> _Counts:
    """Test cases with no failure, error or skip (passed) and failure plus error elements."""
    passed = bad = 0
    for case in root.iter("testcase"):
        tags = [child.tag for child in case]
        bad += tags.count("failure") + tags.count("error")
        passed += not any(tag in ("failure", "error", "skipped") for tag in tags)
    return _Counts(passed=passed, bad=bad)


def cross_check(root: ET.Element, stdout: str, returncode: int) -> None:
    """Refuse a report that pytest's own summary line or exit status contradicts.

    The three come from one process the tested code runs in, so each alone can be rewritten
    (an atexit hook rewriting the report, say); forging all three consistently is what a run
    must take to pass as something it was not. Failures plus errors must match exactly; a
    test that passed and then failed its teardown is reported as passed in the summary and as
    an error in the report, so the report may count up to `errors` fewer passes, never more.
    Raises UntrustedReport naming the disagreement.
    """
    counts, line = summary_counts(stdout)
    report = _junit_counts(root)
    said_bad = counts.get("failed", 0) + counts.get("errors", 0)
    said_passed = counts.get("passed", 0) + counts.get("xpassed", 0)
    if returncode not in _PYTEST_EXIT:
        raise UntrustedReport(f"pytest exited with {returncode}, which it never does by itself")
    if report.bad != said_bad:
        raise UntrustedReport(
            f"the JUnit report holds {report.bad} failures and errors, pytest's summary "
            f"{line!r} says {said_bad}"
        )
    if not 0 <= said_passed - report.passed <= counts.get("errors", 0):
        raise UntrustedReport(
            f"the JUnit report holds {report.passed} passed tests, pytest's summary "
            f"{line!r} says {said_passed}"
        )
    ran = said_passed + said_bad + counts.get("skipped", 0) + counts.get("xfailed", 0)
    consistent = {0: said_bad == 0 and ran > 0, 1: said_bad > 0, 2: counts.get("errors", 0) > 0}
    if not consistent.get(returncode, ran == 0):
        raise UntrustedReport(
            f"pytest exited with {returncode} ({_PYTEST_EXIT[returncode]}) but its summary "
            f"says {line!r}"
        )


def read_checked_junit(path: Path, stdout: str, returncode: int) -> dict[str, Outcome]:
    """`read_junit`, once `cross_check` has found the report agrees with pytest's own word."""
    root = _parse(path)
    cross_check(root, stdout, returncode)
    return _outcomes(root)
