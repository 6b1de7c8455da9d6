"""One prompt template per stage that synthetic examples are derived for.

Each template is a system prompt and a user prompt with named fields. The task is always the
natural-language description (the cleaned commit message), never code: LoRA Training Strategy §6.3
finds NL-to-code pairs train better than code-to-code ones. `planning_dpo` has no template here: its
preference pairs come from the plan validation harness (§6.9), not from a commit alone.
"""

from string import Formatter

from pydantic import BaseModel, ConfigDict

from engine.core.stages import Stage

_JSON_ONLY = "Answer with JSON only."


class Template(BaseModel):
    """A stage's system prompt and its user prompt, whose `{name}` fields `render` fills."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    user: str

    def fields(self) -> set[str]:
        """The names of the user prompt's fields."""
        return {name for _, name, _, _ in Formatter().parse(self.user) if name}


TEMPLATES: dict[Stage, Template] = {
    "task_analysis": Template(
        system="You analyse a coding task for a Python repository, given its file tree: say "
        "in one line what to change, which existing files to change, which new files to create "
        'and which symbols it concerns, as {"summary": str, "files": [path], "create": [path], '
        f'"symbols": {{path: [symbol]}}}}. {_JSON_ONLY}',
        user="Task:\n{task}\n\nRepository files:\n{tree}",
    ),
    "scope": Template(
        system="You classify a repository's files for a coding task: relevant (to be changed), "
        "supporting (read for context) or irrelevant, and name the new files the task creates, "
        'as {"relevant": [path], "create": [path], "supporting": [path], "irrelevant": [path]}. '
        f"{_JSON_ONLY}",
        user="Task:\n{task}\n\nRepository files:\n{files}",
    ),
    "precision": Template(
        system="You classify symbols for a coding task: primary (to add, change or remove), "
        "supporting (used by the changed code) or excluded, each as {path: [symbol]} under "
        f'"primary", "supporting" and "excluded". {_JSON_ONLY}',
        user="Task:\n{task}\n\nSymbols by file:\n{symbols}",
    ),
    "execute_code": Template(
        system="You carry out a coding task on the files shown. Answer with a JSON list of "
        'search/replace edits {"path", "search", "replace", "delete"}: each search text occurs '
        "exactly once in its file as the earlier edits leave it; an empty search creates the "
        f"file; delete removes it. {_JSON_ONLY}",
        user="Files before the change:\n{context}\n\nTask:\n{task}",
    ),
    "meta_plan": Template(
        system="You split a coding task into parts, each a unit of work on the files shown, "
        'with the parts it depends on, as {"summary": str, "parts": [{"id", "title", '
        f'"depends_on": [id]}}]}}. {_JSON_ONLY}',
        user="Files before the change:\n{context}\n\nTask:\n{task}",
    ),
    "step_plan": Template(
        system="You plan the implementation steps of one part of a coding task, in order, each "
        'naming its file and the symbols it targets, as {"steps": [{"description", "file", '
        f'"symbols": [symbol]}}]}}. {_JSON_ONLY}',
        user="Files before the change:\n{context}\n\nTask:\n{task}\n\nPart:\n{part}",
    ),
    "test_plan": Template(
        system="You plan the tests for a code change: which test files to change and which test "
        f'functions to add or change, as {{"files": [path], "tests": {{path: [test]}}}}. '
        f"{_JSON_ONLY}",
        user="Task:\n{task}\n\nCode change:\n{diff}",
    ),
}


def render(stage: Stage, **values: str) -> tuple[str, str]:
    """The system prompt and the filled user prompt of `stage`'s template."""
    template = TEMPLATES[stage]
    expected = template.fields()
    if set(values) != expected:
        raise ValueError(
            f"template {stage!r} takes fields {sorted(expected)}, got {sorted(values)}"
        )
    return template.system, template.user.format(**values)
