"""Each stage's contract, as checks: what makes a stored example or pair degenerate.

Issue 15: examples that copy the prompt, answer nothing, or pairs that differ in nothing teach a
model nothing (or worse). Every rule below is a pure function of one item, with a stable name
(reports, the curation refusal and the docs use it) and a one-line reason. `cra data audit`
counts them per stage; curation leaves degenerate items out and refuses a stage where too many
are (`[curation] max_degenerate_rate`). The rules, by stage:

Every stage
- `empty_answer`: the chosen answer is blank, or is JSON whose lists and objects hold nothing
  (a top-level object's plain strings, such as a summary, do not count as content).
- `answer_copied`: the chosen answer is already in the prompt's last user message. A text answer
  counts when its whole stripped text occurs there. A JSON answer counts when it has at least
  one string of four words or more and every such string occurs there, or when its `summary`
  equals the task's subject (case, spacing and a final period aside: a summary says what to
  change, built from the change's structure); paths do not count. An execute_code answer counts
  when every one of its edits has `replace` equal to `search`: the `search` side is in the
  prompt by design, and a `replace` may legitimately be a piece of it (a deletion), so only an
  edit that changes nothing is a copy.
- `over_budget`: the prompt and the longer answer take more tokens than the stage's budget
  (`TOKEN_BUDGET`); derivation skips these, so a stored one came from elsewhere.
- `prompt_email`: an e-mail address anywhere in the prompt (addresses at domains reserved for
  examples, RFC 2606, do not count, nor file names such as `icon@2x.png`).
- `prompt_trailer`: a trailer line in the prompt (`Co-authored-by:`, `Signed-off-by:`, any
  `Xxx-by:` at the start of a line): a person's name and address.

scope
- `scope_nothing_to_change`: `relevant` is empty and `create` is absent or empty.
- `scope_test_file`: a test file (a Python file under the default test globs,
  `engine/mining/settings.py`) among the files the answer classifies: the guideline says tests
  are never candidates.

meta_plan, step_plan, test_plan (and the chosen plan of a planning_dpo pair)
- `plan_step_repeats_title`: a step's description equals, ignoring case and spacing, its part's
  title or a part title the prompt gives.
- `plan_empty`: the plan has parts or steps keys and holds neither a part nor a step.

Pairs
- `pair_no_code_difference` (execute_code CodeFavor pairs): chosen and rejected are the same code
  once docstrings, comments and layout are set aside (`code_differs`).
- `pair_side_not_python` (CodeFavor): one side does not parse, so the pair cannot be compared.
- `pair_identical` (every other pair, planning_dpo's above all): chosen equals rejected.
"""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.core.stages import STAGES, TOKEN_BUDGET, Stage
from engine.harness.code_equivalence import NotPython, code_differs
from engine.harness.retrieve import count_tokens
from engine.mining.paths import PathRoles
from engine.mining.settings import DEFAULT_TEST_PATTERNS
from engine.training_data.items import StoredItem, TrainingItem

COPY_MIN_WORDS = 4
"""A JSON answer's string counts for `answer_copied` from this many words on: shorter ones
(names, paths, "Change x.py") legitimately repeat the prompt."""

PLAN_STAGES: tuple[Stage, ...] = ("meta_plan", "step_plan", "test_plan", "planning_dpo")


class Rule(BaseModel):
    """A named check and what it means, for reports."""

    model_config = ConfigDict(frozen=True)

    name: str
    stages: tuple[Stage, ...]
    reason: str


def _rule(name: str, reason: str, stages: tuple[Stage, ...] = STAGES) -> Rule:
    return Rule(name=name, stages=stages, reason=reason)


RULES: tuple[Rule, ...] = (
    _rule("empty_answer", "the answer is blank or its lists and objects are all empty"),
    _rule("answer_copied", "the answer is copied from the prompt"),
    _rule("over_budget", "prompt and answer exceed the stage's token budget"),
    _rule("prompt_email", "an e-mail address in the prompt"),
    _rule("prompt_trailer", "a trailer line (Co-authored-by:, Signed-off-by:) in the prompt"),
    _rule("scope_nothing_to_change", "nothing to change and nothing to create", ("scope",)),
    _rule("scope_test_file", "a test file among the candidates", ("scope",)),
    _rule(
        "plan_step_repeats_title",
        "a step's description repeats its part's title",
        PLAN_STAGES,
    ),
    _rule("plan_empty", "a plan with no parts and no steps", PLAN_STAGES),
    _rule(
        "pair_no_code_difference",
        "chosen and rejected do not differ as code (docstrings and comments aside)",
        ("execute_code",),
    ),
    _rule("pair_side_not_python", "a side of the pair does not parse", ("execute_code",)),
    _rule(
        "pair_identical",
        "chosen and rejected are the same text",
        ("planning_dpo", "execute_code"),
    ),
)
RULE_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}

