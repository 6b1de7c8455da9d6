"""`cra data export-base`: a base model's full fine-tune data, for the outsourced run.

LoRA Training Strategy §2, §2.6, §12.3: meta, step and test planning are trained into the reasoning
base by a full fine-tune that runs on another machine; the console prepares its data. The export
holds every reviewed planning example (the commit-derived ones and the good or fine plan artifacts,
origin `plan_artifact`) under the rules curation keeps:

1. each planning stage that has items must pass its spot-check gate (`review.review_gate`);
2. rejected items are left out, and so are items breaking their stage's contract (the stage
   is refused above `[curation] max_degenerate_rate`, `audit.screen_candidates`); then exact
   and near duplicates go (`curate.reviewed_rows`);
3. whole tasks are held out for eval, jointly across the three stages so no commit trains one
   planning type and evaluates another; a task held out anywhere (a frozen eval set of any
   stage, an earlier export or dataset's eval side) stays held out (`holdout.split`);
4. the folder is written beside its name and renamed into place (never over an existing one)
   and recorded, in one transaction, in `base_exports` with each row in `base_export_examples`.

The folder, in a conventional format any SFT trainer reads:

- `train.jsonl`, `eval.jsonl`: one chat-format row a line, `{"messages": [{"role", "content"},
  ...]}` (system, user, then the assistant's answer), ordered by stage then item;
- `lineage.jsonl`: for each of those lines its file, line number, item id, stage and origin;
- `manifest.json` (`BaseExportManifest`): counts by stage, source and repo, the review rounds
  used, the split, each file's sha256, who made it and when.

The coding base's full fine-tune data (the fail-fast corpus, §6.7) holds no planning and is not
exported here.
"""

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.core.errors import CraError
from engine.core.stages import BASE_TUNE_STAGES, BaseModelKind, Stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training_data.audit import screen_candidates
from engine.training_data.curate import rejected_texts, reviewed_rows
from engine.training_data.curation_errors import CurationRefused
from engine.training_data.dataset_files import (
    RowFile,
    file_record,
    jsonl,
    sha256,
    write_dataset_folder,
)
from engine.training_data.dataset_manifest import FileRecord, Split
from engine.training_data.dataset_rows import DatasetRow
from engine.training_data.holdout import Holdout, held_out_tasks, split
from engine.training_data.review import review_gate, round_summary, verdicts
from engine.training_data.store import item_from_row

FORMAT: Final = "chat-jsonl"
MANIFEST = "manifest.json"
LINEAGE = "lineage.jsonl"
ROW_FILES: tuple[RowFile, RowFile] = ("train.jsonl", "eval.jsonl")


