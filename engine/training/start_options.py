"""What a training run can be started with: the curated datasets `cra train start` accepts, and
the settings a stage's run takes unless told otherwise.

A run's settings are LoRA Training Strategy §7.3's defaults (`Hyper`) at the stage's rank, under
the workspace's `[training.hyper.<stage>]`, under the run's own `--set KEY=VALUE`.
`setting_text` writes a value the way `--set` reads it back (`parse_settings`), so the console's
start form shows each setting's true default and sends what the operator changed as the CLI
would. Light to import: the form reads these before the training stack is loaded.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlite_utils
from pydantic import BaseModel, ConfigDict, ValidationError

from engine.core.config import TrainingConfig
from engine.core.errors import CraError, validation_lines
from engine.core.stages import LORA_STAGES, LoraStage, Stage
from engine.training.contract import Hyper, Method
from engine.training_data.items import Kind

METHOD_FOR_FORMAT: dict[Kind, Method] = {"sft": "sft", "preference": "dpo"}
SETTINGS: tuple[str, ...] = tuple(Hyper.model_fields)
"""Every setting a run takes, in the order the form and `cra train settings` show them."""
UNSET_MEANS = {"alpha": "2 × rank", "max_steps": "from epochs"}
"""What a setting left empty (None) means, where None is a value of its own."""


class TrainingRunError(CraError):
    """A run cannot be started, stopped or resumed as asked."""


def stage_rank(stage: Stage) -> int:
    """The LoRA rank a stage trains at unless overridden (LoRA Training Strategy §7.2)."""
    return 32 if stage == "execute_code" else 16


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings as overrides; a value that parses as JSON is that JSON value."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TrainingRunError(f"--set {pair!r}: expected key=value")
        if key in settings:
            raise TrainingRunError(f"--set {key}: given twice")
        try:
            settings[key] = json.loads(text)
        except json.JSONDecodeError:
            settings[key] = text
    return settings


def setting_text(value: object) -> str:
    """A setting's value as `--set` takes it, one shell word (`parse_settings` reads it back as
    the same value); empty for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))


def build_hyper(stage: Stage, overrides: dict[str, Any]) -> Hyper:
    """The §7.3 defaults at the stage's rank, with `overrides` applied and checked."""
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise TrainingRunError(
            f"unknown setting {', '.join(unknown)}; settings are {', '.join(SETTINGS)}"
        )
    try:
        return Hyper.model_validate({"rank": stage_rank(stage), **overrides})
    except ValidationError as exc:
        raise TrainingRunError(validation_lines("setting", exc)) from exc


def configured_hyper(config: TrainingConfig, stage: LoraStage) -> Hyper:
    """The settings a run of `stage` takes without `--set`: the defaults under the workspace's
    `[training.hyper.<stage>]`; a bad table there is refused, naming it."""
    try:
        return build_hyper(stage, config.hyper.get(stage, {}))
    except TrainingRunError as exc:
        raise TrainingRunError(f"[training.hyper.{stage}] in cra.toml: {exc}") from exc


class StageSettings(BaseModel):
    """A stage's run settings before the run's own: each as `--set` text, which of them the
    workspace's cra.toml sets, and its refusal of that table (the values are then the
    built-in defaults, and a run is refused until the table is fixed)."""

    model_config = ConfigDict(frozen=True)

    stage: LoraStage
    values: dict[str, str]
    configured: tuple[str, ...]
    error: str | None = None


def stage_settings(config: TrainingConfig, stage: LoraStage) -> StageSettings:
    """What `stage`'s run takes unless told otherwise, as the start form shows it."""
    configured = config.hyper.get(stage, {})
    error = None
    try:
        hyper = configured_hyper(config, stage)
    except TrainingRunError as exc:
        hyper, error = build_hyper(stage, {}), str(exc)
    values = {name: setting_text(getattr(hyper, name)) for name in SETTINGS}
    names = tuple(name for name in SETTINGS if name in configured)
    return StageSettings(stage=stage, values=values, configured=names, error=error)


class TrainableDataset(BaseModel):
    """A curated dataset a run can train on: its stage's adapter, with the method its rows
    train with."""

    model_config = ConfigDict(frozen=True)

    id: str
    stage: LoraStage
    format: Kind
    base_model: str
    train_count: int
    eval_count: int
    created_at: str

    @property
    def method(self) -> Method:
        return METHOD_FOR_FORMAT[self.format]


def trainable_datasets(db: sqlite_utils.Database) -> list[TrainableDataset]:
    """The curated datasets of a LoRA stage (those `cra train start` accepts), newest first."""
    marks = ", ".join("?" for _ in LORA_STAGES)
    fields = ", ".join(TrainableDataset.model_fields)
    rows = db.query(
        f"SELECT {fields} FROM datasets WHERE stage IN ({marks}) ORDER BY created_at DESC, id",
        list(LORA_STAGES),
    )
    return [TrainableDataset.model_validate(row) for row in rows]


class StartOptions(BaseModel):
    """What the start form offers: the trainable datasets and each LoRA stage's settings."""

    model_config = ConfigDict(frozen=True)

    datasets: list[TrainableDataset]
    settings: dict[LoraStage, StageSettings]


def start_options(db: sqlite_utils.Database, config: TrainingConfig) -> StartOptions:
    return StartOptions(
        datasets=trainable_datasets(db),
        settings={stage: stage_settings(config, stage) for stage in LORA_STAGES},
    )