_LOCAL_MAX, _DOMAIN_MAX = 64, 255
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@((?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24})(?![\w-])"
)
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")
_RESERVED_SUFFIXES = (".example", ".invalid", ".test", ".localhost")
_FILE_SUFFIXES = frozenset(
    {
        *("png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "pdf"),
        *("py", "pyi", "txt", "md", "rst", "json", "yml", "yaml", "toml", "cfg", "ini"),
        *("html", "css", "js"),
    }
)
"""A "domain" ending so is a file name (`docset-icon@2x.png`), not an address."""
_TRAILER = re.compile(r"[ \t]*([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*-by):[ \t]*\S", re.I)
_TITLE = re.compile(r'"title"\s*:\s*("(?:[^"\\]|\\.)*")')
_BY = re.compile(r"-by:", re.I)
_TEST_ROLES = PathRoles(DEFAULT_TEST_PATTERNS)


@dataclass(frozen=True)
class ItemText:
    """What the rules read of one item: its stage, origin, texts and prompt tokens."""

    stage: Stage
    origin: str
    prompt: tuple[tuple[str, str], ...]
    chosen: str
    rejected: str | None
    prompt_tokens: int

    @cached_property
    def user(self) -> str:
        """The prompt's last user message (the one the answer answers)."""
        return next(content for role, content in reversed(self.prompt) if role == "user")

    @cached_property
    def answer(self) -> Any:
        """The chosen answer parsed as JSON, or None when it is not a JSON object or list."""
        return _parsed(self.chosen)

    @cached_property
    def code_comparison(self) -> Literal["differs", "same", "unparsable"] | None:
        """A CodeFavor pair's sides compared as code; None for any other item."""
        if self.origin != "codefavor" or self.rejected is None:
            return None
        try:
            return "differs" if code_differs(self.rejected, self.chosen) else "same"
        except NotPython:
            return "unparsable"

    @cached_property
    def tokens(self) -> int:
        """Prompt plus answer, as the budget counts them: the longer side of a pair."""
        answers = [self.chosen] if self.rejected is None else [self.chosen, self.rejected]
        return self.prompt_tokens + max(count_tokens(text) for text in answers)


def item_text(item: TrainingItem) -> ItemText:
    """The rules' view of `item`; a `StoredItem` brings its stored prompt token count."""
    tokens = (
        item.prompt_tokens
        if isinstance(item, StoredItem)
        else sum(count_tokens(m.content) for m in item.prompt)
    )
    return ItemText(
        stage=item.stage,
        origin=item.origin,
        prompt=tuple((m.role, m.content) for m in item.prompt),
        chosen="".join(m.content for m in item.chosen),
        rejected=None if item.rejected is None else "".join(m.content for m in item.rejected),
        prompt_tokens=tokens,
    )


def row_text(row: dict[str, Any]) -> ItemText:
    """The rules' view of a row of `examples` (read without building a `StoredItem`)."""
    rejected = row["rejected_json"]
    return ItemText(
        stage=row["stage"],
        origin=row["origin"],
        prompt=tuple((m["role"], m["content"]) for m in json.loads(row["prompt_json"])),
        chosen=_joined(row["chosen_json"]),
        rejected=None if rejected is None else _joined(rejected),
        prompt_tokens=row["prompt_tokens"],
    )


def _joined(raw: str) -> str:
    return "".join(m["content"] for m in json.loads(raw))


def violations(text: ItemText) -> list[str]:
    """The names of the rules `text` breaks, in `RULES` order."""
    return [rule.name for rule in RULES if text.stage in rule.stages and _CHECKS[rule.name](text)]


def check_item(item: TrainingItem) -> list[str]:
    """The names of the rules `item` breaks (see the module doc)."""
    return violations(item_text(item))


def personal_data(text: ItemText) -> tuple[int, list[str]]:
    """How many e-mail addresses the prompt holds and the trailer keys it has (`Signed-off-by`):
    for the audit's report, which names what was found, never the address itself."""
    emails = sum(1 for message in _prompt_texts(text) for _ in _emails(message))
    trailers = [key for message in _prompt_texts(text) for key in _trailers(message)]
    return emails, trailers


# -- the rules ------------------------------------------------------------------------------


def _empty_answer(text: ItemText) -> bool:
    if not text.chosen.strip():
        return True
    answer = text.answer
    if isinstance(answer, dict):
        return all(_hollow(value) for value in answer.values() if isinstance(value, list | dict))
    return answer is not None and _hollow(answer)


def _hollow(value: Any) -> bool:
    """True when `value` holds nothing: blank strings, and lists and objects of such."""
    if isinstance(value, list):
        return all(_hollow(element) for element in value)
    if isinstance(value, dict):
        return all(_hollow(element) for element in value.values())
    if isinstance(value, str):
        return not value.strip()
    return False


def _answer_copied(text: ItemText) -> bool:
    answer = text.answer
    if answer is None:
        stripped = text.chosen.strip()
        return bool(stripped) and stripped in text.user
    if text.stage == "execute_code":
        edits = _edits(answer)
        return bool(edits) and all(
            edit["replace"] == edit["search"] and not edit.get("delete") for edit in edits
        )
    if _summary_is_subject(answer, text.user):
        return True
    long = [s for s in _free_text(answer) if len(s.split()) >= COPY_MIN_WORDS]
    return bool(long) and all(_in_prompt(s, text.user) for s in long)


def _summary_is_subject(answer: Any, user: str) -> bool:
    """A `summary` that restates the task's subject (the line after `Task:`), case and
    spacing aside: the summary must say what to change, not repeat what was asked."""
    if not isinstance(answer, dict) or not isinstance(answer.get("summary"), str):
        return False
    start = user.find("Task:\n")
    if start == -1:
        return False
    subject = user[start + len("Task:\n") :].partition("\n")[0]
    return _folded(answer["summary"]).rstrip(".") == _folded(subject).rstrip(".") != ""


def _edits(answer: Any) -> list[dict[str, Any]]:
    """An execute_code answer's search/replace edits: the answer itself, or its `edits`."""
    if isinstance(answer, dict):
        answer = answer.get("edits")
    if isinstance(answer, list) and all(
        isinstance(edit, dict) and "search" in edit and "replace" in edit for edit in answer
    ):
        return answer
    return []


def _free_text(value: Any, key: str | None = None) -> Iterator[str]:
    """The answer's strings a model writes as prose: not summaries, not paths."""
    if isinstance(value, dict):
        for name, element in value.items():
            if name not in ("summary", "path", "file"):
                yield from _free_text(element, name)
    elif isinstance(value, list):
        for element in value:
            yield from _free_text(element, key)
    elif isinstance(value, str):
        yield value


def _in_prompt(needle: str, prompt: str) -> bool:
    """`needle` occurs in `prompt`, as it is or as a JSON string body (the step_plan prompt
    quotes its part as JSON)."""
    return needle in prompt or json.dumps(needle, ensure_ascii=False)[1:-1] in prompt


def _over_budget(text: ItemText) -> bool:
    return text.tokens > TOKEN_BUDGET[text.stage]


def _prompt_email(text: ItemText) -> bool:
    return any(next(_emails(message), None) is not None for message in _prompt_texts(text))


def _emails(message: str) -> Iterator[str]:
    """The addresses in `message`, found from each `@` outwards: a pattern run over the whole
    text would try a local part at every character of it."""
    at = message.find("@")
    while at != -1:
        window = _EMAIL.finditer(message, max(0, at - _LOCAL_MAX), at + _DOMAIN_MAX)
        match = next((m for m in window if m.start() < at < m.end()), None)
        if match is not None and _is_address(match.group(1).lower()):
            yield match.group()
        at = message.find("@", at + 1)


def _is_address(domain: str) -> bool:
    if domain in _RESERVED_DOMAINS or domain.endswith(_RESERVED_SUFFIXES):
        return False
    return domain.rsplit(".", 1)[1] not in _FILE_SUFFIXES


def _prompt_trailer(text: ItemText) -> bool:
    return any(next(_trailers(message), None) is not None for message in _prompt_texts(text))


def _trailers(message: str) -> Iterator[str]:
    """The trailer keys of `message`: each `-by:` checked from its line's start (a multi-line
    pattern would be tried at every character of a long prompt)."""
    for hit in _BY.finditer(message):
        line = _TRAILER.match(message, message.rfind("\n", 0, hit.start()) + 1)
        if line is not None and line.end(1) == hit.end() - 1:
            yield line.group(1)


def _prompt_texts(text: ItemText) -> Iterator[str]:
    return (content for _, content in text.prompt)


def _scope_nothing_to_change(text: ItemText) -> bool:
    answer = text.answer
    if not isinstance(answer, dict):
        return False
    return not answer.get("relevant") and not answer.get("create")


def _scope_test_file(text: ItemText) -> bool:
    answer = text.answer
    if not isinstance(answer, dict):
        return False
    paths = [
        path
        for key in ("relevant", "create", "supporting", "irrelevant")
        if isinstance(answer.get(key), list)
        for path in answer[key]
        if isinstance(path, str)
    ]
    return bool(_TEST_ROLES.test_files(paths))


def _plan_step_repeats_title(text: ItemText) -> bool:
    plan = _plan(text.answer)
    if plan is None:
        return False
    given = {_folded(title) for title in _prompt_titles(text.user)}
    for title, steps in _parts_and_steps(plan):
        titles = given | ({_folded(title)} if title else set())
        for step in steps:
            description = step.get("description") if isinstance(step, dict) else None
            if isinstance(description, str) and _folded(description) in titles:
                return True
    return False


def _plan_empty(text: ItemText) -> bool:
    plan = _plan(text.answer)
    if plan is None or ("parts" not in plan and "steps" not in plan):
        return False
    return not any(title is not None or steps for title, steps in _parts_and_steps(plan))


def _plan(answer: Any) -> dict[str, Any] | None:
    """The plan object of an answer: the answer itself, or its `plan` (a harness pair's)."""
    if isinstance(answer, dict) and isinstance(answer.get("plan"), dict):
        return answer["plan"]
    return answer if isinstance(answer, dict) else None


def _parts_and_steps(plan: dict[str, Any]) -> Iterator[tuple[str | None, list[Any]]]:
    """(part title, its steps) per part; the plan's own steps come as a part without a title."""
    steps = plan.get("steps")
    if isinstance(steps, list) and steps:
        yield None, steps
    parts = plan.get("parts")
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict):
            title = part.get("title")
            own = part.get("steps")
            yield (title if isinstance(title, str) else ""), own if isinstance(own, list) else []


