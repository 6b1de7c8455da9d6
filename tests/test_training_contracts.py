"""Each stage's contract rules: every rule fires on the defect it names and not on a sound item.

The degenerate items are the ones issue 15 found in real data: scope answers with nothing to
change on additive commits, test files offered as scope candidates, step text repeating the
part title, CodeFavor pairs that differ only in a docstring, e-mails and trailers in prompts.
"""

import json

import pytest

from engine.core.stages import TOKEN_BUDGET
from engine.training_data.contracts import RULES, check_item, item_text, personal_data
from engine.training_data.items import Message, TrainingItem

TASK = "Fold accented letters in slugify so that café becomes cafe"


def item(
    stage: str,
    answer: object,
    user: str = f"Task:\n{TASK}",
    *,
    rejected: object | None = None,
    origin: str = "commit",
) -> TrainingItem:
    """An item of `stage` whose answer (and rejected side) is `answer`, as JSON unless a str."""

    def text(value: object) -> str:
        return value if isinstance(value, str) else json.dumps(value, indent=2)

    return TrainingItem(
        stage=stage,
        kind="sft" if rejected is None else "preference",
        source="synthetic",
        origin=origin,
        repo="textkit",
        domain="text",
        task_key="t1",
        task_date="2024-03-01T10:00:00Z",
        prompt=[
            Message(role="system", content="You answer."),
            Message(role="user", content=user),
        ],
        chosen=[Message(role="assistant", content=text(answer))],
        rejected=None if rejected is None else [Message(role="assistant", content=text(rejected))],
    )


SCOPE_OK = {
    "relevant": ["textkit/slug.py"],
    "create": [],
    "supporting": ["textkit/text.py"],
    "irrelevant": ["README.md"],
}
STEP_PART = json.dumps({"id": "part-1", "title": "Change textkit/slug.py: slugify"}, indent=2)
STEP_USER = f"Files before the change:\n...\n\nTask:\n{TASK}\n\nPart:\n{STEP_PART}"
STEP_OK = {
    "steps": [
        {
            "description": "Make slugify fold accented letters to ASCII before lowering",
            "file": "textkit/slug.py",
            "symbols": ["slugify"],
        }
    ]
}
OLD = 'def slugify(text):\n    """Slug of text."""\n    return text.lower()\n'
DOC_ONLY = 'def slugify(text):\n    """Slug of `text`."""\n    return text.lower()\n'
NEW = "def slugify(text):\n    return fold(text).lower()\n"
PLAN = {"plan": {"parts": [{"title": "Fold", "steps": [{"description": "Add fold()"}]}]}}


def test_every_rule_has_a_stable_name_and_a_reason():
    """Rules are named once each and say what they mean."""
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(rule.reason and rule.stages for rule in RULES)


