"""Where an adapter version came from, link by link: the training run and the dataset (with the
sha256 of its manifest), the examples and pairs in it, the harness attempts and logged calls they
were made from, the tasks and commits, and the repo packages with the hashes they were approved
with. Every link is read from the database; nothing is inferred from names."""

from collections import Counter
from collections.abc import Iterable
from typing import Any

from engine.adapters.activation import unservable, version_by_id, version_row
from engine.bases.registry import base_by_id
from engine.core.workspace import Workspace


def _rows(ws: Workspace, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    return list(ws.db.query(sql, args))


def trace_lines(ws: Workspace, name: str) -> list[str]:
    """The chain behind version `name`, as lines for a terminal (indented by link)."""
    version = version_row(ws, name)
    lines = [
        f"{version.name} ({version.status}): rank {version.rank} on base "
        f"{version.base_model} ({version.base_model_path}), created {version.created_at}, "
        f"files under {version.path}"
    ]
    if version.base_version_id is not None:
        base = base_by_id(ws, version.base_version_id)
        lines.append(
            f"  base {base.name}: {len(base.files)} files, sha256 {base.sha256[:12]}, "
            f"registered {base.registered_at}"
        )
    if (reason := unservable(ws, version)) is not None:
        lines.append(f"  never served: {reason}")
    if version.run_id is not None:
        run = ws.db.table("training_runs").get(version.run_id)
        lines.append(
            f"  trained by run {run['id']} ({run['method']}, {run['status']}), started "
            f"{run['started_at'] or run['created_at']} by {run['created_by']}, in {run['run_dir']}"
        )
    if version.parent_id is not None:
        parent = version_by_id(ws, version.parent_id)
        lines.append(
            f"  continues {parent.name} (its weights trained further; "
            f"`cra adapters trace {parent.name}` shows its chain)"
        )
    dataset_id = version.dataset_id
    if dataset_id is None:
        lines.append("  no dataset is recorded for this version")
        return lines
    dataset = ws.db.table("datasets").get(dataset_id)
    lines.append(
        f"  on dataset {dataset_id} (manifest sha256 {dataset['manifest_sha256']}), "
        f"{dataset['train_count']} train / {dataset['eval_count']} eval rows, "
        f"curated {dataset['created_at']} by {dataset['created_by']}"
        + (
            f" after spot-check round {dataset['review_round_id']}"
            if dataset["review_round_id"]
            else ""
        )
    )
    if version.dataset_sha256 and version.dataset_sha256 != dataset["manifest_sha256"]:
        lines.append(
            f"  WARNING: the version was trained on manifest sha256 {version.dataset_sha256}, "
            "not the dataset's recorded one"
        )
    examples = _rows(
        ws,
        "SELECT e.*, de.split, de.replay FROM dataset_examples de "
        "JOIN examples e ON e.id = de.example_id WHERE de.dataset_id = ? ORDER BY e.id",
        [dataset_id],
    )
    kinds = Counter((row["split"], row["kind"], row["source"]) for row in examples)
    lines.append(f"    {len(examples)} examples and pairs:")
    for (split, kind, source), count in sorted(kinds.items()):
        lines.append(f"      {count} {split} {kind} from {source}")
    lines.append(f"      ids {_ids(row['id'] for row in examples)}")
    attempt_ids = sorted(
        {
            attempt
            for row in examples
            for attempt in (row["chosen_attempt_id"], row["rejected_attempt_id"])
            if attempt is not None
        }
    )
    if attempt_ids:
        attempts = _rows(
            ws,
            "SELECT id, campaign_id, outcome, model FROM attempts "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            [_json(attempt_ids)],
        )
        lines.append(f"      from {len(attempts)} harness attempts:")
        for attempt in attempts:
            lines.append(
                f"        attempt {attempt['id']} of campaign {attempt['campaign_id']} "
                f"({attempt['model']}): {attempt['outcome']}"
            )
    calls = sorted({row["log_call_id"] for row in examples if row["log_call_id"] is not None})
    if calls:
        lines.append(f"      from {len(calls)} logged agent calls: {_ids(calls)}")
    commits = sorted(
        {(row["package_digest"], row["sha"]) for row in examples if row["package_digest"]}
    )
    if commits:
        lines.append(f"        from {len(commits)} tasks (commits):")
    for digest, sha in commits:
        task = next(
            iter(
                _rows(ws, "SELECT * FROM tasks WHERE package_digest = ? AND sha = ?", [digest, sha])
            ),
            None,
        )
        subject = "" if task is None else f" {task['subject']!r} ({task['status']})"
        lines.append(f"          {sha[:12]}{subject} in package {digest[:12]}")
    for digest in sorted({digest for digest, _ in commits}):
        lines.extend(_package_lines(ws, digest))
    return lines


def _package_lines(ws: Workspace, digest: str) -> list[str]:
    packages = _rows(ws, "SELECT * FROM packages WHERE digest = ?", [digest])
    if not packages:
        return [f"            package {digest}: not in the corpus"]
    package = packages[0]
    lines = [
        f"            package {package['name']}, manifest sha256 {digest}, approved "
        f"{package['approved_at']} by {package['approved_by']}; its files as approved:"
    ]
    for row in _rows(
        ws,
        "SELECT path, sha256 FROM package_files WHERE package_id = ? ORDER BY path",
        [package["id"]],
    ):
        lines.append(f"              {row['sha256']}  {row['path']}")
    return lines


def _json(values: list[int]) -> str:
    return "[" + ",".join(str(value) for value in values) + "]"


def _ids(values: Iterable[int]) -> str:
    """Ids as compact ranges: 1-4, 7, 9-10."""
    ranges: list[tuple[int, int]] = []
    for value in sorted(set(values)):
        if ranges and value == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], value)
        else:
            ranges.append((value, value))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges) or "none"
