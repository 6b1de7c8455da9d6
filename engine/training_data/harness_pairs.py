"""Preference pairs from harness attempts (LoRA Training Strategy §6.9): same task, same context,
one plan passed and one failed.

Only two outcomes label a plan. Chosen: `resolved` (every FAIL_TO_PASS and PASS_TO_PASS test
passes), the gold pipeline's attempts included. Rejected: `failed` (no FAIL_TO_PASS test passes,
or the answer was malformed, or its edits did not apply: the planner's fault). `partial` is never
rejected (it fixed part of the task, so it is not clearly worse), nor `error` (the run did not
complete: the endpoint, a time limit or a missing report, not the plan) nor `unusable` (there was
no task to attempt).

Each failed attempt is paired with the resolved attempt of the same task (package digest and
commit) with the lowest id whose `context.txt` is byte-identical to its own: both planners must
have seen the same prompt, which is rebuilt with `build_messages` from the package, the commit
and that context. Without one the failed attempt is skipped with the reason.

Isolating plan quality from execution quality: the rejected plan's alignment with the commit is
the mean of its file F1 and symbol F1 (each from the attempt's precision and recall; an F1 with
either part undefined is left out of the mean). At most `planning_alignment_max`, the plan itself
was wrong: a `planning_dpo` pair of the two plans. At least `coding_alignment_min`, the plan was
sound and the code failed: an `execute_code` pair of the two raw answers. In between the pair
would be mislabelled either way (a mislabelled pair poisons the data) and is not made.
"""

import json
from collections.abc import Collection
from datetime import UTC
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.core.config import TrainingDataConfig
from engine.core.errors import CraError
from engine.core.stages import TOKEN_BUDGET, Stage
from engine.core.timestamps import TIME_FORMAT
from engine.core.workspace import Workspace
from engine.harness.attempts import commit_message
from engine.harness.package import CorpusPackage, load_package
from engine.harness.pipeline import PlannerTask
from engine.harness.prompt import build_messages
from engine.harness.retrieve import count_tokens
from engine.harness.task_validation import find_commit
from engine.intake.manifest import ManifestCommit
from engine.training_data.items import Message, TrainingItem

NO_PLAN = "no plan to judge"
AMBIGUOUS = "alignment between the planning and coding bands: the label would be a guess"
NO_RESOLVED = "no resolved attempt of the task"
OTHER_CONTEXT = "no resolved attempt saw the same context"
NO_ARTIFACT = "an artifact of the attempt is missing"
OVER_BUDGET = "over the stage's token budget (never truncated)"


