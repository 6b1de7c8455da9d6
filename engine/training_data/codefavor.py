"""CodeFavor preference pairs (LoRA Training Strategy §6.7): a symbol after the commit is preferred
to before.

For every function, method or class a commit modifies (it exists at the parent and at the
commit and its text differs, as `engine.harness.ast_diff` decides) in a changed Python file
outside the commit's test files: the prompt is the file's pre-commit text, the symbol's dotted
name and the task (the cleaned commit message, NL-to-code as §6.3 asks); chosen is the symbol's
source at the commit, rejected its source at the parent. A symbol's source runs from its first
decorator to its last line, indented as in the file; a name defined twice at one level (a
property and its setter) is both definitions in order.

A pair teaches code only where the two sides differ as code (issue 15): a symbol whose change is
docstrings, comments or layout only (`code_differs` finds no difference; for a class, in its own
code without the methods, which pair on their own) is skipped with the reason, as is a symbol
whose source carries an e-mail address (the file shown has its addresses redacted) and a pair
over the execute_code token budget, never truncated.
"""

import ast
import re
import warnings
from pathlib import Path

from engine.core.stages import TOKEN_BUDGET
from engine.harness.ast_diff import FileChange, commit_changes
from engine.harness.change_plan import cosmetic_symbols
from engine.mining.message import EMAIL, clean_task_text, redact_emails
from engine.training_data.harness_pairs import OVER_BUDGET, Lineage, Skip, pair_tokens
from engine.training_data.items import Message, TrainingItem
from engine.training_data.synthetic import SyntheticError

SYSTEM_PROMPT = """You are a software engineer working in a Python repository. You are given one \
file as it is before a change, the dotted name of a function, method or class in that file \
("Class.method" inside a class), and the task (a commit message). Rewrite that symbol so that it \
carries out the task.

Answer with the symbol's new source only: its whole definition, from its first decorator to its \
last line, indented as it is in the file. Write no other code, no explanation and no fences."""

NO_CODE_DIFFERENCE = "chosen and rejected differ only in docstrings, comments or layout"
PERSONAL_DATA = "the symbol's source carries an e-mail address"
_NEWLINE = re.compile(r"\r\n|\r|\n")
_SymbolNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def codefavor_pairs(
    repo: Path, parent: str, message: str, test_files: list[str], lineage: Lineage
) -> tuple[list[TrainingItem], list[Skip]]:
    """The CodeFavor pairs of commit `lineage.sha` (a child of `parent` in `repo`), in path and
    symbol order, and the symbols skipped (no code difference, over the token budget).
    `message` is the commit's message, raw or already cleaned."""
    task = clean_task_text(message)
    if not task:
        raise SyntheticError(f"commit {lineage.sha} has an empty message, so there is no task")
    items: list[TrainingItem] = []
    skips: list[Skip] = []
    for change in commit_changes(repo, parent, lineage.sha, exclude=set(test_files)):
        cosmetic = cosmetic_symbols(change)
        for name, old, new in _modified(change):
            reason = (
                NO_CODE_DIFFERENCE
                if name in cosmetic
                else PERSONAL_DATA
                if EMAIL.search(old) or EMAIL.search(new)
                else None
            )
            if reason is not None:
                skips.append(_skip(lineage, reason, f"{change.path}::{name}"))
                continue
            prompt = [
                Message(role="system", content=SYSTEM_PROMPT),
                Message(role="user", content=_user(change.path, change.old or "", name, task)),
            ]
            tokens = pair_tokens(prompt, new, old)
            if tokens > TOKEN_BUDGET["execute_code"]:
                budget = TOKEN_BUDGET["execute_code"]
                detail = f"{change.path}::{name}: {tokens} > {budget}"
                skips.append(_skip(lineage, OVER_BUDGET, detail))
                continue
            items.append(
                TrainingItem(
                    **lineage.model_dump(),
                    stage="execute_code",
                    kind="preference",
                    source="synthetic",
                    origin="codefavor",
                    prompt=prompt,
                    chosen=[Message(role="assistant", content=new)],
                    rejected=[Message(role="assistant", content=old)],
                )
            )
    return items, skips


def _modified(change: FileChange) -> list[tuple[str, str, str]]:
    """(dotted name, source at the parent, source at the commit) per modified symbol."""
    symbols = change.symbols
    if symbols is None or symbols.parse_error is not None or not symbols.modified:
        return []
    assert change.old is not None and change.new is not None, "a modified symbol has both sides"
    before, after = symbol_sources(change.old), symbol_sources(change.new)
    return [(name, before[name], after[name]) for name in symbols.modified]


def symbol_sources(source: str) -> dict[str, str]:
    """Each symbol `source` defines (as `ast_diff.symbol_texts` names them) and its whole
    source text; `source` must parse."""
    lines = _NEWLINE.split(source)
    found: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        module = ast.parse(source)
    _collect(module.body, "", lines, found)
    return found


def _collect(body: list[ast.stmt], prefix: str, lines: list[str], found: dict[str, str]) -> None:
    for node in body:
        if not isinstance(node, _SymbolNode):
            continue
        name = prefix + node.name
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        text = "\n".join(lines[first - 1 : node.end_lineno])
        found[name] = f"{found[name]}\n{text}" if name in found else text
        if isinstance(node, ast.ClassDef):
            _collect(node.body, f"{name}.", lines, found)


def _user(path: str, text: str, name: str, task: str) -> str:
    text = redact_emails(text)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    body = text if text.endswith("\n") else f"{text}\n"
    return (
        f"File {path} before the change:\n{fence}python\n{body}{fence}\n\n"
        f"Symbol to rewrite: {name}\n\nTask:\n{task}"
    )


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _skip(lineage: Lineage, reason: str, detail: str) -> Skip:
    """A CodeFavor pair of `lineage`'s commit left out, and why."""
    return Skip(
        package_digest=lineage.package_digest,
        sha=lineage.sha,
        what="codefavor pair",
        stage="execute_code",
        reason=reason,
        detail=detail,
    )
