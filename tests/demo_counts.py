"""What the demo package holds, in one place: the tests that count its commits, tasks and
training items read these numbers, so a change to the demo's history or to what a task derives
is made here once.

The commit lists come from DEMO_HISTORY; only which commits the miner drops and which gold
validation finds unusable are written down, with why.
"""

from engine.demo.repo import DEMO_HISTORY
from engine.mining.message import task_subject

DROPPED = {
    "Create the textkit project": "has parent",
    "Plan the truncate helper": "message quality",
    "Update README": "message quality",
}
"""Commits the miner drops, by subject, with the filter stage that drops them."""

UNUSABLE = {
    "Cover slugify edge cases in tests": "it changes tests only: test-plan data",
    "Document what slugify drops from titles": "its change alters only comments, docstrings",
}
"""Kept commits that are no task, by subject: the test-only one is skipped (test-plan data, no
attempt), the docstring-only one refused by the code-only commits' static check."""

TEST_ONLY = ["Cover slugify edge cases in tests"]
"""Kept commits that change tests only: campaigns make no attempt at them."""

COMMITS = len(DEMO_HISTORY)
KEPT = [task_subject(c.message) for c in DEMO_HISTORY if c.subject not in DROPPED]
"""The manifest's commits, oldest first, by the cleaned subject the manifest records."""
USABLE = [
    task_subject(c.message)
    for c in DEMO_HISTORY
    if c.subject not in DROPPED and c.subject not in UNUSABLE
]
"""The usable tasks, oldest first: one attempt of a gold campaign resolves each."""

PLANNING_TYPES = {"mixed": len(KEPT) - 2, "test_plan": 1, "step_plan": 1}
"""The manifest's planning types: every task changes code and its test, but for the test-only
commit (test_plan) and the docstring-only one (step_plan)."""

SFT_EXAMPLES = {
    "task_analysis": len(USABLE),
    "scope": len(USABLE),
    "precision": len(USABLE) - 1,
    "execute_code": len(USABLE),
    "meta_plan": len(USABLE) + 1,
    "step_plan": len(USABLE) + 3,
    "test_plan": len(USABLE),
}
"""Synthetic SFT examples per stage from the usable tasks: one each, but
- precision: none for "keep acronyms together", which changes only the module constant HUMP, so
  no symbol is primary;
- meta_plan: one more, the good plan artifact docs/plans/truncate.md;
- step_plan: one per part (a part per changed code file, then one part for the docs): accent
  folding moved into normalize has two parts, wrap_lines with its README and changelog entries
  two, strip_tags with its changelog entry two."""

TESTS_AT_HEAD = 44
"""What pytest collects at the head: 43 test functions, one of them parametrized twice."""

CODEFAVOR_PAIRS = 11
"""execute_code preference pairs: one per symbol a usable commit modifies outside its tests."""