class BaseExportError(CraError):
    """The base fine-tune data cannot be exported as asked."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageExport(_Model):
    """One planning stage in the export: the round that let it in and where its items went."""

    review_round_id: int
    reviewed: int = Field(ge=0)
    rejected: int = Field(ge=0)
    candidates: int = Field(ge=0)
    excluded_by_review: int = Field(ge=0)
    degenerate: int = Field(ge=0, description="left out for breaking the stage's contract")
    exact_duplicates: int = Field(ge=0)
    near_duplicates: int = Field(ge=0)
    train: int = Field(ge=0)
    eval: int = Field(ge=0)


class BaseLineage(_Model):
    """One line of lineage.jsonl: which item a line of train.jsonl or eval.jsonl is."""

    file: RowFile
    line: int = Field(ge=1)
    example_id: int
    stage: Stage
    origin: str


class BaseExportManifest(_Model):
    """manifest.json of a base export; never rewritten once written."""

    schema_version: Literal[1] = 1
    id: str
    role: BaseModelKind
    format: Literal["chat-jsonl"] = FORMAT
    created_at: str
    created_by: str
    stages: dict[Stage, StageExport]
    sources: dict[Literal["train", "eval"], dict[str, int]]
    repos: dict[Literal["train", "eval"], dict[str, int]]
    origins: dict[Literal["train", "eval"], dict[str, int]]
    split: Split
    files: dict[str, FileRecord]
    near_duplicate_threshold: float


class BaseExport(_Model):
    """An export this call wrote, and where."""

    id: str
    path: str
    manifest: BaseExportManifest


def export_base(ws: Workspace, role: str, out: Path, operator: str | None = None) -> BaseExport:
    """Write `role`'s full fine-tune data to the new folder `out` and record it (module doc)."""
    if role == "coding":
        raise BaseExportError(
            "the coding base has no planning data to export: planning is the reasoning base's "
            "(LoRA Training Strategy §2.6); use --role reasoning"
        )
    if role != "reasoning":
        raise BaseExportError(f"unknown role {role!r}; the roles are reasoning and coding")
    out = out.expanduser().absolute()
    if out.exists() or out.is_symlink():
        raise BaseExportError(f"{out} already exists: an export is written to a new folder")
    if not out.parent.is_dir():
        raise BaseExportError(f"{out.parent} is not a folder; make it first")
    config = ws.config.curation
    per_stage: dict[Stage, tuple[list[DatasetRow], StageExport]] = {}
    for stage in BASE_TUNE_STAGES:
        chosen = _stage_rows(ws, stage, config.near_duplicate_threshold)
        if chosen is not None:
            per_stage[stage] = chosen
    if not per_stage:
        raise BaseExportError(
            f"no {', '.join(BASE_TUNE_STAGES)} items to export: derive training data first "
            "(`cra data build`)"
        )
    rows = [row for stage_rows, _ in per_stage.values() for row in stage_rows]
    holdout = split(rows, config.eval_share, config.eval_repos, held_out_tasks(ws.db))
    order = {stage: index for index, stage in enumerate(BASE_TUNE_STAGES)}

    def ordered(side: Sequence[DatasetRow]) -> list[DatasetRow]:
        return sorted(side, key=lambda row: (order[row.item.stage], row.order))

    train, eval_ = ordered(holdout.train), ordered(holdout.eval)
    if not train:
        raise BaseExportError(
            f"every one of the {len(rows)} planning rows falls on the eval side; derive data "
            "from more tasks"
        )
    files = _files(train, eval_)
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        export_id = _next_id(ws, role)
        manifest = _manifest(ws, export_id, operator, per_stage, train, eval_, holdout, files)
        text = (manifest.model_dump_json(indent=2) + "\n").encode("utf-8")
        path = write_dataset_folder(out.parent, out.name, {**files, MANIFEST: text})
        _record(ws, manifest, path, text, train, eval_)
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    ws.db.execute("COMMIT")
    return BaseExport(id=export_id, path=str(path), manifest=manifest)


def _manifest(
    ws: Workspace,
    export_id: str,
    operator: str | None,
    per_stage: dict[Stage, tuple[list[DatasetRow], StageExport]],
    train: Sequence[DatasetRow],
    eval_: Sequence[DatasetRow],
    holdout: Holdout,
    files: dict[str, bytes],
) -> BaseExportManifest:
    config = ws.config.curation
    return BaseExportManifest(
        id=export_id,
        role="reasoning",
        created_at=utc_now(),
        created_by=operator or ws.config.operator,
        stages={
            stage: counts.model_copy(
                update={
                    "train": sum(row.item.stage == stage for row in train),
                    "eval": sum(row.item.stage == stage for row in eval_),
                }
            )
            for stage, (_, counts) in per_stage.items()
        },
        sources={"train": _tally(train, "source"), "eval": _tally(eval_, "source")},
        repos={"train": _tally(train, "repo"), "eval": _tally(eval_, "repo")},
        origins={"train": _tally(train, "origin"), "eval": _tally(eval_, "origin")},
        split=Split(
            eval_share=config.eval_share,
            cutoff=holdout.cutoff,
            eval_repos=list(config.eval_repos),
            train_tasks=len({row.item.task_key for row in train}),
            eval_tasks=len({row.item.task_key for row in eval_}),
        ),
        files={name: file_record(data) for name, data in files.items()},
        near_duplicate_threshold=config.near_duplicate_threshold,
    )


