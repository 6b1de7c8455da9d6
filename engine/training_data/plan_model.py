"""The training-plan artifact `cra train-plan` writes and `cra curate-data --plan` follows.

Phase 4 Guidelines §3 Stream C and the agent's `training_plans` table (docs/background.md): per weak
stage, the base model, the data criteria, the hyperparameters and the improvement expected.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.core.stages import BaseModelKind, Stage
from engine.training_data.items import Kind, Origin, Source


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageMetric(_Model):
    """One measured metric of a stage against its threshold (LoRA Training Strategy §9.1)."""

    name: str
    value: float | None = Field(description="None when no outcome measured it")
    threshold: float | None = Field(description="None when the strategy gives no absolute bar")
    samples: int = Field(ge=0)
    source: Literal["harness", "logged"]

    @property
    def gap(self) -> float | None:
        """How far below its threshold the metric is (0 when at or above it)."""
        if self.value is None or self.threshold is None:
            return None
        return max(0.0, self.threshold - self.value)


class StageAssessment(_Model):
    """What the outcomes say about one stage."""

    stage: Stage
    metrics: list[StageMetric]
    weak: bool
    reason: str


class DataCriteria(_Model):
    """Which items of the stage the dataset is curated from."""

    format: Kind
    sources: list[Source] = Field(min_length=1)
    origins: list[Origin] | None = None
    min_examples: int = Field(default=1, ge=1, description="curation refuses fewer")
    target_examples: int | None = Field(
        default=None,
        ge=1,
        description="what a run wants (LoRA Training Strategy §7.2): advice, not a floor",
    )


class Hyperparameters(_Model):
    """The LoRA run the plan proposes (LoRA Training Strategy §7.2, §7.3)."""

    method: Literal["sft", "dpo"]
    rank: int = Field(ge=1)
    alpha: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    scheduler: str
    epochs: int = Field(ge=1)
    max_length: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)


class PlannedStage(_Model):
    """One stage the plan trains."""

    stage: Stage
    base_model: BaseModelKind
    reason: str
    data: DataCriteria
    hyperparameters: Hyperparameters
    expected_improvement: str


class Retrain(_Model):
    """An adapter that could serve but for its base: it was trained on an older base version
    than its role's current one (LoRA Training Strategy §10.5), so it must be retrained."""

    name: str
    stage: Stage
    status: str
    reason: str


class TrainingPlan(_Model):
    """The whole artifact. `retrain`: adapters stranded on an old base (empty in plans written
    before bases were versioned)."""

    schema_version: Literal[1] = 1
    created_at: str
    created_by: str
    assessed: list[StageAssessment]
    stages: list[PlannedStage]
    retrain: list[Retrain] = Field(default_factory=list)
