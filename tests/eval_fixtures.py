"""Rows the eval and gate tests build on: adapter versions with real hashed files, a dataset
record, finished eval runs with given metrics, and planning DPO pairs to curate."""

import json
from typing import Any

from engine.evaluation.gate import BASE
from engine.timestamps import utc_now
from engine.training.registry import sha256_file
from engine.training_data.items import Message, TrainingItem
from engine.training_data.review import decide as review_decide
from engine.training_data.review import draw_sample
from engine.training_data.store import item_from_row
from engine.workspace import Workspace


def add_version(
    ws: Workspace, stage: str, version: int, dataset_id: str | None = None
) -> dict[str, Any]:
    """A candidate version of `stage` whose folder holds two hashed files."""
    name = f"{stage}-v{version}"
    folder = ws.adapters_dir / stage / f"v{version}"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 16, "name": name}))
    (folder / "adapter_model.safetensors").write_bytes(f"weights of {name}".encode() * 50)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
    version_id = (
        ws.db["adapter_versions"]
        .insert(
            {
                "stage": stage,
                "version": version,
                "name": name,
                "status": "candidate",
                "base_model": "coding" if stage == "execute_code" else "reasoning",
                "base_model_path": "models/base",
                "rank": 16,
                "path": folder.relative_to(ws.root).as_posix(),
                "dataset_id": dataset_id,
                "files_json": json.dumps(files),
                "created_at": "2026-11-20T21:00:00Z",
            }
        )
        .last_pk
    )
    return dict(ws.db["adapter_versions"].get(version_id))


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


def add_eval(
    ws: Workspace,
    stage: str,
    version: dict[str, Any] | None,
    metrics: dict[str, float],
    eval_sha: str = "a" * 64,
    dataset_id: str = "scope-d1",
    status: str = "done",
) -> int:
    """A finished eval run of `version` (None: the base) on the eval set `eval_sha`."""
    return (
        ws.db["eval_runs"]
        .insert(
            {
                "target": BASE if version is None else version["name"],
                "adapter_id": None if version is None else version["id"],
                "stage": stage,
                "base_model": "reasoning",
                "dataset_id": dataset_id,
                "eval_sha256": eval_sha,
                "backend": "local",
                "status": status,
                "rows": 10,
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