class TrainingDataError(CraError):
    """The recorded data cannot give training items as they stand; the message says why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Skip(_Model):
    """An item a task did not give: `what` was not made, `reason` is the rule (the same text
    for every skip of its kind, so reports group by it) and `detail` the particulars."""

    package_digest: str
    sha: str
    what: str = Field(description="'commit', '<stage> example', 'codefavor pair', 'harness pair'")
    stage: Stage | None
    reason: str
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.what}: {self.reason}"


class Lineage(_Model):
    """The provenance fields every item of one task carries."""

    repo: str
    domain: str
    task_key: str
    task_date: str
    package_digest: str
    sha: str


def lineage_of(package: CorpusPackage, commit: ManifestCommit) -> Lineage:
    """The task's lineage: its repo, domain, `repo:sha` key and the commit's date in UTC.

    The key is the repository (the manifest's name) and the commit, not the package: a commit
    two packages bring is one task, so its items share a holdout side and a review decision."""
    if commit.date.tzinfo is None:
        raise TrainingDataError(
            f"{package.root / 'manifest.json'}: commit {commit.sha} has a date without a time "
            "zone, so its UTC time is unknown"
        )
    return Lineage(
        repo=package.manifest.name,
        domain=package.manifest.domain,
        task_key=f"{package.manifest.name}:{commit.sha}",
        task_date=commit.date.astimezone(UTC).strftime(TIME_FORMAT),
        package_digest=package.digest,
        sha=commit.sha,
    )


def pair_tokens(prompt: list[Message], chosen: str, rejected: str) -> int:
    """The longer of the two sequences a preference trainer sees: the prompt and one answer."""
    prompt_tokens = sum(count_tokens(message.content) for message in prompt)
    return prompt_tokens + max(count_tokens(chosen), count_tokens(rejected))


def plan_alignment(attempt: dict[str, Any]) -> float | None:
    """The mean of the attempt's file F1 and symbol F1, each left out when undefined; None
    when both are."""
    parts = [
        _f1(attempt["file_precision"], attempt["file_recall"]),
        _f1(attempt["symbol_precision"], attempt["symbol_recall"]),
    ]
    known = [part for part in parts if part is not None]
    return sum(known) / len(known) if known else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def harness_pairs(
    ws: Workspace, config: TrainingDataConfig, digests: Collection[str] | None = None
) -> tuple[list[TrainingItem], list[Skip]]:
    """Every preference pair the done attempts give (of the packages `digests`, else all),
    and the failed attempts that gave none, with why; see the module docstring."""
    tasks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in ws.db.execute_returning_dicts(
        "SELECT * FROM attempts WHERE state = 'done' AND outcome IN ('resolved', 'failed') "
        "ORDER BY id"
    ):
        if digests is None or row["package_digest"] in digests:
            tasks.setdefault((row["package_digest"], row["sha"]), []).append(row)
    packages: dict[str, CorpusPackage] = {}
    items: list[TrainingItem] = []
    skips: list[Skip] = []
    for (digest, sha), attempts in tasks.items():
        failed = [a for a in attempts if a["outcome"] == "failed"]
        if not failed:
            continue
        if digest not in packages:
            packages[digest] = load_package(ws, digest)
        task = _Task(ws, packages[digest], sha, [a for a in attempts if a["outcome"] == "resolved"])
        for attempt in failed:
            made = task.pair(attempt, config)
            if isinstance(made, Skip):
                skips.append(made)
            else:
                items.append(made)
    return items, skips


class _Task:
    """One task's resolved attempts and what a pair of it needs, read once."""

    def __init__(
        self, ws: Workspace, package: CorpusPackage, sha: str, resolved: list[dict[str, Any]]
    ) -> None:
        self.ws = ws
        self.package = package
        self.commit = find_commit(package, sha)
        self.lineage = lineage_of(package, self.commit)
        self.instruction = commit_message(package, sha)
        self.resolved = resolved
        self._contexts: dict[int, bytes | None] = {}

    def skip(
        self, attempt: dict[str, Any], reason: str, detail: str = "", stage: Stage | None = None
    ) -> Skip:
        """Why `attempt` gave no pair; `stage` is the pair's once its alignment decided it."""
        return Skip(
            package_digest=self.package.digest,
            sha=self.commit.sha,
            what="harness pair",
            stage=stage,
            reason=reason,
            detail=f"failed attempt {attempt['id']}" + (f": {detail}" if detail else ""),
        )

    def artifact(self, attempt: dict[str, Any], name: str) -> Path | None:
        if attempt["artifacts"] is None:
            return None
        path = self.ws.root / attempt["artifacts"] / name
        return path if path.is_file() else None

    def context(self, attempt: dict[str, Any]) -> bytes | None:
        if attempt["id"] not in self._contexts:
            path = self.artifact(attempt, "context.txt")
            self._contexts[attempt["id"]] = None if path is None else path.read_bytes()
        return self._contexts[attempt["id"]]

    def pair(self, rejected: dict[str, Any], config: TrainingDataConfig) -> TrainingItem | Skip:
        alignment = plan_alignment(rejected)
        if rejected["plan_json"] is None or alignment is None:
            return self.skip(rejected, NO_PLAN)
        if alignment <= config.planning_alignment_max:
            stage: Stage = "planning_dpo"
        elif alignment >= config.coding_alignment_min:
            stage = "execute_code"
        else:
            return self.skip(rejected, AMBIGUOUS, f"alignment {alignment:.2f}")
        if not self.resolved:
            return self.skip(rejected, NO_RESOLVED, stage=stage)
        context = self.context(rejected)
        if context is None:
            return self.skip(rejected, NO_ARTIFACT, "context.txt", stage)
        chosen = next((a for a in self.resolved if self.context(a) == context), None)
        if chosen is None:
            ids = ", ".join(str(a["id"]) for a in self.resolved)
            return self.skip(rejected, OTHER_CONTEXT, f"resolved attempts {ids}", stage)
        answers = self.answers(stage, chosen, rejected)
        if isinstance(answers, Skip):
            return answers
        prompt = self.prompt(rejected, context)
        tokens = pair_tokens(prompt, *answers)
        if tokens > TOKEN_BUDGET[stage]:
            detail = f"{tokens} tokens > {TOKEN_BUDGET[stage]}"
            return self.skip(rejected, OVER_BUDGET, detail, stage)
        return TrainingItem(
            **self.lineage.model_dump(),
            stage=stage,
            kind="preference",
            source="harness",
            origin="harness_plan" if stage == "planning_dpo" else "harness_code",
            chosen_attempt_id=chosen["id"],
            rejected_attempt_id=rejected["id"],
            alignment=alignment,
            prompt=prompt,
            chosen=[Message(role="assistant", content=answers[0])],
            rejected=[Message(role="assistant", content=answers[1])],
        )

    def answers(
        self, stage: Stage, chosen: dict[str, Any], rejected: dict[str, Any]
    ) -> tuple[str, str] | Skip:
        """The chosen and rejected answers: each plan for planning_dpo, else each raw answer."""
        if stage == "planning_dpo":
            if chosen["plan_json"] is None:
                raise TrainingDataError(
                    f"attempt {chosen['id']} is resolved but records no plan (plan_json is empty)"
                )
            return _plan_answer(chosen["plan_json"]), _plan_answer(rejected["plan_json"])
        texts = []
        for attempt in (chosen, rejected):
            path = self.artifact(attempt, "raw.txt")
            if path is None:
                detail = f"raw.txt of attempt {attempt['id']}"
                return self.skip(rejected, NO_ARTIFACT, detail, stage)
            texts.append(path.read_text(encoding="utf-8"))
        return texts[0], texts[1]

    def prompt(self, attempt: dict[str, Any], context: bytes) -> list[Message]:
        """The planner's messages, as the attempt's planner received them."""
        text = context.decode("utf-8")
        task = PlannerTask(
            task=attempt["task"],
            repo=self.package.manifest.name,
            instruction=self.instruction,
            parent=self.commit.parent,
            worktree="",  # the throwaway checkout; the messages do not show it
            context=text,
            context_tokens=count_tokens(text),
            model=attempt["model"],
            temperature=attempt["temperature"],
            seed=attempt["seed"],
        )
        return [Message.model_validate(message) for message in build_messages(task)]


def _plan_answer(plan_json: str) -> str:
    return json.dumps({"plan": json.loads(plan_json)}, indent=2, ensure_ascii=False)