# (rule, degenerate item, a sound item of the same stage)
CASES = {
    "empty answer: blank": (
        "empty_answer",
        item("task_analysis", "  \n"),
        item("task_analysis", {"summary": "Fold", "files": ["textkit/slug.py"], "symbols": {}}),
    ),
    "empty answer: JSON with nothing in its lists": (
        "empty_answer",
        item("task_analysis", {"summary": "Fold letters", "files": [], "symbols": {}}),
        item("task_analysis", {"summary": "Fold", "files": ["textkit/slug.py"], "symbols": {}}),
    ),
    "empty answer: no edits": (
        "empty_answer",
        item("execute_code", []),
        item("execute_code", [{"path": "a.py", "search": "x", "replace": "y", "delete": False}]),
    ),
    "copied: the task as the answer": (
        "answer_copied",
        item("task_analysis", TASK),
        item("task_analysis", "Fold accented letters before slugifying"),
    ),
    "copied: every step repeats prompt text": (
        "answer_copied",
        item("step_plan", {"steps": [{"description": TASK, "file": "s.py", "symbols": []}]}),
        item("step_plan", STEP_OK),
    ),
    "copied: edits that change nothing": (
        "answer_copied",
        item(
            "execute_code",
            [{"path": "s.py", "search": "return x", "replace": "return x", "delete": False}],
            "Files:\nreturn x\n",
        ),
        item(
            "execute_code",
            [{"path": "s.py", "search": "a = 1\nreturn x", "replace": "return x"}],
            "Files:\na = 1\nreturn x\n",
        ),
    ),
    "over the token budget": (
        "over_budget",
        item("task_analysis", SCOPE_OK, "x" * (3 * TOKEN_BUDGET["task_analysis"])),
        item("task_analysis", SCOPE_OK, "x" * (3 * TOKEN_BUDGET["task_analysis"] - 300)),
    ),
    "an e-mail in the prompt": (
        "prompt_email",
        item("scope", SCOPE_OK, f"Task:\n{TASK}\n\nThanks to Jane <jane.doe+x@mail.org>"),
        item("scope", SCOPE_OK, f"Task:\n{TASK}\ndocs/icon@2x.png\nuser@example.com"),
    ),
    "a trailer in the prompt": (
        "prompt_trailer",
        item("scope", SCOPE_OK, f"Task:\n{TASK}\n\nCo-authored-by: Jane Doe"),
        item("scope", SCOPE_OK, f"Task:\n{TASK}\n\nSorted by name: yes"),
    ),
    "scope: nothing to change on an additive commit": (
        "scope_nothing_to_change",
        item("scope", {**SCOPE_OK, "relevant": []}),
        item("scope", {**SCOPE_OK, "relevant": [], "create": ["textkit/fold.py"]}),
    ),
    "scope: a test file among the candidates": (
        "scope_test_file",
        item("scope", {**SCOPE_OK, "irrelevant": ["README.md", "tests/test_slug.py"]}),
        item("scope", {**SCOPE_OK, "irrelevant": ["README.md", "tests/data/slugs.txt"]}),
    ),
    "step_plan: a step repeats the prompt's part title": (
        "plan_step_repeats_title",
        item(
            "step_plan",
            {"steps": [{"description": "change  TEXTKIT/slug.py: slugify", "file": "s.py"}]},
            STEP_USER,
        ),
        item("step_plan", STEP_OK, STEP_USER),
    ),
    "meta_plan: a step repeats its own part's title": (
        "plan_step_repeats_title",
        item(
            "meta_plan",
            {"parts": [{"id": "p", "title": "Fold", "steps": [{"description": "fold"}]}]},
        ),
        item(
            "meta_plan",
            {"parts": [{"id": "p", "title": "Fold", "steps": [{"description": "Add fold()"}]}]},
        ),
    ),
    "a plan with no parts": (
        "plan_empty",
        item("meta_plan", {"summary": "Fold letters", "parts": []}),
        item("meta_plan", {"summary": "Fold letters", "parts": [{"id": "p", "title": "Fold"}]}),
    ),
    "CodeFavor: only a docstring differs": (
        "pair_no_code_difference",
        item("execute_code", DOC_ONLY, rejected=OLD, origin="codefavor"),
        item("execute_code", NEW, rejected=OLD, origin="codefavor"),
    ),
    "CodeFavor: a side that does not parse": (
        "pair_side_not_python",
        item("execute_code", "def slugify(:\n", rejected=OLD, origin="codefavor"),
        item("execute_code", NEW, rejected=OLD, origin="codefavor"),
    ),
    "planning_dpo: chosen equals rejected": (
        "pair_identical",
        item("planning_dpo", PLAN, rejected=PLAN),
        item("planning_dpo", PLAN, rejected={"plan": {"parts": [{"title": "Fold"}]}}),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_rule_fires_on_its_defect_and_not_on_a_sound_item(case: str):
    """The degenerate item breaks the named rule; its sound counterpart breaks no rule."""
    rule, degenerate, sound = CASES[case]
    assert rule in check_item(degenerate)
    assert check_item(sound) == []


def test_a_deletion_is_not_a_copy_though_its_replace_is_in_the_prompt():
    """An edit whose replace is a piece of its search (a deletion) is not copied: only edits
    that change nothing are."""
    file = "Files:\nimport os\nimport sys\n"
    edits = [{"path": "a.py", "search": "import os\nimport sys\n", "replace": "import os\n"}]
    assert check_item(item("execute_code", edits, file)) == []


def test_a_summary_restating_the_subject_is_a_copy():
    """A summary must say what to change (docs/stage-contracts.md rule 2): one that repeats
    the task's subject, case, spacing and a final period aside, is copied from the prompt."""
    answer = {"summary": TASK.upper() + ".", "files": ["textkit/slug.py"], "symbols": {}}
    assert check_item(item("task_analysis", answer)) == ["answer_copied"]
    answer["summary"] = "Change `slugify` in textkit/slug.py."
    assert check_item(item("task_analysis", answer)) == []


def test_personal_data_names_what_it_found_not_the_address():
    """The counts say how many addresses and which trailer keys, for the audit's report."""
    user = f"{TASK}\n\nSigned-off-by: Jane <jane@mail.org>\nReviewed-By: Joe <joe@mail.org>"
    assert personal_data(item_text(item("scope", SCOPE_OK, user))) == (
        2,
        ["Signed-off-by", "Reviewed-By"],
    )