def _prompt_titles(user: str) -> Iterator[str]:
    """Part titles the prompt gives: JSON `"title"` values, and the text of a `Part:` line."""
    for match in _TITLE.finditer(user):
        try:
            yield json.loads(match.group(1))
        except ValueError:
            continue
    start = user.find("Part:")
    while start != -1:
        if start == 0 or user[start - 1] == "\n":
            end = user.find("\n", start)
            line = user[start + len("Part:") : end if end != -1 else len(user)]
            if line.strip():
                yield line
        start = user.find("Part:", start + 1)


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def _pair_no_code_difference(text: ItemText) -> bool:
    return text.code_comparison == "same"


def _pair_side_not_python(text: ItemText) -> bool:
    return text.code_comparison == "unparsable"


def _pair_identical(text: ItemText) -> bool:
    return (
        text.origin != "codefavor"
        and text.rejected is not None
        and (text.chosen.strip() == text.rejected.strip())
    )


def _parsed(answer: str) -> Any:
    stripped = answer.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


_CHECKS: dict[str, Callable[[ItemText], bool]] = {
    "empty_answer": _empty_answer,
    "answer_copied": _answer_copied,
    "over_budget": _over_budget,
    "prompt_email": _prompt_email,
    "prompt_trailer": _prompt_trailer,
    "scope_nothing_to_change": _scope_nothing_to_change,
    "scope_test_file": _scope_test_file,
    "plan_step_repeats_title": _plan_step_repeats_title,
    "plan_empty": _plan_empty,
    "pair_no_code_difference": _pair_no_code_difference,
    "pair_side_not_python": _pair_side_not_python,
    "pair_identical": _pair_identical,
}
assert set(_CHECKS) == set(RULE_BY_NAME), "every rule has its check"
