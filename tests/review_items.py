"""Real review items: commits of the demo's `textkit` history derived as `cra data build`
derives them (the synthetic SFT examples of every stage and the CodeFavor pairs), from a demo
repository built in the test, without the sandbox run that would first mark each task usable.
The Review pane's layout tests look at these, not at made-up items: their prompts hold real
files, file trees and diffs, so they are as long as the prompts a review round shows.
"""

from pathlib import Path

from engine.demo.repo import DEMO_HISTORY, build_demo_repo
from engine.training_data.codefavor import codefavor_pairs
from engine.training_data.harness_pairs import Lineage
from engine.training_data.items import TrainingItem
from engine.training_data.synthetic import derive_examples

DIGEST = "d" * 64
"""A stand-in package digest: these items come from a repository, not an approved package."""


def demo_items(repo: Path, subjects: list[str]) -> list[TrainingItem]:
    """The items of the demo commits whose subjects are `subjects` (any but the first commit),
    commit by commit: its SFT examples, stage by stage, then its CodeFavor (execute_code)
    pairs. `repo` is where the demo repository is built; it must not exist yet."""
    shas = build_demo_repo(repo)
    names = [commit.subject for commit in DEMO_HISTORY]
    items: list[TrainingItem] = []
    for subject in subjects:
        index = names.index(subject)
        if not index:
            raise ValueError(f"{subject!r} is the first commit: it has no parent to derive from")
        items += _derived(repo, index, shas[index], shas[index - 1])
    return items


def _derived(repo: Path, index: int, sha: str, parent: str) -> list[TrainingItem]:
    commit = DEMO_HISTORY[index]
    tests = sorted(path for path in commit.files if path.startswith("tests/"))
    lineage = Lineage(
        repo="textkit",
        domain="text-processing",
        task_key=f"textkit:{sha}",
        task_date=f"2024-03-{1 + index:02d}T10:00:00Z",
        package_digest=DIGEST,
        sha=sha,
    )
    derivation = derive_examples(repo, parent, sha, commit.message, tests)
    examples = [
        TrainingItem(
            **lineage.model_dump(),
            stage=example.stage,
            kind="sft",
            source="synthetic",
            origin="commit",
            prompt=example.messages[:-1],
            chosen=example.messages[-1:],
        )
        for example in derivation.examples
    ]
    pairs, _ = codefavor_pairs(repo, parent, commit.message, tests, lineage)
    return examples + pairs
