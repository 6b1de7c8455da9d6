"""Plan-diff alignment: known answers for each metric and for the undefined cases."""

import pytest

from engine.harness.alignment import score_alignment
from engine.harness.ast_diff import FileChange, diff_symbols
from engine.harness.plan import Plan, PlanPart, PlanStep

TESTS = ["tests/test_core.py"]


def _change(path: str, old: str | None, new: str | None) -> FileChange:
    status = "added" if old is None else "deleted" if new is None else "modified"
    symbols = diff_symbols(old, new) if path.endswith(".py") else None
    return FileChange(path=path, status=status, text=True, old=old, new=new, symbols=symbols)


CHANGES = [
    _change(
        "pkg/util.py",
        "def quiet():\n    pass\n",
        "def quiet():\n    pass\n\n\ndef shout():\n    pass\n",
    ),
    _change(
        "pkg/core.py",
        "class Engine:\n    def start(self):\n        return 1\n\n\ndef gone():\n    pass\n",
        "from pkg.util import shout\n\n\nclass Engine:\n    def start(self):\n        return 2\n",
    ),
    _change("README.md", "a\n", "b\n"),
    _change("tests/test_core.py", "def test_a():\n    pass\n", "def test_b():\n    pass\n"),
]


def _plan(*steps: tuple[str, list[str]]) -> Plan:
    """A plan with one part per step, in the given order."""
    return Plan(
        summary="s",
        parts=[
            PlanPart(
                id=f"p{n}",
                title=file,
                steps=[PlanStep(description="d", file=file, symbols=symbols)],
            )
            for n, (file, symbols) in enumerate(steps)
        ],
    )


def test_changed_symbols_of_the_fixture() -> None:
    core = CHANGES[1].symbols
    assert core is not None
    assert (core.modified, core.removed) == (["Engine.start"], ["gone"])


def test_perfect_plan_scores_one_everywhere() -> None:
    plan = _plan(("README.md", []), ("pkg/util.py", ["shout"]), ("pkg/core.py", ["Engine.start"]))
    result = score_alignment(plan, CHANGES, TESTS)
    assert result.file_precision == result.file_recall == 1.0
    assert result.symbol_precision == result.symbol_recall == 1.0
    assert result.order_agreement == 1.0
    assert (result.plan_files, result.changed_files, result.changed_symbols) == (3, 3, 2)
    assert result.order_pairs == 1


def test_wrong_file() -> None:
    plan = _plan(
        ("pkg/util.py", ["shout"]), ("pkg/core.py", ["Engine.start"]), ("pkg/other.py", ["x"])
    )
    result = score_alignment(plan, CHANGES, TESTS)
    assert result.file_precision == pytest.approx(2 / 3)
    assert result.file_recall == pytest.approx(2 / 3)
    assert result.symbol_precision == pytest.approx(2 / 3)
    assert result.symbol_recall == 1.0


def test_missing_symbol() -> None:
    plan = _plan(("pkg/util.py", ["shout"]), ("pkg/core.py", []), ("README.md", []))
    result = score_alignment(plan, CHANGES, TESTS)
    assert result.symbol_recall == 0.5
    assert result.symbol_precision == 1.0
    assert result.file_recall == 1.0


def test_class_prefix_counts_for_precision_only() -> None:
    plan = _plan(("pkg/util.py", ["shout"]), ("pkg/core.py", ["Engine"]))
    result = score_alignment(plan, CHANGES, TESTS)
    assert result.symbol_precision == 1.0
    assert result.symbol_recall == 0.5


def test_removed_symbols_are_right_but_not_required() -> None:
    plan = _plan(("pkg/util.py", ["shout", "quiet"]), ("pkg/core.py", ["Engine.start", "gone"]))
    result = score_alignment(plan, CHANGES, TESTS)
    assert result.symbol_precision == pytest.approx(3 / 4), "quiet is unchanged"
    assert result.symbol_recall == 1.0


def test_symbols_of_files_without_symbol_information_are_not_judged() -> None:
    plan = _plan(("README.md", ["intro"]), ("pkg/util.py", ["shout"]))
    result = score_alignment(plan, CHANGES, TESTS)
    assert (result.symbol_precision, result.plan_symbols) == (1.0, 1)


def test_reversed_order_scores_zero() -> None:
    plan = _plan(("pkg/core.py", ["Engine.start"]), ("pkg/util.py", ["shout"]), ("README.md", []))
    result = score_alignment(plan, CHANGES, TESTS)
    assert result.order_agreement == 0.0
    assert result.file_recall == result.symbol_recall == 1.0


def test_order_follows_part_dependencies_not_listing() -> None:
    core = PlanPart(
        id="core",
        title="c",
        depends_on=["util"],
        steps=[PlanStep(description="d", file="pkg/core.py")],
    )
    util = PlanPart(id="util", title="u", steps=[PlanStep(description="d", file="pkg/util.py")])
    assert (
        score_alignment(Plan(summary="s", parts=[core, util]), CHANGES, TESTS).order_agreement
        == 1.0
    )


def test_order_counts_transitive_imports_and_skips_unrelated_and_cyclic_pairs() -> None:
    changes = [
        _change("a.py", None, "import b\n"),
        _change("b.py", None, "import c\n"),
        _change("c.py", None, "x = 1\n"),
        _change("d.py", None, "y = 1\n"),
        _change("e.py", None, "import f\n"),
        _change("f.py", None, "import e\n"),
    ]
    plan = _plan(("c.py", []), ("a.py", []), ("d.py", []), ("b.py", []), ("f.py", []), ("e.py", []))
    result = score_alignment(plan, changes, [])
    assert result.order_pairs == 3
    assert result.order_agreement == pytest.approx(2 / 3)


def test_undefined_metrics_are_none() -> None:
    only_tests = [CHANGES[3]]
    plan = _plan(("tests/test_core.py", ["test_b"]))
    result = score_alignment(plan, only_tests, TESTS)
    assert result.file_precision is None, "the plan names no file outside the tests"
    assert result.file_recall is None, "the commit changes no file outside the tests"
    assert result.symbol_precision is None and result.symbol_recall is None
    assert result.order_agreement is None
    assert result.plan_files == result.changed_files == 0

    single = score_alignment(_plan(("pkg/util.py", [])), CHANGES, TESTS)
    assert single.order_agreement is None and single.order_pairs == 0
    assert single.symbol_precision is None, "the plan names no symbol"
    assert single.symbol_recall == 0.0
    assert single.file_precision == 1.0 and single.file_recall == pytest.approx(1 / 3)
