"""Rows the eval and gate tests build on: adapter versions with real hashed files, a dataset
record, finished eval runs with their per-example scores, and planning DPO pairs to curate."""

import json
from collections.abc import Sequence

from engine.adapters.activation import AdapterVersion, version_by_id
from engine.bases.registry import current_base
from engine.core.hashing import sha256_file
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.evaluation.gate import BASE
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide as review_decide
from engine.training_data.review import draw_sample
from engine.training_data.store import item_from_row


def add_version(
    ws: Workspace, stage: str, version: int, dataset_id: str | None = None
) -> AdapterVersion:
    """A candidate version of `stage` whose folder holds two hashed files, trained on the base
    folder the workspace configures for its kind: its registered base version when there is
    one, else the one its kind's first registration adopts."""
    name = f"{stage}-v{version}"
    kind = "coding" if stage == "execute_code" else "reasoning"
    base_path = (
        ws.config.training.base_models.get(kind)
        or ws.config.serving.bases.get(kind)
        or "models/base"
    )
    folder = ws.adapters_dir / stage / f"v{version}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 16, "name": name}))
    (folder / "adapter_model.safetensors").write_bytes(f"weights of {name}".encode() * 50)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    base = current_base(ws, kind)
    version_id = (
        ws.db["adapter_versions"]
        .insert(
            {
                "stage": stage,
                "version": version,
                "name": name,
                "status": "candidate",
                "base_model": kind,
                "base_model_path": base_path,
                "base_version_id": None if base is None else base.id,
                "rank": 16,
                "path": folder.relative_to(ws.root).as_posix(),
                "dataset_id": dataset_id,
                "files_json": json.dumps(files),
                "created_at": "2026-11-20T21:00:00Z",
            }
        )
        .last_pk
    )
    return version_by_id(ws, version_id)


def add_dataset(ws: Workspace, dataset_id: str, stage: str) -> None:
    """A bare datasets row, enough for eval runs to name it."""
    ws.db["datasets"].insert(
        {
            "id": dataset_id,
            "stage": stage,
            "base_model": "reasoning",
            "format": "sft",
            "path": f"datasets/{dataset_id}",
            "created_at": "2026-11-20T20:00:00Z",
            "manifest_sha256": "0" * 64,
        }
    )


Counts = tuple[int, int]


def examples(n: int, **shares: float) -> dict[str, list[Counts]]:
    """Per-example pass/fail counts of `n` examples per metric: the first round(share × n) hit,
    the rest miss, so two runs built so share their hits where both hit."""
    return {
        metric: [(1, 1)] * round(share * n) + [(0, 1)] * (n - round(share * n))
        for metric, share in shares.items()
    }


def add_eval(
    ws: Workspace,
    stage: str,
    version: AdapterVersion | None,
    scores: dict[str, Sequence[Counts]],
    eval_sha: str = "a" * 64,
    dataset_id: str = "scope-d1",
    status: str = "done",
    eval_set_id: int | None = None,
) -> int:
    """A finished eval run of `version` (None: the base) on the eval set `eval_sha`, with one
    `eval_scores` row per example (`scores`: each metric's (hits, out of), example by example)
    and the micro-averaged means derived from them, as the eval worker records both."""
    sizes = {len(counts) for counts in scores.values()}
    assert len(sizes) <= 1, f"every metric needs the same examples, got {sizes}"
    n = sizes.pop() if sizes else 0
    metrics = {
        metric: sum(h for h, _ in counts) / max(1, sum(o for _, o in counts))
        for metric, counts in scores.items()
    }
    eval_id = (
        ws.db["eval_runs"]
        .insert(
            {
                "target": BASE if version is None else version.name,
                "adapter_id": None if version is None else version.id,
                "stage": stage,
                "base_model": "reasoning",
                "dataset_id": dataset_id,
                "eval_sha256": eval_sha,
                "eval_set_id": eval_set_id,
                "backend": "local",
                "status": status,
                "rows": n,
                "metrics_json": json.dumps(metrics),
                "reason": "",
                "out_dir": "evals/x",
                "created_at": utc_now(),
                "created_by": "test",
                "finished_at": utc_now(),
            }
        )
        .last_pk
    )
    ws.db["eval_scores"].insert_all(
        {
            "eval_id": eval_id,
            "key": f"line:{line}",
            "line": line,
            "counts_json": json.dumps(
                {metric: list(counts[line - 1]) for metric, counts in sorted(scores.items())}
            ),
        }
        for line in range(1, n + 1)
    )
    return eval_id


def pass_gate(ws: Workspace, name: str, baseline: str) -> None:
    """Record that version `name` passed the gate against `baseline` (a name or `base`)."""
    version = ws.db.execute(
        "SELECT id, stage FROM adapter_versions WHERE name = ?", [name]
    ).fetchone()
    ws.db["gate_decisions"].insert(
        {
            "adapter_id": version[0],
            "stage": version[1],
            "baseline": baseline,
            "decision": "pass",
            "reasons_json": "[]",
            "at": "2026-11-22T01:00:00Z",
            "operator": "test",
        }
    )


def accept_sample(ws: Workspace, stage: str) -> None:
    """Draw `stage`'s review sample and accept every item, so the stage can be curated."""
    round_id = draw_sample(ws, stage, 15, seed=1)
    count = ws.db.execute(
        "SELECT COUNT(*) FROM review_items WHERE round_id = ?", [round_id]
    ).fetchone()[0]
    for position in range(1, count + 1):
        review_decide(ws, round_id, position, "accept")


def planning_pairs(ws: Workspace) -> list[TrainingItem]:
    """A planning DPO pair per derived meta plan: the commit's plan chosen over a vague one."""
    rows = ws.db.query("SELECT * FROM examples WHERE stage = 'meta_plan' AND kind = 'sft'")
    return [
        TrainingItem(
            **item_from_row(row).model_dump(include=set(TrainingItem.model_fields)),
        ).model_copy(
            update={
                "stage": "planning_dpo",
                "kind": "preference",
                "source": "harness",
                "origin": "harness_plan",
                "rejected": [Message(role="assistant", content='{"summary": "do it"}')],
            }
        )
        for row in rows
    ]
