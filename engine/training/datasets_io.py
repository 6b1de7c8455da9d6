"""The training rows of a run: a dataset folder's train.jsonl, checked before a step is taken.

The worker reads the folder `cra curate-data` wrote without the database: manifest.json must
have the sha256 the run spec names and describe the spec's stage, base model and format
(`sft` rows for SFT, `preference` rows for DPO), train.jsonl must match the manifest, and each
line must be a TRL conversational row of that format. Any difference refuses the run, naming
the file and line.
"""

from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.core.errors import CraError, validation_lines
from engine.training.contract import RunSpec
from engine.training_data.dataset_files import (
    MANIFEST,
    DatasetFilesError,
    StoredDataset,
    read_verified,
    sha256,
)
from engine.training_data.dataset_manifest import DatasetManifest
from engine.training_data.items import Kind, Message

TRAIN_FILE: Final = "train.jsonl"
FORMAT: dict[str, Kind] = {"sft": "sft", "dpo": "preference"}


class DatasetRefused(CraError):
    """The run's dataset folder is missing, changed, or does not fit the run spec."""


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SftRow(_Row):
    """`{"messages": [...]}`: a conversation ending in the assistant's answer."""

    messages: list[Message] = Field(min_length=2)

    @model_validator(mode="after")
    def _ends_with_answer(self) -> "SftRow":
        if self.messages[-1].role != "assistant":
            raise ValueError("the last message must be the assistant's")
        return self


class PreferenceRow(_Row):
    """`{"prompt": [...], "chosen": [...], "rejected": [...]}`."""

    prompt: list[Message] = Field(min_length=1)
    chosen: list[Message] = Field(min_length=1)
    rejected: list[Message] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> "PreferenceRow":
        if self.prompt[-1].role != "user":
            raise ValueError("the prompt must end with a user message")
        for name, answer in (("chosen", self.chosen), ("rejected", self.rejected)):
            if any(message.role != "assistant" for message in answer):
                raise ValueError(f"the {name} answer must hold only assistant messages")
        return self


def load_train_rows(dataset_dir: Path, spec: RunSpec) -> list[dict[str, Any]]:
    """The rows of `dataset_dir/train.jsonl` as TRL dicts, once the folder fits `spec`."""
    stored = _open(dataset_dir, spec)
    expected = FORMAT[spec.method]
    if stored.manifest.format != expected:
        raise DatasetRefused(
            f"{dataset_dir / MANIFEST}: format {stored.manifest.format!r}, but method "
            f"{spec.method} trains on {expected!r} rows"
        )
    try:
        data = read_verified(stored, TRAIN_FILE)
    except DatasetFilesError as exc:
        raise DatasetRefused(str(exc)) from exc
    model = SftRow if expected == "sft" else PreferenceRow
    rows = []
    for number, text in enumerate(data.decode("utf-8").splitlines(), 1):
        where = f"{dataset_dir / TRAIN_FILE}:{number}"
        try:
            row = model.model_validate_json(text)
        except ValidationError as exc:
            raise DatasetRefused(validation_lines(where, exc)) from exc
        rows.append(row.model_dump())
    if not rows:
        raise DatasetRefused(f"{dataset_dir / TRAIN_FILE}: no rows to train on")
    return rows


def _open(dataset_dir: Path, spec: RunSpec) -> StoredDataset:
    path = dataset_dir / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetRefused(f"{path}: cannot read: {exc}") from exc
    if sha256(data) != spec.dataset_sha256:
        raise DatasetRefused(
            f"{path}: sha256 {sha256(data)} differs from {spec.dataset_sha256} in the run spec; "
            "datasets are never edited"
        )
    try:
        manifest = DatasetManifest.model_validate_json(data)
    except ValidationError as exc:
        raise DatasetRefused(validation_lines(str(path), exc)) from exc
    mismatches = [
        f"{name} {have!r} (the run spec says {want!r})"
        for name, have, want in (
            ("id", manifest.id, spec.dataset_id),
            ("stage", manifest.stage, spec.stage),
            ("base model", manifest.base_model, spec.base_model),
        )
        if have != want
    ]
    if mismatches:
        raise DatasetRefused(f"{path}: " + "; ".join(mismatches))
    return StoredDataset(id=manifest.id, path=dataset_dir, manifest=manifest)
