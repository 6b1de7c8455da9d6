"""Symbols a change adds, from an AST comparison of a Python file before and after.

Symbols are top-level functions and classes and the methods of classes (`Class.method`). A version
that does not parse as Python 3 (old Python 2 code) contributes no symbols: nothing is claimed new
that cannot be seen to be new.
"""

import ast
import warnings


def defined_symbols(source: bytes) -> set[str] | None:
    """Names of the functions, classes and methods `source` defines; None if it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    _collect(tree.body, "", names)
    return names


def _collect(body: list[ast.stmt], prefix: str, names: set[str]) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(prefix + node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(prefix + node.name)
            _collect(node.body, f"{prefix}{node.name}.", names)


def added_symbols(old: bytes | None, new: bytes | None) -> set[str]:
    """Symbols defined in `new` and not in `old` (None: the file is absent on that side)."""
    after = defined_symbols(new) if new is not None else set()
    before = defined_symbols(old) if old is not None else set()
    if after is None or before is None:
        return set()
    return after - before
