"""Test outcomes from pytest's JUnit XML report: the only source of results, never the console.

The report is written by code from a repo package, so it is parsed with expat (no external
entities, no DTD fetching) and every surprise is a JunitError naming the file.
"""

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from engine.errors import CraError

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


def read_junit(path: Path) -> dict[str, Outcome]:
    """Outcome of every test case in the report at `path`, by test id."""
    if not path.is_file() or path.is_symlink():
        raise JunitError(f"{path}: no JUnit XML report was written")
    if path.stat().st_size > JUNIT_MAX_BYTES:
        raise JunitError(f"{path}: JUnit XML report is larger than {JUNIT_MAX_BYTES} bytes")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise JunitError(f"{path}: not valid JUnit XML: {exc}") from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise JunitError(f"{path}: root element is <{root.tag}>, expected <testsuite(s)>")
    outcomes: dict[str, Outcome] = {}
    for case in root.iter("testcase"):
        tid = case_id(case)
        outcome = _outcome(case)
        if tid not in outcomes or _RANK[outcome] > _RANK[outcomes[tid]]:
            outcomes[tid] = outcome
    return outcomes
