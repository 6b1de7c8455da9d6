"""A dataset's folder, `datasets/<id>/`: written once, checked whenever it is read.

The folder holds train.jsonl and eval.jsonl (one TRL row a line), lineage.jsonl (for each of
those lines, the example it came from and the dataset it was replayed from) and manifest.json.
It is written in a staging folder beside its final name, flushed, and renamed into place; a
folder already at that name is never replaced. Reading one back checks manifest.json against
the database and each file against the manifest, and names the file that differs.
"""

import hashlib
import json
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.core.durable import fsync_dir, fsync_tree
from engine.core.errors import CraError, validation_lines
from engine.core.workspace import Workspace
from engine.training_data.dataset_manifest import DatasetFile, DatasetManifest, FileRecord
from engine.training_data.dataset_rows import DatasetRow
from engine.training_data.store import item_from_row

MANIFEST = "manifest.json"
RowFile = Literal["train.jsonl", "eval.jsonl"]
ROW_FILES: tuple[RowFile, RowFile] = ("train.jsonl", "eval.jsonl")
LINEAGE: Final = "lineage.jsonl"


class DatasetFilesError(CraError):
    """A dataset folder that cannot be written, or one that differs from its record."""


class UnknownDataset(CraError):
    """No dataset has the id asked for."""