def _stage_rows(
    ws: Workspace, stage: Stage, near_threshold: float
) -> tuple[list[DatasetRow], StageExport] | None:
    """The stage's rows after review and deduplication, or None when it has no items; refused
    when its spot-check gate does not pass."""
    candidates = [
        item_from_row(row)
        for row in ws.db.query(
            "SELECT * FROM examples WHERE stage = ? AND kind = 'sft' ORDER BY id", [stage]
        )
    ]
    if not candidates:
        return None
    gate = review_gate(ws, stage, "sft")
    if not gate.ok or gate.round_id is None:
        raise BaseExportError(f"{stage} cannot be exported: {gate.reason}")
    decisions = verdicts(ws.db, stage)
    kept = [item for item in candidates if decisions.get(item.id) != "reject"]
    try:
        degenerate = screen_candidates(stage, kept, ws.config.curation.max_degenerate_rate)
    except CurationRefused as exc:
        raise BaseExportError(f"{stage} cannot be exported: {exc}") from exc
    rows, exact, near, near_rejected = reviewed_rows(
        [item for item in candidates if item.id not in degenerate],
        decisions,
        rejected_texts(ws.db, decisions),
        [],
        near_threshold,
    )
    summary = round_summary(ws.db, gate.round_id)
    counts = StageExport(
        review_round_id=gate.round_id,
        reviewed=summary.decided,
        rejected=summary.rejected,
        candidates=len(candidates),
        excluded_by_review=sum(decisions.get(item.id) == "reject" for item in candidates)
        + near_rejected,
        degenerate=len(degenerate),
        exact_duplicates=exact,
        near_duplicates=near,
        train=0,
        eval=0,
    )
    return rows, counts


def _files(train: Sequence[DatasetRow], eval_: Sequence[DatasetRow]) -> dict[str, bytes]:
    lineage = [
        BaseLineage(
            file=name,
            line=number,
            example_id=row.example_id,
            stage=row.item.stage,
            origin=row.item.origin,
        )
        for name, rows in zip(ROW_FILES, (train, eval_), strict=True)
        for number, row in enumerate(rows, 1)
    ]
    return {
        "train.jsonl": jsonl([row.line for row in train]),
        "eval.jsonl": jsonl([row.line for row in eval_]),
        LINEAGE: jsonl(
            [
                json.dumps(entry.model_dump(), sort_keys=True, separators=(",", ":"))
                for entry in lineage
            ]
        ),
    }


def _tally(rows: Sequence[DatasetRow], field: str) -> dict[str, int]:
    return dict(sorted(Counter(str(getattr(row.item, field)) for row in rows).items()))


def _next_id(ws: Workspace, role: str) -> str:
    (count,) = ws.db.execute("SELECT COUNT(*) FROM base_exports WHERE role = ?", [role]).fetchone()
    return f"{role}-base-e{count + 1}"


def _record(
    ws: Workspace,
    manifest: BaseExportManifest,
    path: Path,
    text: bytes,
    train: Sequence[DatasetRow],
    eval_: Sequence[DatasetRow],
) -> None:
    ws.db.table("base_exports").insert(
        {
            "id": manifest.id,
            "role": manifest.role,
            "path": str(path),
            "created_at": manifest.created_at,
            "created_by": manifest.created_by,
            "train_count": len(train),
            "eval_count": len(eval_),
            "manifest_sha256": sha256(text),
            "manifest_json": text.decode("utf-8"),
        }
    )
    ws.db.conn.executemany(
        "INSERT INTO base_export_examples (export_id, example_id, split) VALUES (?, ?, ?)",
        [(manifest.id, row.example_id, "train") for row in train]
        + [(manifest.id, row.example_id, "eval") for row in eval_],
    )
