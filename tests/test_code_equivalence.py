"""Code equivalence: docstrings, comments and layout never make two sources differ."""

import pytest

from engine.harness.code_equivalence import NotPython, code_differs


def test_docstring_punctuation_is_no_difference():
    """A docstring's trailing period or "Raises" -> "Raises:" is not a code change."""
    old = 'def f(x):\n    """Return x.\n\n    Raises\n    """\n    return x\n'
    new = 'def f(x):\n    """Return x\n\n    Raises:\n    """\n    return x\n'
    assert not code_differs(old, new)


def test_comments_and_layout_are_no_difference():
    """Comments, blank lines and line breaks inside brackets are not code."""
    old = "def f(a, b):\n    return (a +\n            b)\n"
    new = "def f(a, b):\n    # add them\n\n    return a + b\n"
    assert not code_differs(old, new)


def test_a_changed_expression_is_a_difference():
    """A changed operator is a code change."""
    assert code_differs("def f(a, b):\n    return a + b\n", "def f(a, b):\n    return a - b\n")


def test_an_indented_method_is_compared_as_code():
    """A method given with its class indentation is dedented, and a removed docstring leaves
    a body (a docstring-only function equals `pass`)."""
    old = '    def m(self):\n        """Doc."""\n'
    new = "    def m(self):\n        pass\n"
    assert not code_differs(old, new)
    assert code_differs(old, "    def m(self):\n        return 1\n")


def test_a_string_that_is_not_a_docstring_counts():
    """Only the first string statement of a body is its docstring."""
    old = 'def f():\n    x = 1\n    "not a docstring"\n'
    new = "def f():\n    x = 1\n"
    assert code_differs(old, new)


def test_source_that_does_not_parse_is_named():
    """A side that is not Python is refused with which side and why."""
    with pytest.raises(NotPython, match="the new source does not parse"):
        code_differs("x = 1\n", "def (:\n")
