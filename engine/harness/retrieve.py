"""The planner's context: the index's files ranked against the instruction, fitted to a budget.

Ranking: the instruction's terms (words split at `_`, `.`, `/` and camelCase humps, lowercased,
a plural `s` dropped, stopwords and terms under three characters left out) are matched against
each file's path parts (weight 3), symbol names (weight 2) and docstring (weight 1); files with
the higher score come first, ties in path order. A file with a score above zero is *relevant*.

Fitting, in this order, each step taking a file only if the whole text still fits the budget:
the top-ranked file's outline (if even that does not fit, the budget is refused); full sources
of relevant files in rank order, together at most half the budget; outlines of the other files
in rank order; then full sources of the remaining relevant files with what is left. A file
shown in full must be UTF-8 text, since edits can only change such files. The text always names
the files left out for the budget; nothing is cut silently.

Token counts are estimates (see `count_tokens`): no tokenizer is downloaded or bundled.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from engine.harness.package import HarnessError
from engine.harness.repo_index import FileEntry, RepoIndex

BYTES_PER_TOKEN = 3
PATH_WEIGHT = 3
SYMBOL_WEIGHT = 2
DOCSTRING_WEIGHT = 1
FULL_SOURCE_SHARE = 0.5
MIN_TERM_LENGTH = 3
LEFT_OUT = "left out for the token budget: "

_WORD = re.compile(r"[A-Za-z0-9]+")
_HUMP = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "into",
        "onto",
        "that",
        "this",
        "these",
        "those",
        "when",
        "then",
        "than",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "not",
        "but",
        "can",
        "its",
        "also",
        "all",
        "any",
        "via",
        "per",
        "use",
        "used",
        "using",
        "should",
        "would",
        "could",
    ]
)

Mode = Literal["full", "outline", "omitted"]


def count_tokens(text: str) -> int:
    """An estimate of `text`'s token count: its UTF-8 bytes divided by 3, rounded up.

    BPE tokenizers of current code models (GPT-4's cl100k, Llama 3, Qwen 2) average about 3.5 to
    4.5 bytes per token on Python source and English prose, so dividing by 3 errs high: a context
    counted within the budget fits the model's window, at the cost of using a little less of it.
    Counting bytes rather than characters keeps non-Latin text (about one token per character,
    two to four bytes each) from being undercounted. It is additive, which lets `select_context`
    track a growing text's count exactly without re-rendering it.
    """
    return _tokens(len(text.encode("utf-8")))


def _tokens(size: int) -> int:
    return -(-size // BYTES_PER_TOKEN)


class Context(BaseModel):
    """The rendered context and exactly which files it shows in full, as outline, or not at all
    (each list in rank order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    tokens: int
    budget: int
    full_files: list[str]
    outline_files: list[str]
    omitted_files: list[str]

    @model_validator(mode="after")
    def _within_budget(self) -> "Context":
        if self.tokens != count_tokens(self.text):
            raise ValueError(
                f"tokens is {self.tokens}, but the text counts {count_tokens(self.text)}"
            )
        if self.tokens > self.budget:
            raise ValueError(f"the text counts {self.tokens} tokens, over the budget {self.budget}")
        return self


def terms(text: str) -> set[str]:
    """The ranking terms of `text` (see the module docstring)."""
    found = set()
    for word in _WORD.findall(text):
        for hump in _HUMP.findall(word):
            term = hump.lower()
            if term.endswith("s") and not term.endswith("ss") and len(term) > MIN_TERM_LENGTH:
                term = term[:-1]
            if len(term) >= MIN_TERM_LENGTH and term not in _STOPWORDS:
                found.add(term)
    return found


def score(entry: FileEntry, wanted: set[str]) -> int:
    """How relevant `entry` is to an instruction with the terms `wanted`."""
    symbol_terms = set().union(*(terms(s.name) for s in entry.symbols))
    return (
        PATH_WEIGHT * len(wanted & terms(entry.path))
        + SYMBOL_WEIGHT * len(wanted & symbol_terms)
        + DOCSTRING_WEIGHT * len(wanted & terms(entry.docstring))
    )


def rank(index: RepoIndex, instruction: str) -> list[tuple[FileEntry, int]]:
    """Every indexed file with its score, the most relevant first, ties in path order."""
    wanted = terms(instruction)
    scored = [(entry, score(entry, wanted)) for entry in index.files]
    return sorted(scored, key=lambda pair: (-pair[1], pair[0].path))


def select_context(index: RepoIndex, tree: Path, instruction: str, budget_tokens: int) -> Context:
    """The context for `instruction` from the files of `index` (read from `tree`), within
    `budget_tokens` (see the module docstring); a budget that cannot hold even the top-ranked
    file's outline is a HarnessError."""
    if budget_tokens < 1:
        raise HarnessError(
            f"the context token budget must be at least 1 token, not {budget_tokens}"
        )
    ranked = rank(index, instruction)
    if not ranked:
        return _empty_context(budget_tokens)
    fit = _Fit(budget=budget_tokens, header=_header(len(ranked)), paths=[e.path for e, _ in ranked])
    outlines = {entry.path: _outline(entry) for entry, _ in ranked}
    sources = {entry.path: _full(tree, entry) for entry, points in ranked if points > 0}
    top = ranked[0][0].path
    if not fit.take(top, "outline", outlines[top]):
        raise HarnessError(
            f"the context token budget of {budget_tokens} tokens cannot hold even the outline of "
            f"the top-ranked file {top}: that needs {fit.tokens_with(top, outlines[top])} tokens "
            f"(with the list of the {len(ranked) - 1} other files left out); raise "
            "harness.context_token_budget in cra.toml"
        )
    full_limit = int(budget_tokens * FULL_SOURCE_SHARE)
    for path, section in sources.items():
        if section is not None:
            fit.take(path, "full", section, full_limit=full_limit)
    for entry, _ in ranked:
        if fit.mode[entry.path] == "omitted":
            fit.take(entry.path, "outline", outlines[entry.path])
    for path, section in sources.items():
        if section is not None and fit.mode[path] != "full":
            fit.take(path, "full", section)
    return _context(fit.render(), budget_tokens, [e.path for e, _ in ranked], fit.mode)


def _context(text: str, budget: int, order: list[str], mode: dict[str, Mode]) -> Context:
    return Context(
        text=text,
        tokens=count_tokens(text),
        budget=budget,
        full_files=[p for p in order if mode[p] == "full"],
        outline_files=[p for p in order if mode[p] == "outline"],
        omitted_files=[p for p in order if mode[p] == "omitted"],
    )


def _empty_context(budget: int) -> Context:
    text = "Repository context: the worktree has no Python files.\n"
    if count_tokens(text) > budget:
        raise HarnessError(
            f"the context token budget of {budget} tokens cannot hold the note that the worktree "
            f"has no Python files: that needs {count_tokens(text)} tokens"
        )
    return _context(text, budget, [], {})


def _header(count: int) -> str:
    return (
        f"Repository context: {count} Python files, the most relevant to the instruction first. "
        "A file marked (full source) is shown complete; a file marked (outline) shows its "
        "docstring, imports and symbols with their line ranges.\n\n"
    )


def _full(tree: Path, entry: FileEntry) -> str | None:
    """The file's full-source section, or None when it cannot be shown (not read, not UTF-8)."""
    path = tree / entry.path
    if path.is_symlink() or not path.is_file():
        return None
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    ending = "" if source.endswith("\n") or not source else ", no newline at the end"
    body = source if not ending else f"{source}\n"
    return f"=== {entry.path} (full source, {entry.lines} lines{ending}) ===\n{body}\n"


def _outline(entry: FileEntry) -> str:
    lines = [f"=== {entry.path} (outline, {entry.lines} lines) ==="]
    if entry.docstring:
        lines.append(f'"""{entry.docstring}"""')
    if entry.error is not None:
        lines.append(entry.error)
    if entry.imports:
        shown = [
            f"{i.module} ({', '.join(i.files)})" if i.files else i.module for i in entry.imports
        ]
        lines.append(f"imports: {', '.join(dict.fromkeys(shown))}")
    for symbol in entry.symbols:
        indent = "  " * symbol.name.count(".")
        lines.append(f"{indent}L{symbol.start}-{symbol.end} {symbol.signature}")
    return "\n".join(lines) + "\n\n"


@dataclass
class _Fit:
    """The sections chosen so far and the exact byte size of the text they render to."""

    budget: int
    header: str
    paths: list[str]
    mode: dict[str, Mode] = field(init=False)
    sections: dict[str, str] = field(init=False, default_factory=dict)
    size: int = field(init=False)
    full_size: int = field(init=False, default=0)
    omitted_count: int = field(init=False)
    omitted_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.mode = {path: "omitted" for path in self.paths}
        self.omitted_count = len(self.paths)
        self.omitted_bytes = sum(_size(p) for p in self.paths)
        self.size = _size(self.header) + _left_out_size(self.omitted_count, self.omitted_bytes)

    def tokens_with(self, path: str, section: str) -> int:
        """The token count if `path` were shown as `section`."""
        return _tokens(self._size_with(path, section))

    def take(self, path: str, mode: Mode, section: str, full_limit: int | None = None) -> bool:
        """Show `path` as `section` if the text still fits (and, with `full_limit`, the full
        sources together stay within that many tokens); say whether it did."""
        size = self._size_with(path, section)
        full_size = self.full_size + _size(section) if mode == "full" else self.full_size
        if _tokens(size) > self.budget:
            return False
        if full_limit is not None and _tokens(full_size) > full_limit:
            return False
        if self.mode[path] == "omitted":
            self.omitted_count -= 1
            self.omitted_bytes -= _size(path)
        self.size, self.full_size = size, full_size
        self.mode[path] = mode
        self.sections[path] = section
        return True

    def _size_with(self, path: str, section: str) -> int:
        size = self.size - _size(self.sections.get(path, "")) + _size(section)
        if self.mode[path] == "omitted":
            before = _left_out_size(self.omitted_count, self.omitted_bytes)
            after = _left_out_size(self.omitted_count - 1, self.omitted_bytes - _size(path))
            size += after - before
        return size

    def render(self) -> str:
        shown = [self.sections[p] for p in self.paths if self.mode[p] == "full"]
        shown += [self.sections[p] for p in self.paths if self.mode[p] == "outline"]
        omitted = [p for p in self.paths if self.mode[p] == "omitted"]
        return (
            self.header + "".join(shown) + (f"{LEFT_OUT}{', '.join(omitted)}\n" if omitted else "")
        )


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _left_out_size(count: int, name_bytes: int) -> int:
    """The size of the line naming `count` left-out files whose paths take `name_bytes`."""
    return _size(LEFT_OUT) + name_bytes + 2 * (count - 1) + 1 if count else 0
