"""`cra curate-data`: a stage's reviewed examples or pairs become a dataset on disk.

The console's design brief, "Pairs and datasets" (docs/background.md); LoRA Training Strategy §6.1
(domains), §9.1 (held-out eval), §10 (accumulate, never replace; 10-20% replay). For each stage and
format:

1. the stage's spot-check must pass its review gate;
2. the candidates are the stage's items of that kind (within the plan's criteria) that no
   earlier dataset of the stage, base model and format holds: new data only, earlier data
   comes back through replay;
3. rejected items, their identical twins (the same content) and their near twins (at the
   near-duplicate threshold) are left out and flipped pairs swapped; items that break their
   stage's contract (`contracts.py`) are left out too, and the stage is refused when more than
   `max_degenerate_rate` of the candidates the review kept do (audit.py); then exact and near
   duplicates go (also against the rows of earlier datasets), the oldest of each group kept;
4. whole tasks are split into train and eval (holdout.py: a task of any frozen eval set, or
   held out by any earlier dataset or base export, of any stage, is eval), train is cut to the
   domain cap (balance.py), and rows of earlier datasets are replayed into train (replay.py);
   a precision dataset's train rows are ordered easy to hard (curriculum.py);
5. the folder is written and renamed into place, then recorded with its rows in one
   transaction. An earlier dataset is read (and checked) but never touched.
"""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.stages import (
    BASE_MODEL,
    LORA_STAGES,
    BaseModelKind,
    Stage,
    require_lora_stage,
)
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.training_data.audit import screen_candidates
from engine.training_data.balance import balance
from engine.training_data.curation_errors import CurateError, CurationRefused
from engine.training_data.curriculum import CURRICULUM_STAGES, Curriculum, easy_to_hard
from engine.training_data.dataset_files import (
    LINEAGE,
    MANIFEST,
    ROW_FILES,
    LineageEntry,
    file_record,
    jsonl,
    lineage_line,
    next_dataset_id,
    open_dataset,
    read_rows,
    sha256,
    write_dataset_folder,
)
from engine.training_data.dataset_manifest import (
    DATASET_FILES,
    Counts,
    DatasetManifest,
    Replay,
    ReviewRecord,
    Split,
)
from engine.training_data.dataset_rows import DatasetRow
from engine.training_data.dedup import drop_exact, drop_near, drop_near_to
from engine.training_data.holdout import Holdout, held_out_tasks, split
from engine.training_data.items import Kind, StoredItem
from engine.training_data.plan_model import DataCriteria
from engine.training_data.plans import load_plan
from engine.training_data.replay import pick_replay
from engine.training_data.review import (
    Decision,
    RoundSummary,
    check_stage,
    review_gate,
    round_summary,
    verdicts,
)
from engine.training_data.store import item_from_row

KINDS: tuple[Kind, ...] = get_args(Kind)


def default_format(stage: Stage) -> Kind:
    """planning_dpo trains on pairs; every other stage on SFT examples."""
    return "preference" if stage == "planning_dpo" else "sft"


class CuratedDataset(BaseModel):
    """A dataset this curation wrote."""

    model_config = ConfigDict(frozen=True)

    id: str
    path: str
    manifest: DatasetManifest
    target_examples: int | None = None


