"""What to accept, reject, flip or skip when spot-checking each stage's items.

LoRA Training Strategy §7.2 and §9.3: 10-20 items per stage per training round are read by hand,
because some failures are invisible to the eval set: plans that look sound but are subtly wrong,
style drift toward defensive code, mislabelled preference pairs. These guidelines say, per stage,
what an item is and what makes it good or bad, drawn from the planning documents' sections that
define the data (§6.2 commit filtering, §6.3 synthetic derivations, §6.7 fail-fast style, §6.9 the
harness and plan-quality isolation). The Review pane shows them beside the item; `cra review
guidelines` prints them.
"""

from pydantic import BaseModel, ConfigDict

from engine.core.stages import Stage


class Rules(BaseModel):
    """When to accept, reject, flip (pairs only) and skip an item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accept: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    flip: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


class Guideline(Rules):
    """A stage's rules, with what one of its items is and where it came from."""

    item: str


EVERY_STAGE = Rules(
    accept=(
        "The task reads as a natural-language instruction, not code pasted in as the "
        "instruction (NL-to-code trains better, §6.3).",
        "The answer has the stage's JSON shape, complete, and says what the rules below ask.",
    ),
    reject=(
        "The task is not a task: under three words, generic (wip, misc, update) or an "
        "automated commit such as a version bump, a dependency update, CI or docs only (§6.2).",
        "The prompt leaks the answer: the commit's test files outside test_plan, or code "
        "after the change where the stage should see the code before it.",
        "Style drift in any code shown: catch-all or bare except, except-pass, silent "
        "fallbacks, .get() with a default where a missing key is a bug (§6.7, §9.3).",
        "The answer is cut off, not valid JSON, or answers a different task.",
    ),
    flip=(
        "A pair's rejected answer is the better one: chosen and rejected are the wrong way "
        "round. Flip only when sure; when both are about as good, reject the pair instead: an "
        "ambiguous preference teaches noise (§6.9).",
    ),
    skip=(
        "You cannot judge from what is shown. A skipped item keeps the round open: decide it "
        "before the stage is curated.",
    ),
)

