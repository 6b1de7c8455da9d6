"""Examples and preference pairs as the database holds them: one `TrainingItem` each.

An SFT example is a prompt (system and user messages) and its answer (`chosen`); a preference
pair adds a `rejected` answer. Both live in one `examples` table, told apart by `kind`, so the
spot-check review and curation see one list. Every item says where it came from: its source
(LoRA Training Strategy §6.5: synthetic, harness or logged), how it was made (`origin`), its repo,
domain and task (for balance and the holdout) and the attempt, commit or logged call it was built
from.
"""

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.stages import BASE_MODEL, BaseModelKind, Stage

Kind = Literal["sft", "preference"]
Source = Literal["synthetic", "harness", "logged"]
Origin = Literal[
    "commit", "codefavor", "harness_plan", "harness_code", "logged_call", "plan_artifact"
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Model):
    """One turn of a TRL conversational example."""

    role: Literal["system", "user", "assistant"]
    content: str


class TrainingItem(_Model):
    """One example or pair and its lineage; `row()` is what a TRL dataset holds."""

    stage: Stage
    kind: Kind
    source: Source
    origin: Origin
    repo: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    task_key: str = Field(min_length=1)
    task_date: str = Field(min_length=1, description="commit date or run time, ISO 8601 UTC")
    package_digest: str | None = None
    sha: str | None = None
    chosen_attempt_id: int | None = None
    rejected_attempt_id: int | None = None
    log_import_id: int | None = None
    log_call_id: int | None = None
    alignment: float | None = Field(default=None, description="the rejected plan's alignment")
    evidence: str | None = Field(
        default=None, description="why its label holds, e.g. a plan artifact's history"
    )
    prompt: list[Message] = Field(min_length=1)
    chosen: list[Message] = Field(min_length=1)
    rejected: list[Message] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "TrainingItem":
        if (self.kind == "preference") != (self.rejected is not None):
            raise ValueError("a preference pair has a rejected answer and an SFT example has none")
        if self.prompt[-1].role != "user":
            raise ValueError("the prompt must end with a user message")
        for name, answer in (("chosen", self.chosen), ("rejected", self.rejected or [])):
            if any(message.role != "assistant" for message in answer):
                raise ValueError(f"the {name} answer must hold only assistant messages")
        return self

    @property
    def base_model(self) -> BaseModelKind:
        return BASE_MODEL[self.stage]

    def row(self, flipped: bool = False) -> dict[str, list[dict[str, str]]]:
        """The TRL row: `messages` for SFT, `prompt`/`chosen`/`rejected` for a pair (swapped
        when a reviewer flipped it). Provenance stays out: TRL refuses extra keys."""
        return training_row(self.kind, self.prompt, self.chosen, self.rejected, flipped)


class StoredItem(TrainingItem):
    """A `TrainingItem` read back from the database."""

    id: int
    content_hash: str
    created_at: str
    prompt_tokens: int
    completion_tokens: int


def training_row(
    kind: Kind,
    prompt: list[Message],
    chosen: list[Message],
    rejected: list[Message] | None,
    flipped: bool = False,
) -> dict[str, list[dict[str, str]]]:
    """The TRL row of an item (see `TrainingItem.row`)."""
    dump = [message.model_dump() for message in prompt]
    if kind == "sft":
        if flipped:
            raise ValueError("an SFT example has no rejected answer to flip to")
        return {"messages": dump + [message.model_dump() for message in chosen]}
    if rejected is None:
        raise ValueError("a preference pair needs a rejected answer")
    first, second = (rejected, chosen) if flipped else (chosen, rejected)
    return {
        "prompt": dump,
        "chosen": [message.model_dump() for message in first],
        "rejected": [message.model_dump() for message in second],
    }


def row_json(row: dict[str, list[dict[str, str]]]) -> str:
    """The canonical one-line JSON of a TRL row, as written to a dataset file."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_hash(row: dict[str, list[dict[str, str]]]) -> str:
    """sha256 of the row's canonical JSON: equal rows are exact duplicates."""
    return hashlib.sha256(row_json(row).encode("utf-8")).hexdigest()
