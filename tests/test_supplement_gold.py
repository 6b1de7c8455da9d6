"""A gold commit whose own tests cannot judge its change tries later tests, as a code-only one.

Its tests pass at the parent already (a refactor with a test tweak, or attrs's 2016 tests that
no hypothesis importable on Python 3.11 can collect): a later commit's test that fails at the
parent and passes at the commit makes it a supplemented task; without one the unusable gold
validation stands, saying what was tried. Every run is real pytest in the harness sandbox.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
from package_commits import add_task_commit
from workspaces import HARNESS, open_workspace

from engine.core.workspace import Workspace
from engine.harness.supplement import validate_commit
from engine.intake.approval import approve_package

MURMUR = "def murmur(text: str) -> str:\n    return text.lower()\n"
TRAILING = MURMUR.replace("text.lower()", 'text.lower() + "..."')
SPELLED = TRAILING.replace('"..."', '"." * 3')
TEST_LOWER = (
    "from textkit.murmur import murmur\n\n\n"
    "def test_lower():\n    assert murmur('HI')[:2] == 'hi'\n"
)
TEST_TEXT = TEST_LOWER + "\n\ndef test_text():\n    assert murmur('HI').startswith('hi')\n"
TEST_TRAILS = TEST_TEXT + "\n\ndef test_trails():\n    assert murmur('HI') == 'hi...'\n"
TEST_STR = TEST_TRAILS + "\n\ndef test_str():\n    assert isinstance(murmur('x'), str)\n"


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]
) -> tuple[Workspace, str, dict[str, str]]:
    root = tmp_path_factory.mktemp("own-tests")
    package = copy_package(root)
    tests = ["tests/test_murmur.py"]
    shas = {
        "add": add_task_commit(
            package,
            {"textkit/murmur.py": MURMUR, "tests/test_murmur.py": TEST_LOWER},
            "Add murmur",
            tests,
        ),
        "trail": add_task_commit(
            package,
            {"textkit/murmur.py": TRAILING, "tests/test_murmur.py": TEST_TEXT},
            "Trail off when murmuring",
            tests,
        ),
        "test-trail": add_task_commit(
            package, {"tests/test_murmur.py": TEST_TRAILS}, "Test that murmur trails off", tests
        ),
        "spell": add_task_commit(
            package,
            {"textkit/murmur.py": SPELLED, "tests/test_murmur.py": TEST_STR},
            "Spell the trailing dots as a repeat",
            tests,
        ),
    }
    ws = open_workspace(root / "ws", HARNESS)
    return ws, approve_package(ws, package).digest, shas


def test_a_gold_commit_whose_tests_pass_at_its_parent_borrows_a_later_failing_test(
    history,
) -> None:
    ws, digest, shas = history
    report = validate_commit(ws, digest, shas["trail"])
    assert (report.status, report.validation) == ("usable", "supplemented")
    assert report.fail_to_pass == ["tests/test_murmur.py::test_trails"]
    assert report.tests_from == shas["test-trail"]
    assert report.reason.endswith("; its tests already pass at the parent")
    [row] = ws.db["tasks"].rows_where("sha = ?", [shas["trail"]])
    assert (row["status"], row["validation"], row["tests_from"]) == (
        "usable",
        "supplemented",
        shas["test-trail"],
    )
    assert (report.artifacts.parent / "gold" / "report.json").is_file()


def test_without_a_later_failing_test_the_gold_validation_stands(history) -> None:
    """Never structural: a commit whose own tests do not run may be broken, which no structural
    check would see. The reason says that later tests were looked for."""
    ws, digest, shas = history
    report = validate_commit(ws, digest, shas["spell"])
    assert (report.status, report.validation, report.reason_kind) == (
        "unusable",
        "gold",
        "already-passing",
    )
    assert report.reason == (
        "its tests already pass at the parent; no later commit changes a test file importing a "
        "changed module"
    )
    [row] = ws.db["tasks"].rows_where("sha = ?", [shas["spell"]])
    assert (row["status"], row["validation"], row["reason"]) == (
        "unusable",
        "gold",
        report.reason,
    )