class BlockedStage(BaseModel):
    """A stage (and format) this curation did not make a dataset for, and why."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    format: Kind
    reason: str


class CurateReport(BaseModel):
    """What one curation made, and the stages it could not make a dataset for."""

    model_config = ConfigDict(frozen=True)

    curated: list[CuratedDataset]
    blocked: list[BlockedStage]

    def summary(self) -> str:
        """One line: each dataset made with its rows, then the stages blocked; the reason
        too when the one stage asked for was blocked."""
        if not self.curated and len(self.blocked) == 1:
            (only,) = self.blocked
            return f"{only.stage} ({only.format}) not curated: {only.reason}"
        made = ", ".join(
            f"{done.id} ({done.manifest.counts.train:,} train, "
            f"{done.manifest.counts.eval:,} eval rows)"
            for done in self.curated
        )
        parts = [f"curated {made}" if made else "nothing curated"]
        if self.blocked:
            parts.append("blocked: " + ", ".join(f"{b.stage} ({b.format})" for b in self.blocked))
        return "; ".join(parts)


@dataclass(frozen=True)
class _Target:
    stage: Stage
    format: Kind
    criteria: DataCriteria | None
    plan_id: int | None


def curate(
    ws: Workspace,
    stage: str | None = None,
    format: str | None = None,
    plan_ref: str | None = None,
    operator: str | None = None,
) -> CurateReport:
    """Curate each planned stage (with `plan_ref`), else `stage`, else every stage that has
    items; `stage` and `format` narrow a plan's stages. A stage that cannot be curated is
    reported as blocked and the others go on."""
    curated: list[CuratedDataset] = []
    blocked: list[BlockedStage] = []
    for target in _targets(ws, stage, format, plan_ref):
        try:
            curated.append(_curate(ws, target, operator or ws.config.operator))
        except CurationRefused as exc:
            blocked.append(BlockedStage(stage=target.stage, format=target.format, reason=str(exc)))
    return CurateReport(curated=curated, blocked=blocked)


def _targets(
    ws: Workspace, stage: str | None, format: str | None, plan_ref: str | None
) -> list[_Target]:
    if format is not None and format not in KINDS:
        raise CurateError(f"unknown format {format!r}; use one of {', '.join(KINDS)}")
    if stage is not None:
        stage = check_stage(stage)
        require_lora_stage(stage, "LoRA dataset")
    if plan_ref is not None:
        return _planned(ws, plan_ref, stage, format)
    if stage is not None:
        return [_Target(stage, format or default_format(stage), None, None)]
    kinds = [format] if format else list(KINDS)
    present = {
        row[0]
        for row in ws.db.execute(
            "SELECT DISTINCT stage FROM examples WHERE kind IN (SELECT value FROM json_each(?)) "
            "AND stage IN (SELECT value FROM json_each(?))",
            [json.dumps(kinds), json.dumps(LORA_STAGES)],
        )
    }
    if not present:
        what = f"{format} items" if format else "examples or pairs"
        raise CurateError(
            f"no {what} of a LoRA stage ({', '.join(LORA_STAGES)}) in the workspace: derive "
            "training data first (`cra data build`) or import logged runs (`cra import-logs`)"
        )
    return [
        _Target(name, format or default_format(name), None, None)
        for name in LORA_STAGES
        if name in present
    ]


def _planned(
    ws: Workspace, plan_ref: str, stage: Stage | None, format: str | None
) -> list[_Target]:
    plan_id, plan = load_plan(ws, plan_ref)
    targets = []
    for planned in plan.stages:
        require_lora_stage(planned.stage, f"LoRA dataset (plan {plan_id})")
        if planned.base_model != BASE_MODEL[planned.stage]:
            raise CurateError(
                f"plan {plan_id}: stage {planned.stage} trains the {BASE_MODEL[planned.stage]} "
                f"base, not {planned.base_model}; data for one base never trains the other"
            )
        if (stage is None or planned.stage == stage) and (
            format is None or planned.data.format == format
        ):
            targets.append(_Target(planned.stage, planned.data.format, planned.data, plan_id))
    if not targets:
        asked = " ".join(part for part in (stage, format) if part)
        listed = ", ".join(f"{p.stage} ({p.data.format})" for p in plan.stages) or "nothing"
        raise CurateError(f"plan {plan_id} plans no {asked} dataset; it plans {listed}")
    return targets


@dataclass(frozen=True)
class _Selection:
    """What goes into the dataset, and the tallies its manifest records."""

    train: list[DatasetRow]
    eval: list[DatasetRow]
    holdout: Holdout
    counts: Counts


def _curate(ws: Workspace, target: _Target, operator: str) -> CuratedDataset:
    gate = review_gate(ws, target.stage, target.format)
    if not gate.ok or gate.round_id is None:
        raise CurationRefused(gate.reason)
    base = BASE_MODEL[target.stage]
    earlier_ids = earlier_dataset_ids(ws.db, target.stage, base, target.format)
    earlier = [read_rows(ws.db, open_dataset(ws, dataset_id)) for dataset_id in earlier_ids]
    chosen = _select(ws, target, base, earlier, earlier_ids)
    files = _files(chosen.train, chosen.eval)
    summary = round_summary(ws.db, gate.round_id)
    ws.db.execute("BEGIN IMMEDIATE")
    try:
        _still_current(ws.db, target, base, gate.round_id, earlier_ids)
        dataset_id = next_dataset_id(ws, target.stage)
        manifest = _manifest(ws, target, dataset_id, operator, summary, files, chosen, earlier_ids)
        text = (manifest.model_dump_json(indent=2) + "\n").encode("utf-8")
        path = write_dataset_folder(ws.datasets_dir, dataset_id, {**files, MANIFEST: text})
        relative = path.relative_to(ws.root).as_posix()
        _record(ws.db, manifest, relative, text, chosen)
    except BaseException:
        ws.db.execute("ROLLBACK")
        raise
    ws.db.execute("COMMIT")
    return CuratedDataset(
        id=dataset_id,
        path=relative,
        manifest=manifest,
        target_examples=target.criteria.target_examples if target.criteria else None,
    )


def _select(
    ws: Workspace,
    target: _Target,
    base: BaseModelKind,
    earlier: Sequence[dict[str, list[DatasetRow]]],
    earlier_ids: Sequence[str],
) -> _Selection:
    """Steps 2-4 of the module doc: the rows of the new dataset, or why there are none."""
    stage, kind, config = target.stage, target.format, ws.config.curation
    old_rows = [row for rows in earlier for name in ROW_FILES for row in rows[name]]
    candidates = _candidates(ws.db, target, base)
    if not candidates:
        raise CurationRefused(
            nothing_new(target.stage, target.format, target.criteria, earlier_ids)
        )
    decisions = verdicts(ws.db, stage)
    kept = [item for item in candidates if decisions.get(item.id) != "reject"]
    degenerate = screen_candidates(stage, kept, config.max_degenerate_rate)
    rejected = rejected_texts(ws.db, decisions)
    rows, exact, near, near_rejected = reviewed_rows(
        [item for item in candidates if item.id not in degenerate],
        decisions,
        rejected,
        old_rows,
        config.near_duplicate_threshold,
    )
    holdout = split(rows, config.eval_share, config.eval_repos, held_out_tasks(ws.db))
    seed = f"{config.seed}:{stage}:{kind}"
    train, dropped = balance(holdout.train, config.max_domain_share, seed)
    pool = _replay_pool(earlier, rows, holdout, config.eval_repos, decisions)
    pool, _ = drop_near_to(pool, rejected, config.near_duplicate_threshold)
    replayed = pick_replay(
        pool, train, config.replay_share, config.max_domain_share, f"{seed}:replay"
    )
    train_rows = sorted([*train, *replayed], key=lambda row: row.order)
    if stage in CURRICULUM_STAGES:
        train_rows = easy_to_hard(train_rows)
    eval_rows = sorted(holdout.eval, key=lambda row: row.order)
    minimum = target.criteria.min_examples if target.criteria else 1
    if len(train_rows) < minimum:
        raise CurationRefused(
            f"{len(train_rows)} train rows after curation ({len(rows)} candidates left after "
            f"review and deduplication, {len(holdout.eval)} of them held out for eval), fewer "
            f"than the {minimum} needed (min_examples); derive or import more data"
        )
    if config.eval_share > 0 and not eval_rows:
        raise CurationRefused(
            f"no new rows fall on the eval side ([curation] eval_share = "
            f"{config.eval_share:g}); derive data from more tasks"
        )
    counts = Counts(
        candidates=len(candidates),
        excluded_by_review=sum(decisions.get(item.id) == "reject" for item in candidates)
        + near_rejected,
        flipped_by_review=sum(decisions.get(item.id) == "flip" for item in candidates),
        degenerate=len(degenerate),
        exact_duplicates=exact,
        near_duplicates=near,
        dropped_for_balance=dropped,
        train=len(train_rows),
        eval=len(eval_rows),
        replay=len(replayed),
    )
    return _Selection(train=train_rows, eval=eval_rows, holdout=holdout, counts=counts)


def reviewed_rows(
    candidates: Sequence[StoredItem],
    decisions: dict[int, Decision],
    rejected_texts: Sequence[str],
    old_rows: Sequence[DatasetRow],
    near_threshold: float,
) -> tuple[list[DatasetRow], int, int, int]:
    """Step 3 of the module doc, shared with the base export: the rows of `candidates` that
    review kept (flipped where flipped), less near twins of rejected content and exact and near
    duplicates of each other and of `old_rows`; with how many exact and near duplicates and
    near twins of rejected items went."""
    rows = [
        DatasetRow.new(item, decisions.get(item.id) == "flip")
        for item in candidates
        if decisions.get(item.id) != "reject"
    ]
    rows, near_rejected = drop_near_to(rows, rejected_texts, near_threshold)
    rows, exact = drop_exact(rows, (row.digest for row in old_rows))
    rows, near = drop_near(rows, [row.text for row in old_rows], near_threshold)
    return rows, exact, near, near_rejected


def _manifest(
    ws: Workspace,
    target: _Target,
    dataset_id: str,
    operator: str,
    summary: RoundSummary,
    files: dict[str, bytes],
    chosen: _Selection,
    earlier_ids: list[str],
) -> DatasetManifest:
    config = ws.config.curation
    train, eval_ = chosen.train, chosen.eval
    return DatasetManifest(
        id=dataset_id,
        stage=target.stage,
        base_model=BASE_MODEL[target.stage],
        format=target.format,
        created_at=utc_now(),
        created_by=operator,
        plan_id=target.plan_id,
        review=ReviewRecord(
            round_id=summary.round_id,
            reviewed=summary.decided,
            rejected=summary.rejected,
            flipped=summary.flipped,
        ),
        files={name: file_record(files[name]) for name in DATASET_FILES},
        counts=chosen.counts,
        sources={"train": _tally(train, "source"), "eval": _tally(eval_, "source")},
        domains={"train": _tally(train, "domain"), "eval": _tally(eval_, "domain")},
        split=Split(
            eval_share=config.eval_share,
            cutoff=chosen.holdout.cutoff,
            eval_repos=list(config.eval_repos),
            train_tasks=len({row.item.task_key for row in train}),
            eval_tasks=len({row.item.task_key for row in eval_}),
        ),
        replay=Replay(
            target_share=config.replay_share,
            share=chosen.counts.replay / len(train),
            parents=earlier_ids,
        ),
        near_duplicate_threshold=config.near_duplicate_threshold,
        max_domain_share=config.max_domain_share,
        seed=config.seed,
        curriculum=Curriculum() if target.stage in CURRICULUM_STAGES else None,
    )


def earlier_dataset_ids(
    db: sqlite_utils.Database, stage: Stage, base: BaseModelKind, kind: Kind
) -> list[str]:
    """The datasets of the stage, base and format made so far, oldest first."""
    return [
        row[0]
        for row in db.execute(
            "SELECT id FROM datasets WHERE stage = ? AND base_model = ? AND format = ? "
            "ORDER BY rowid",
            [stage, base, kind],
        )
    ]


def _candidates(
    db: sqlite_utils.Database, target: _Target, base: BaseModelKind
) -> list[StoredItem]:
    items = [
        item_from_row(row)
        for row in db.query(
            "SELECT * FROM examples WHERE stage = ? AND kind = ? AND id NOT IN "
            "(SELECT de.example_id FROM dataset_examples de "
            "JOIN datasets d ON d.id = de.dataset_id "
            "WHERE d.stage = ? AND d.base_model = ? AND d.format = ?) ORDER BY id",
            [target.stage, target.format, target.stage, base, target.format],
        )
    ]
    criteria = target.criteria
    if criteria is None:
        return items
    return [
        item
        for item in items
        if item.source in criteria.sources
        and (criteria.origins is None or item.origin in criteria.origins)
    ]


def nothing_new(
    stage: Stage, format: Kind, criteria: DataCriteria | None, earlier_ids: Sequence[str]
) -> str:
    """Why a stage with no new candidates is not curated, and what to do."""
    what = f"no new {format} items of {stage}"
    if criteria is not None:
        what += f" from sources {', '.join(criteria.sources)}"
        if criteria.origins is not None:
            what += f" and origins {', '.join(criteria.origins)}"
    if earlier_ids:
        what += f" beyond datasets {', '.join(earlier_ids)}"
    return what + ": derive or import more training data first"


def rejected_texts(db: sqlite_utils.Database, decisions: dict[int, Decision]) -> list[str]:
    """The texts of the rejected items (and their identical twins): a candidate near one of
    them is rejected content too, and never curated."""
    rejected = [example_id for example_id, decision in decisions.items() if decision == "reject"]
    rows = db.query(
        "SELECT * FROM examples WHERE id IN (SELECT value FROM json_each(?))",
        [json.dumps(rejected)],
    )
    return [DatasetRow.new(item_from_row(row), False).text for row in rows]


def _replay_pool(
    earlier_rows: Sequence[dict[str, list[DatasetRow]]],
    new_rows: Sequence[DatasetRow],
    holdout: Holdout,
    eval_repos: Sequence[str],
    decisions: dict[int, Decision],
) -> list[DatasetRow]:
    """Train rows of earlier datasets that may train again: not an exact duplicate of a new or
    another pooled row, not on the eval side now, and not contradicted by the newest review
    (its content rejected since, or flipped the other way); the caller also drops the near
    twins of rejected items."""
    seen = {row.digest for row in new_rows}
    pool = []
    for rows in earlier_rows:
        for row in rows["train.jsonl"]:
            decision = decisions.get(row.example_id)
            contradicted = decision == "reject" or (
                decision is not None and (decision == "flip") != row.flipped
            )
            if row.digest in seen or contradicted or holdout.keeps_out_of_train(row, eval_repos):
                continue
            seen.add(row.digest)
            pool.append(row)
    return pool


def _files(train_rows: Sequence[DatasetRow], eval_rows: Sequence[DatasetRow]) -> dict[str, bytes]:
    lineage = [
        LineageEntry(
            file=name,
            line=number,
            example_id=row.example_id,
            replay_from=row.replay_from,
            flipped=row.flipped,
        )
        for name, rows in zip(ROW_FILES, (train_rows, eval_rows), strict=True)
        for number, row in enumerate(rows, 1)
    ]
    return {
        "train.jsonl": jsonl([row.line for row in train_rows]),
        "eval.jsonl": jsonl([row.line for row in eval_rows]),
        LINEAGE: jsonl([lineage_line(entry) for entry in lineage]),
    }


def _tally(rows: Sequence[DatasetRow], field: str) -> dict[str, int]:
    return dict(sorted(Counter(getattr(row.item, field) for row in rows).items()))


def _still_current(
    db: sqlite_utils.Database,
    target: _Target,
    base: BaseModelKind,
    round_id: int,
    earlier_ids: list[str],
) -> None:
    """Refuse when another curation of the stage finished while this one was working."""
    used = db.execute(
        "SELECT id FROM datasets WHERE review_round_id = ? AND format = ?",
        [round_id, target.format],
    ).fetchone()
    if used is not None:
        raise CurationRefused(
            f"review round {round_id} of {target.stage} became the spot-check of dataset "
            f"{used[0]} meanwhile; draw a new sample"
        )
    if earlier_dataset_ids(db, target.stage, base, target.format) != earlier_ids:
        raise CurationRefused(
            f"another {target.stage} ({target.format}) dataset was made meanwhile; curate again"
        )


def _record(
    db: sqlite_utils.Database,
    manifest: DatasetManifest,
    path: str,
    text: bytes,
    chosen: _Selection,
) -> None:
    db.execute(
        "INSERT INTO datasets (id, stage, base_model, format, path, created_at, created_by, "
        "plan_id, review_round_id, train_count, eval_count, replay_count, manifest_sha256, "
        "manifest_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            manifest.id,
            manifest.stage,
            manifest.base_model,
            manifest.format,
            path,
            manifest.created_at,
            manifest.created_by,
            manifest.plan_id,
            manifest.review.round_id,
            manifest.counts.train,
            manifest.counts.eval,
            manifest.counts.replay,
            sha256(text),
            text.decode("utf-8"),
        ],
    )
    train = [
        (manifest.id, row.example_id, "train", int(row.replay_from is not None))
        for row in chosen.train
    ]
    held_out = [(manifest.id, row.example_id, "eval", 0) for row in chosen.eval]
    db.conn.executemany(
        "INSERT INTO dataset_examples (dataset_id, example_id, split, replay) VALUES (?, ?, ?, ?)",
        train + held_out,
    )
