"""`datasets/<id>/manifest.json`: what a curated dataset holds and how it was made."""

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from engine.core.stages import BaseModelKind, Stage
from engine.training_data.curriculum import Curriculum
from engine.training_data.items import Kind

DatasetFile = Literal["train.jsonl", "eval.jsonl", "lineage.jsonl"]
DATASET_FILES: tuple[DatasetFile, ...] = get_args(DatasetFile)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRecord(_Model):
    """One file of the dataset: its hash, rows and size."""

    sha256: str
    rows: int = Field(ge=0)
    bytes: int = Field(ge=0)


class Counts(_Model):
    """Where the candidates went."""

    candidates: int = Field(ge=0)
    excluded_by_review: int = Field(ge=0)
    flipped_by_review: int = Field(ge=0)
    degenerate: int = Field(default=0, ge=0, description="left out for breaking the contract")
    exact_duplicates: int = Field(ge=0)
    near_duplicates: int = Field(ge=0)
    dropped_for_balance: int = Field(ge=0)
    train: int = Field(ge=0)
    eval: int = Field(ge=0)
    replay: int = Field(ge=0, description="rows of train.jsonl replayed from earlier datasets")


class Split(_Model):
    """The holdout: the newest share of tasks by date, plus repos kept for eval only."""

    rule: Literal["chronological"] = "chronological"
    eval_share: float
    cutoff: str | None = Field(description="tasks dated at or after this are eval")
    eval_repos: list[str]
    train_tasks: int = Field(ge=0)
    eval_tasks: int = Field(ge=0)


class Replay(_Model):
    """Rows replayed from earlier datasets of the same stage and base model (LoRA Training Strategy
    §10)."""

    target_share: float
    share: float
    parents: list[str]


class ReviewRecord(_Model):
    """The spot-check round that let the stage be curated."""

    round_id: int
    reviewed: int
    rejected: int
    flipped: int


class DatasetManifest(_Model):
    """The manifest of one dataset; never rewritten once written."""

    schema_version: Literal[1] = 1
    id: str
    stage: Stage
    base_model: BaseModelKind
    format: Kind
    created_at: str
    created_by: str
    plan_id: int | None
    review: ReviewRecord
    files: dict[DatasetFile, FileRecord]
    counts: Counts
    sources: dict[Literal["train", "eval"], dict[str, int]]
    domains: dict[Literal["train", "eval"], dict[str, int]]
    split: Split
    replay: Replay
    near_duplicate_threshold: float
    max_domain_share: float
    seed: int
    curriculum: Curriculum | None = Field(
        default=None, description="how train.jsonl is ordered; None: by item id"
    )