class LineageEntry(BaseModel):
    """One line of lineage.jsonl: where one row of train.jsonl or eval.jsonl came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: RowFile
    line: int = Field(ge=1)
    example_id: int
    replay_from: str | None
    flipped: bool


@dataclass(frozen=True)
class StoredDataset:
    """A recorded dataset whose manifest.json matched the database when it was opened."""

    id: str
    path: Path
    manifest: DatasetManifest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jsonl(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def file_record(data: bytes) -> FileRecord:
    return FileRecord(sha256=sha256(data), rows=data.count(b"\n"), bytes=len(data))


def lineage_line(entry: LineageEntry) -> str:
    return json.dumps(entry.model_dump(), sort_keys=True, separators=(",", ":"))


def next_dataset_id(ws: Workspace, stage: str) -> str:
    """`<stage>-d<N>`, N one above the highest recorded or present on disk for `stage`."""
    pattern = re.compile(rf"{re.escape(stage)}-d([1-9][0-9]*)")
    ids = [row[0] for row in ws.db.execute("SELECT id FROM datasets WHERE stage = ?", [stage])]
    if ws.datasets_dir.is_dir():
        ids += [path.name for path in ws.datasets_dir.iterdir()]
    numbers = [int(match[1]) for name in ids if (match := pattern.fullmatch(name))]
    return f"{stage}-d{max(numbers, default=0) + 1}"


def write_dataset_folder(datasets_dir: Path, dataset_id: str, files: Mapping[str, bytes]) -> Path:
    """Write `files` as the folder `datasets_dir/dataset_id`, durably; refused if it exists."""
    datasets_dir.mkdir(parents=True, exist_ok=True)
    target = datasets_dir / dataset_id
    if target.exists() or target.is_symlink():
        raise DatasetFilesError(
            f"{target} already exists: a dataset is never overwritten; move it aside if it is "
            "not a dataset"
        )
    staging = datasets_dir / f".{dataset_id}.partial-{secrets.token_hex(6)}"
    staging.mkdir()
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        fsync_tree(staging)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging)
        raise
    fsync_dir(datasets_dir)
    return target


def open_dataset(ws: Workspace, dataset_id: str) -> StoredDataset:
    """Dataset `dataset_id`, its manifest.json checked against the database."""
    rows = list(ws.db["datasets"].rows_where("id = ?", [dataset_id]))
    if not rows:
        raise UnknownDataset(f"no dataset has id {dataset_id!r}; `cra datasets list` shows them")
    row = rows[0]
    path = ws.root / row["path"]
    manifest_path = path / MANIFEST
    data = _read(manifest_path)
    if sha256(data) != row["manifest_sha256"]:
        raise DatasetFilesError(
            f"{manifest_path}: sha256 differs from dataset {dataset_id} as recorded; "
            "datasets are never edited"
        )
    try:
        manifest = DatasetManifest.model_validate_json(data)
    except ValidationError as exc:
        raise DatasetFilesError(validation_lines(str(manifest_path), exc)) from exc
    return StoredDataset(id=dataset_id, path=path, manifest=manifest)


def read_verified(stored: StoredDataset, name: DatasetFile) -> bytes:
    """The bytes of file `name` of `stored`, refused unless they match the manifest."""
    path = stored.path / name
    data = _read(path)
    record = stored.manifest.files[name]
    if sha256(data) != record.sha256:
        raise DatasetFilesError(
            f"{path}: sha256 {sha256(data)} differs from {record.sha256} in the manifest of "
            f"dataset {stored.id}; datasets are never edited"
        )
    if file_record(data) != record:
        raise DatasetFilesError(f"{path}: rows or size differ from the manifest of {stored.id}")
    return data


def read_lineage(stored: StoredDataset) -> list[LineageEntry]:
    """lineage.jsonl of `stored`, verified and parsed."""
    path = stored.path / LINEAGE
    entries = []
    for number, text in enumerate(read_verified(stored, LINEAGE).decode("utf-8").splitlines(), 1):
        try:
            entries.append(LineageEntry.model_validate_json(text))
        except ValidationError as exc:
            raise DatasetFilesError(validation_lines(f"{path}:{number}", exc)) from exc
    return entries


def read_rows(db: sqlite_utils.Database, stored: StoredDataset) -> dict[str, list[DatasetRow]]:
    """Every row of `stored` by file, each with its example; `replay_from` names the dataset
    the row was first written to. Refused when a line is not the row its lineage names."""
    lines = {name: read_verified(stored, name).decode("utf-8").splitlines() for name in ROW_FILES}
    lineage = read_lineage(stored)
    covered = sorted((entry.file, entry.line) for entry in lineage)
    expected = sorted((name, n) for name in ROW_FILES for n in range(1, len(lines[name]) + 1))
    if covered != expected:
        raise DatasetFilesError(
            f"{stored.path / LINEAGE}: does not name each line of train.jsonl and eval.jsonl "
            "exactly once"
        )
    items = {
        row["id"]: item_from_row(row)
        for row in db.query(
            "SELECT * FROM examples WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(sorted({entry.example_id for entry in lineage}))],
        )
    }
    rows: dict[str, list[DatasetRow]] = {name: [] for name in ROW_FILES}
    for entry in sorted(lineage, key=lambda entry: (entry.file, entry.line)):
        where = f"{stored.path / entry.file}:{entry.line}"
        if entry.example_id not in items:
            raise DatasetFilesError(f"{where}: example {entry.example_id} is not in the database")
        row = DatasetRow.new(items[entry.example_id], entry.flipped)
        if row.line != lines[entry.file][entry.line - 1]:
            raise DatasetFilesError(
                f"{where}: the line is not example {entry.example_id}'s row as lineage.jsonl says"
            )
        rows[entry.file].append(
            DatasetRow(
                item=row.item,
                flipped=row.flipped,
                line=row.line,
                replay_from=entry.replay_from or stored.id,
            )
        )
    return rows


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetFilesError(f"{path}: cannot read: {exc}") from exc


class DatasetRecord(BaseModel):
    """One row of the `datasets` table, as `cra datasets list` shows it."""

    model_config = ConfigDict(frozen=True)

    id: str
    stage: str
    base_model: str
    format: str
    path: str
    created_at: str
    created_by: str | None
    plan_id: int | None
    review_round_id: int | None
    train_count: int
    eval_count: int
    replay_count: int


def list_datasets(db: sqlite_utils.Database, stage: str | None = None) -> list[DatasetRecord]:
    """Every recorded dataset (of `stage` when given), in the order they were made."""
    where, params = ("WHERE stage = ?", [stage]) if stage else ("", [])
    fields = ", ".join(DatasetRecord.model_fields)
    return [
        DatasetRecord(**row)
        for row in db.query(f"SELECT {fields} FROM datasets {where} ORDER BY rowid", params)
    ]