GUIDELINES: dict[Stage, Guideline] = {
    "task_analysis": Guideline(
        item="A task (the cleaned commit message) and the repository's file tree at the parent "
        "(tests hidden) -> a one-line summary of what to change, the files to change, the files "
        "to create and the symbols, reconstructed from the commit's diff (§6.3).",
        accept=(
            "The summary says what to change to which symbols and files, without inventing "
            "behaviour; it does not merely repeat the task's subject.",
            "The files are the ones the change touched; recall matters most (the eval wants at "
            "least 80 % recall and 60 % precision, §9.1).",
        ),
        reject=(
            "The task's wording gives no hint of the files listed (a 'Fix bug' message over a "
            "diff across modules): the example teaches guessing.",
            "Test files listed: they are hidden from every stage but test_plan.",
        ),
    ),
    "scope": Guideline(
        item="The task and the parent commit's files, test files excluded -> relevant (changed "
        "outside the tests), create (files the commit adds), supporting (repository files the "
        "changed and created files import) and irrelevant (the rest) (§6.3).",
        accept=(
            "Relevant holds the files the change edits in substance; create the files it adds; "
            "supporting holds what those files import.",
        ),
        reject=(
            "A relevant file the change touched only in passing (a reformat, an import sort): "
            "it was not needed (the stage's quality signal, §1).",
            "A file the commit adds offered as a candidate, or a test file anywhere.",
            "Nothing to change and nothing to create: the example teaches nothing.",
            "A candidate list swamped by generated or vendored files, so the labels are noise.",
        ),
    ),
    "precision": Guideline(
        item="The task and the symbols of the relevant and supporting files -> primary (added, "
        "changed, removed), supporting (used by the changed code) and excluded (§6.3).",
        accept=(
            "Primary symbols are the ones the diff changes in substance; supporting symbols "
            "are the ones the new code calls or reads.",
        ),
        reject=(
            "A primary symbol changed only cosmetically (a docstring, a reformat, a renamed "
            "local).",
            "Supporting symbols the changed code does not use, or a helper it uses left excluded.",
        ),
    ),
    "execute_code": Guideline(
        item="The source of the changed files before the change and the task -> search/replace "
        "edits. SFT: the commit's own edits. Pairs: an attempt that passed the tests against "
        "one with a sound plan whose code failed (§6.9), or the code after a commit against "
        "the code before it (CodeFavor, §6.7).",
        accept=(
            "The edits do what the task says and nothing else; every search text is exact and "
            "occurs once.",
            "Fail-fast style: narrow except clauses, errors raised with context, no silent "
            "failure (§6.7).",
        ),
        reject=(
            "The chosen edits pass the tests but add defensive patterns: style drift the eval "
            "cannot catch (§9.3).",
            "The rejected attempt failed for a reason outside its code (environment, flaky "
            "test, time limit): the pair says nothing about code.",
            "Chosen and rejected differ only in whitespace, comments or ordering.",
            "Unrelated changes ride along: reformatting, or tests edited to make them pass.",
        ),
        flip=(
            "The rejected edits are the correct, fail-fast ones and the chosen edits passed only "
            "because the tests do not reach the difference.",
        ),
    ),
    "meta_plan": Guideline(
        item="The code before the change (documentation files by name) and the task -> a "
        "summary and parts with dependency edges, reconstructed from the change (§6.3): one part "
        "per changed code file in import order, then one part for the docs and changelog.",
        accept=(
            "Each edge points from a part to the parts it needs first; code comes before the "
            "documentation and changelog.",
            "The summary says what the change does to which symbols and files.",
        ),
        reject=(
            "A dependency edge that runs backwards, or a cycle.",
            "Docs or changelog planned ahead of the code they describe.",
            "A summary that only repeats the task's subject, or narrates line edits.",
        ),
    ),
    "step_plan": Guideline(
        item="The source of the part's files before the change, the task and one part -> "
        "ordered steps, each saying what to do to which symbol and naming its file and "
        "symbols (§6.3).",
        accept=(
            "The order works: definitions before their uses, a changed signature before its "
            "callers.",
            "Each step names the file and symbols it changes, at a grain one code call can do.",
        ),
        reject=(
            "A step too coarse to act on ('implement the feature') or one step per line.",
            "A step that repeats the part's title instead of saying what to do.",
            "File or symbol targets that do not match what the step says.",
            "Steps that belong to another part.",
        ),
    ),
    "test_plan": Guideline(
        item="The task and the code diff -> the test files and test functions to add or change; "
        "only commits that change both tests and code give one (§6.3).",
        accept=(
            "The tests listed exercise the changed code: the behaviour the task adds or fixes "
            "and its edge cases.",
        ),
        reject=(
            "Tests that were only moved or renamed, or test changes unrelated to the code "
            "change (a suite clean-up riding along).",
            "A production file listed as a test file.",
        ),
    ),
    "planning_dpo": Guideline(
        item="The context and task -> a plan. Chosen: a plan whose attempt passed. Rejected: a "
        "plan whose attempt failed with low alignment to the commit (at most [training_data] "
        "planning_alignment_max): a planning failure, not a coding one (§6.9).",
        accept=(
            "The chosen plan targets the right files and symbols in a sound order; the "
            "rejected plan is wrong in decomposition, targets or ordering.",
            "A reasoning trace, where there is one, leads to the plan it precedes (§7.2).",
        ),
        reject=(
            "The rejected plan is structurally sound and failed in the coding: a mislabelled "
            "pair poisons the dataset (§6.9).",
            "The chosen plan looks reasonable but misses an edge case or orders steps wrongly: "
            "it passed by luck (subtle planning degradation, §7.2).",
            "The two plans are about as good, or nearly the same.",
        ),
        flip=(
            "The rejected plan is the better plan and the chosen one passed only because the "
            "tests are weak.",
        ),
    ),
}

SECTIONS = (
    ("accept", "Accept when"),
    ("reject", "Reject when"),
    ("flip", "Flip (pairs only) when"),
    ("skip", "Skip when"),
)


def guideline_sections(stage: Stage) -> list[tuple[str, tuple[str, ...]]]:
    """Each section's heading and its rules: the stage's own first, then every stage's."""
    own = GUIDELINES[stage]
    return [
        (heading, getattr(own, name) + getattr(EVERY_STAGE, name)) for name, heading in SECTIONS
    ]


def guideline_text(stage: Stage) -> str:
    """The stage's guideline as plain text, for the terminal."""
    lines = [f"{stage}: {GUIDELINES[stage].item}"]
    for heading, rules in guideline_sections(stage):
        lines.append("")
        lines.append(f"{heading}:")
        lines.extend(f"  - {rule}" for rule in rules)
    return "\n".join(lines)
