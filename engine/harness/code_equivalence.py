"""Whether two Python sources differ as code: docstrings and comments do not count.

A preference pair teaches code only when its chosen and rejected sides differ in what runs
(issue 15: pairs that differed by a docstring's trailing period taught nothing). Comments never
reach the AST; docstrings (the first string statement of a module, class or function) are
dropped before the two trees are compared. Layout, quotes and parentheses never count either,
since the AST does not keep them.
"""

import ast
import textwrap
import warnings

from engine.core.errors import CraError

_Scope = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


class NotPython(CraError):
    """A source given for comparison does not parse as Python."""


def code_differs(old: str, new: str) -> bool:
    """True when `old` and `new` (whole files or one indented symbol) differ as code."""
    return _normalised(old, "old") != _normalised(new, "new")


def _normalised(source: str, side: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(textwrap.dedent(source))
    except SyntaxError as exc:
        raise NotPython(
            f"the {side} source does not parse as Python: {exc.msg} (line {exc.lineno})"
        ) from exc
    for node in ast.walk(tree):
        if isinstance(node, _Scope):
            _drop_docstring(node)
    return ast.dump(tree, annotate_fields=False)


def _drop_docstring(node: _Scope) -> None:
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        node.body = body[1:] or [ast.Pass()]
