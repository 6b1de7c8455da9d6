"""Plan artifacts as training data (LoRA Training Strategy §6.8): real plans, labelled by what
history did.

A package's manifest lists the plan files committed to its repository, each labelled good, fine
or bad (`engine.packaging.plan_artifacts`). Here:

- a good or fine plan is a meta plan SFT example (origin `plan_artifact`) for the reasoning base's
  full fine-tune: the prompt is the task (the cleaned message of the commit that added the plan,
  or the plan's title line when that message is empty) with the repository's file tree at the
  commit before it, as the planner saw it; the answer is the plan's text as it was added;
- a bad plan that another plan replaced is a planning DPO pair on the bad plan's prompt: the
  replacement chosen, the replaced plan rejected;
- a bad plan with no replacement makes nothing (there is no accepted plan to pair it with).

Every item keeps its label's reason as `evidence`. A plan whose prompt and answer exceed the
stage's token budget is skipped, never truncated.
"""

from datetime import UTC, datetime

from engine.core.stages import TOKEN_BUDGET
from engine.core.timestamps import TIME_FORMAT
from engine.harness.attempts import commit_message
from engine.harness.package import CorpusPackage
from engine.harness.retrieve import count_tokens
from engine.intake.manifest import PlanArtifact
from engine.isolation.gitsafe import run_git
from engine.mining.message import clean_task_text
from engine.training_data.items import Message, TrainingItem

SYSTEM = (
    "You plan a coding task in this repository: write the plan a developer will follow, "
    "naming the files to change and the order of the work."
)
USER = "Files in the repository before the plan:\n{tree}\n\nTask:\n{task}"


def plan_artifact_items(package: CorpusPackage) -> tuple[list[TrainingItem], list[str]]:
    """The items the package's plan artifacts make, and why any plan made none."""
    items: list[TrainingItem] = []
    skipped: list[str] = []
    for artifact in package.manifest.plan_artifacts:
        if artifact.label in ("good", "fine"):
            prompt = _prompt(package, artifact)
            answer = _plan_text(package, artifact.path, artifact.added_in)
            item = _item(package, artifact, prompt, [answer], None, artifact.reason)
        elif artifact.replaced_by is not None:
            prompt = _prompt(package, artifact)
            chosen = _plan_text(package, artifact.replaced_by.path, artifact.replaced_by.added_in)
            rejected = _plan_text(package, artifact.path, artifact.added_in)
            evidence = f"{artifact.reason}; the replacement is chosen"
            item = _item(package, artifact, prompt, [chosen], [rejected], evidence)
        else:
            skipped.append(f"{artifact.path}: bad with no replacement ({artifact.reason})")
            continue
        tokens = sum(count_tokens(m.content) for m in [*item.prompt, *item.chosen])
        if tokens > TOKEN_BUDGET[item.stage]:
            skipped.append(
                f"{artifact.path}: {tokens} tokens, over {item.stage}'s {TOKEN_BUDGET[item.stage]}"
            )
            continue
        items.append(item)
    return items, skipped


def _item(
    package: CorpusPackage,
    artifact: PlanArtifact,
    prompt: list[Message],
    chosen: list[str],
    rejected: list[str] | None,
    evidence: str,
) -> TrainingItem:
    sha = artifact.added_in
    return TrainingItem(
        stage="meta_plan" if rejected is None else "planning_dpo",
        kind="sft" if rejected is None else "preference",
        source="synthetic",
        origin="plan_artifact",
        repo=package.manifest.name,
        domain=package.manifest.domain,
        task_key=f"{package.manifest.name}:{sha}",
        task_date=_commit_time(package, sha),
        package_digest=package.digest,
        sha=sha,
        evidence=evidence,
        prompt=prompt,
        chosen=[Message(role="assistant", content=text) for text in chosen],
        rejected=None
        if rejected is None
        else [Message(role="assistant", content=text) for text in rejected],
    )


def _git(package: CorpusPackage, *args: str) -> bytes:
    return run_git(package.repo, f"--git-dir={package.repo / '.git'}", *args).stdout


def _prompt(package: CorpusPackage, artifact: PlanArtifact) -> list[Message]:
    text = _plan_text(package, artifact.path, artifact.added_in)
    task = clean_task_text(commit_message(package, artifact.added_in)) or _title(text)
    parents = _git(package, "rev-list", "--parents", "-n", "1", artifact.added_in).split()[1:]
    tree = (
        _git(package, "ls-tree", "-r", "-z", "--name-only", parents[0].decode("ascii"))
        .decode("utf-8", "replace")
        .split("\0")
        if parents
        else []
    )
    listing = "\n".join(path for path in tree if path) or "(no files)"
    return [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=USER.format(tree=listing, task=task)),
    ]


def _plan_text(package: CorpusPackage, path: str, sha: str) -> str:
    return _git(package, "cat-file", "blob", f"{sha}:{path}").decode("utf-8", "replace").strip()


def _title(text: str) -> str:
    """The plan's first non-empty line, without its heading marks."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.lstrip("#").strip()


def _commit_time(package: CorpusPackage, sha: str) -> str:
    seconds = int(_git(package, "log", "-1", "--format=%ct", sha).strip())
    return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)
