"""The built-in planner prompt and the parser for its answer.

`build_messages` turns a task into chat messages asking for one JSON object that matches
`PlannerOutput`: a plan (summary; parts with dependency edges; each part's steps naming a file
and its symbols) and the search/replace edits that carry it out. `parse_output` reads that
answer back. It accepts exactly three shapes: the bare object; the object after leading prose
(from the first `{` to the end); or, after optional leading prose, the object in a fenced block
opened by ```` ```json ```` or ```` ``` ```` that ends the answer. Anything else is a
`MalformedOutput` naming the rule it broke.
"""

import json
import re

from pydantic import ValidationError

from engine.core.errors import CraError, validation_lines
from engine.harness.pipeline import PlannerTask
from engine.harness.plan import Edit, Plan, PlannerOutput, PlanPart, PlanStep

_FENCE_OPEN = re.compile(r"```(?:json)?[ \t]*\n")
_FENCE_CLOSE = "\n```"

_EXAMPLE = PlannerOutput(
    plan=Plan(
        summary="Let parse_header accept an empty value.",
        parts=[
            PlanPart(
                id="parser",
                title="Accept empty header values",
                steps=[
                    PlanStep(
                        description="Return an empty string instead of raising on a bare key.",
                        file="src/pkg/headers.py",
                        symbols=["parse_header"],
                    )
                ],
            ),
            PlanPart(
                id="docs",
                title="Document the change",
                depends_on=["parser"],
                steps=[
                    PlanStep(
                        description="Create the changes module that notes the new behaviour.",
                        file="src/pkg/changes.py",
                        symbols=[],
                    )
                ],
            ),
        ],
    ),
    edits=[
        Edit(
            path="src/pkg/headers.py",
            search='    if not value:\n        raise ValueError("empty header")\n',
            replace='    if not value:\n        return ""\n',
        ),
        Edit(path="src/pkg/changes.py", search="", replace='"""Changes."""\n'),
    ],
)

SYSTEM_PROMPT = f"""You are a software engineer working in a Python repository. You are given an \
instruction (a commit message) and context from the repository at the commit before the change. \
Plan the change, then write the edits that make it.

Answer with ONE JSON object and nothing else, shaped like this example:

{json.dumps(_EXAMPLE.model_dump(mode="json"), indent=2)}

Rules:
- plan.summary: one or two sentences on what the change does.
- plan.parts: independent units of the work. Each has a unique "id", a "title", "depends_on" \
(ids of parts that must be done first; no cycles) and at least one step.
- Each step has a "description", the "file" it changes (a relative path with forward slashes) and \
the "symbols" it adds or changes (Python names, dotted inside classes: "Class.method").
- edits: at least one, applied in order. Each names a "path" and replaces "search" with "replace".
- "search" must be copied exactly from the file (whitespace and indentation included) and must \
occur exactly once in it when the edit is applied; include enough surrounding lines to make it \
unique.
- An empty "search" creates a new file at "path" holding "replace"; the file must not exist.
- "delete": true removes the file at "path"; then "search" and "replace" are empty.
- The harness puts the task's tests in place itself: do not write or edit test files."""


class MalformedOutput(CraError):
    """A planner's answer is not one JSON object matching PlannerOutput."""


def build_messages(task: PlannerTask) -> list[dict[str, str]]:
    """The system and user chat messages asking the planner for `task`'s plan and edits."""
    user = (
        f"Repository: {task.repo} at commit {task.parent}\n\n"
        f"Instruction (the commit message to implement):\n{task.instruction}\n\n"
        f"Context ({task.context_tokens} tokens):\n{task.context}\n\n"
        "Answer with the JSON object only."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_output(raw: str) -> PlannerOutput:
    """The planner output in `raw` (see the module docstring for the shapes accepted)."""
    start = raw.find("{")
    if start < 0:
        raise MalformedOutput("the answer holds no JSON object: there is no '{' in it")
    body = _fenced(raw, start) or raw[start:]
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedOutput(
            f"the answer is not one JSON object: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(value, dict):
        raise MalformedOutput(f"the answer's JSON is a {type(value).__name__}, not an object")
    try:
        return PlannerOutput.model_validate(value)
    except ValidationError as exc:
        raise MalformedOutput(
            "the answer does not match the planner output schema:\n"
            + validation_lines("the answer", exc)
        ) from exc


def _fenced(raw: str, start: int) -> str | None:
    """The body of the fence opened before the first `{`, which must close at the answer's end;
    None when no fence opens there."""
    opening = None
    for match in _FENCE_OPEN.finditer(raw, 0, start):
        opening = match
    if opening is None:
        return None
    rest = raw[opening.end() :].rstrip()
    if not rest.endswith(_FENCE_CLOSE):
        raise MalformedOutput(
            "the answer opens a ``` fence before its JSON but does not end with ```"
        )
    return rest.removesuffix(_FENCE_CLOSE)
