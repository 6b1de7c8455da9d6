"""The workspace database: SQLite through sqlite-utils, WAL mode, versioned migrations."""

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

from engine.core.errors import WorkspaceError


def inserted_id(table: sqlite_utils.db.Table) -> int:
    """The integer key of the row `table`'s last insert wrote (sqlite-utils types `last_pk` as
    optional, since it is unset before any insert)."""
    key = table.last_pk
    if not isinstance(key, int):
        raise TypeError(f"{table.name}: the last insert gave no integer key, got {key!r}")
    return key


@contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[None]:
    """A `BEGIN IMMEDIATE` transaction: the write lock taken up front, so what is read inside
    cannot change before the writes; rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _m001_ingest(db: sqlite_utils.Database) -> None:
    db.table("packages").create(
        {
            "id": int,
            "name": str,
            "digest": str,
            "source_path": str,
            "corpus_path": str,
            "commit_count": int,
            "wheel_count": int,
            "size_bytes": int,
            "approved_by": str,
            "approved_at": str,
            "report_json": str,
            "manifest_json": str,
        },
        pk="id",
        not_null={"name", "digest", "corpus_path", "approved_by", "approved_at"},
    )
    db.table("packages").create_index(["digest"], unique=True)
    db.table("packages").create_index(["corpus_path"], unique=True)
    db.table("package_files").create(
        {"package_id": int, "path": str, "kind": str, "sha256": str, "size_bytes": int},
        pk=("package_id", "path"),
        foreign_keys=[("package_id", "packages", "id")],
        not_null={"kind", "sha256", "size_bytes"},
    )
    db.table("ingest_decisions").create(
        {
            "id": int,
            "digest": str,
            "name": str,
            "source_path": str,
            "decision": str,
            "operator": str,
            "reason": str,
            "decided_at": str,
            "report_json": str,
        },
        pk="id",
        not_null={"digest", "decision", "decided_at"},
    )
    db.execute(
        "CREATE TRIGGER ingest_decisions_append_only BEFORE UPDATE ON ingest_decisions "
        "BEGIN SELECT RAISE(ABORT, 'ingest_decisions is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER ingest_decisions_no_delete BEFORE DELETE ON ingest_decisions "
        "BEGIN SELECT RAISE(ABORT, 'ingest_decisions is append-only'); END"
    )


def _m002_tasks(db: sqlite_utils.Database) -> None:
    db.table("tasks").create(
        {
            "id": int,
            "package_digest": str,
            "sha": str,
            "parent": str,
            "subject": str,
            "status": str,
            "reason": str,
            "fail_to_pass": str,
            "pass_to_pass": str,
            "flaky": str,
            "validated_at": str,
            "report_path": str,
        },
        pk="id",
        not_null={"package_digest", "sha", "parent", "status", "validated_at"},
    )
    db.table("tasks").create_index(["package_digest", "sha"], unique=True)


def _m003_campaigns(db: sqlite_utils.Database) -> None:
    db.table("jobs").create(
        {
            "id": int,
            "kind": str,
            "ref_id": int,
            "argv_json": str,
            "pid": int,
            "pid_start": int,
            "status": str,
            "started_at": str,
            "heartbeat_at": str,
            "ended_at": str,
            "exit_code": int,
            "reason": str,
            "log_path": str,
        },
        pk="id",
        not_null={"kind", "status", "started_at"},
    )
    db.table("jobs").create_index(["kind", "ref_id"])
    db.table("campaigns").create(
        {
            "id": int,
            "created_at": str,
            "created_by": str,
            "spec_json": str,
            "status": str,
            "reason": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"created_at", "spec_json", "status"},
    )
    db.table("attempts").create(
        {
            "id": int,
            "campaign_id": int,
            "package_digest": str,
            "package_name": str,
            "sha": str,
            "task": str,
            "pipeline": str,
            "model": str,
            "temperature": float,
            "seed": int,
            "state": str,
            "outcome": str,
            "reason": str,
            "worker": int,
            "pid": int,
            "started_at": str,
            "finished_at": str,
            "duration_s": float,
            "test_duration_s": float,
            "prompt_tokens": int,
            "completion_tokens": int,
            "f2p_passed": int,
            "f2p_total": int,
            "p2p_passed": int,
            "p2p_total": int,
            "file_precision": float,
            "file_recall": float,
            "symbol_precision": float,
            "symbol_recall": float,
            "order_agreement": float,
            "plan_json": str,
            "artifacts": str,
        },
        pk="id",
        foreign_keys=[("campaign_id", "campaigns", "id")],
        not_null={"campaign_id", "package_digest", "sha", "pipeline", "model", "state"},
    )
    db.table("attempts").create_index(
        ["campaign_id", "package_digest", "sha", "pipeline", "model", "temperature", "seed"],
        unique=True,
    )
    db.table("attempts").create_index(["campaign_id", "state"])
    db.table("attempts").create_index(["finished_at"])
    db.table("harness_workers").create(
        {
            "campaign_id": int,
            "slot": int,
            "pid": int,
            "stage": str,
            "attempt_id": int,
            "detail": str,
            "updated_at": str,
        },
        pk=("campaign_id", "slot"),
    )


def _m004_attempt_indexes(db: sqlite_utils.Database) -> None:
    # The Harness pane's progress, filtered list and id-ordered pages at 100,000 attempts.
    db.table("attempts").create_index(["campaign_id", "package_digest", "state", "outcome"])
    db.table("attempts").create_index(["campaign_id", "outcome"])
    db.table("attempts").create_index(["campaign_id"])


def _append_only(db: sqlite_utils.Database, table: str) -> None:
    for verb in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        )


def _m005_training_data(db: sqlite_utils.Database) -> None:
    db.table("log_imports").create(
        {
            "id": int,
            "path": str,
            "sha256": str,
            "imported_at": str,
            "imported_by": str,
            "runs": int,
            "calls": int,
            "examples": int,
            "skipped_json": str,
        },
        pk="id",
        not_null={"path", "sha256", "imported_at"},
    )
    db.table("logged_runs").create(
        {
            "task_id": str,
            "import_id": int,
            "repo_path": str,
            "mode": str,
            "stages": str,
            "success": int,
            "total_tokens": int,
            "timestamp": str,
        },
        pk="task_id",
        foreign_keys=[("import_id", "log_imports", "id")],
        not_null={"import_id"},
    )
    db.table("logged_calls").create(
        {
            "call_id": int,
            "task_id": str,
            "import_id": int,
            "call_type": str,
            "model": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "latency_ms": int,
            "timestamp": str,
        },
        pk="call_id",
        foreign_keys=[("import_id", "log_imports", "id")],
        not_null={"task_id", "import_id", "call_type"},
    )
    db.table("logged_calls").create_index(["call_type"])
    db.table("examples").create(
        {
            "id": int,
            "stage": str,
            "base_model": str,
            "kind": str,
            "source": str,
            "origin": str,
            "repo": str,
            "domain": str,
            "task_key": str,
            "task_date": str,
            "package_digest": str,
            "sha": str,
            "chosen_attempt_id": int,
            "rejected_attempt_id": int,
            "log_import_id": int,
            "log_call_id": int,
            "alignment": float,
            "prompt_json": str,
            "chosen_json": str,
            "rejected_json": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "content_hash": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[
            ("chosen_attempt_id", "attempts", "id"),
            ("rejected_attempt_id", "attempts", "id"),
            ("log_import_id", "log_imports", "id"),
        ],
        not_null={
            "stage",
            "base_model",
            "kind",
            "source",
            "origin",
            "repo",
            "domain",
            "task_key",
            "task_date",
            "prompt_json",
            "chosen_json",
            "content_hash",
            "created_at",
        },
    )
    db.table("examples").create_index(
        ["source", "task_key", "stage", "kind", "content_hash"], unique=True
    )
    db.table("examples").create_index(["stage", "kind", "id"])
    db.table("examples").create_index(["stage", "source", "repo"])
    db.table("examples").create_index(["task_key"])
    db.table("derivations").create(
        {
            "package_digest": str,
            "sha": str,
            "derived_at": str,
            "examples": int,
            "pairs": int,
            "skipped_json": str,
        },
        pk=("package_digest", "sha"),
        not_null={"derived_at"},
    )
    db.table("review_rounds").create(
        {
            "id": int,
            "stage": str,
            "requested": int,
            "seed": int,
            "drawn_at": str,
            "drawn_by": str,
        },
        pk="id",
        not_null={"stage", "requested", "seed", "drawn_at"},
    )
    db.table("review_items").create(
        {
            "round_id": int,
            "position": int,
            "example_id": int,
            "decision": str,
            "note": str,
            "decided_at": str,
            "decided_by": str,
        },
        pk=("round_id", "position"),
        foreign_keys=[("round_id", "review_rounds", "id"), ("example_id", "examples", "id")],
        not_null={"example_id"},
    )
    db.table("review_items").create_index(["round_id", "example_id"], unique=True)
    db.table("review_items").create_index(["example_id"])
    db.table("training_plans").create(
        {"id": int, "created_at": str, "created_by": str, "path": str, "plan_json": str},
        pk="id",
        not_null={"created_at", "path", "plan_json"},
    )
    db.table("datasets").create(
        {
            "id": str,
            "stage": str,
            "base_model": str,
            "format": str,
            "path": str,
            "created_at": str,
            "created_by": str,
            "plan_id": int,
            "review_round_id": int,
            "train_count": int,
            "eval_count": int,
            "replay_count": int,
            "manifest_sha256": str,
            "manifest_json": str,
        },
        pk="id",
        foreign_keys=[
            ("plan_id", "training_plans", "id"),
            ("review_round_id", "review_rounds", "id"),
        ],
        not_null={"stage", "base_model", "format", "path", "created_at", "manifest_sha256"},
    )
    db.table("datasets").create_index(["stage", "base_model", "created_at"])
    db.table("dataset_examples").create(
        {"dataset_id": str, "example_id": int, "split": str, "replay": int},
        pk=("dataset_id", "example_id"),
        foreign_keys=[("dataset_id", "datasets", "id"), ("example_id", "examples", "id")],
        not_null={"split", "replay"},
    )
    db.table("dataset_examples").create_index(["example_id"])
    for table in ("datasets", "dataset_examples", "training_plans"):
        _append_only(db, table)


def _m006_training(db: sqlite_utils.Database) -> None:
    db.table("training_runs").create(
        {
            "id": int,
            "stage": str,
            "base_model": str,
            "method": str,
            "dataset_id": str,
            "spec_json": str,
            "backend": str,
            "status": str,
            "reason": str,
            "run_dir": str,
            "created_at": str,
            "created_by": str,
            "started_at": str,
            "finished_at": str,
            "step": int,
            "max_steps": int,
            "loss": float,
            "adapter_id": int,
        },
        pk="id",
        foreign_keys=[("dataset_id", "datasets", "id")],
        not_null={"stage", "base_model", "method", "dataset_id", "spec_json", "status", "run_dir"},
    )
    db.table("training_runs").create_index(["status"])
    db.table("adapter_versions").create(
        {
            "id": int,
            "stage": str,
            "version": int,
            "name": str,
            "status": str,
            "base_model": str,
            "base_model_path": str,
            "rank": int,
            "path": str,
            "run_id": int,
            "dataset_id": str,
            "dataset_sha256": str,
            "spec_json": str,
            "metrics_json": str,
            "files_json": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "training_runs", "id"), ("dataset_id", "datasets", "id")],
        not_null={"stage", "version", "name", "status", "base_model", "path", "created_at"},
    )
    db.table("adapter_versions").create_index(["stage", "version"], unique=True)
    db.table("adapter_versions").create_index(["name"], unique=True)
    db.execute(
        "CREATE UNIQUE INDEX adapter_versions_one_active ON adapter_versions (stage) "
        "WHERE status = 'active'"
    )


def _m007_activations(db: sqlite_utils.Database) -> None:
    db.table("adapter_activations").create(
        {
            "id": int,
            "stage": str,
            "action": str,
            "from_id": int,
            "to_id": int,
            "operator": str,
            "at": str,
            "reason": str,
            "metrics_json": str,
        },
        pk="id",
        foreign_keys=[("from_id", "adapter_versions", "id"), ("to_id", "adapter_versions", "id")],
        not_null={"stage", "action", "operator", "at", "reason"},
    )
    db.table("adapter_activations").create_index(["stage", "id"])
    _append_only(db, "adapter_activations")


def _m008_evaluation(db: sqlite_utils.Database) -> None:
    db.table("eval_runs").create(
        {
            "id": int,
            "target": str,
            "adapter_id": int,
            "stage": str,
            "base_model": str,
            "dataset_id": str,
            "eval_sha256": str,
            "backend": str,
            "status": str,
            "rows": int,
            "metrics_json": str,
            "reason": str,
            "out_dir": str,
            "created_at": str,
            "created_by": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[("adapter_id", "adapter_versions", "id"), ("dataset_id", "datasets", "id")],
        not_null={"target", "stage", "base_model", "dataset_id", "backend", "status", "out_dir"},
    )
    db.table("eval_runs").create_index(["stage", "eval_sha256"])
    db.table("gate_decisions").create(
        {
            "id": int,
            "adapter_id": int,
            "stage": str,
            "baseline": str,
            "candidate_eval_id": int,
            "baseline_eval_id": int,
            "decision": str,
            "reasons_json": str,
            "deltas_json": str,
            "at": str,
            "operator": str,
        },
        pk="id",
        foreign_keys=[
            ("adapter_id", "adapter_versions", "id"),
            ("candidate_eval_id", "eval_runs", "id"),
            ("baseline_eval_id", "eval_runs", "id"),
        ],
        not_null={"adapter_id", "stage", "baseline", "decision", "reasons_json", "at"},
    )
    db.table("gate_decisions").create_index(["adapter_id", "id"])
    _append_only(db, "gate_decisions")
    db.table("activation_intents").create(
        {
            "id": int,
            "stage": str,
            "action": str,
            "from_id": int,
            "to_id": int,
            "operator": str,
            "started_at": str,
            "pid": int,
            "pid_start": int,
        },
        pk="id",
        foreign_keys=[("from_id", "adapter_versions", "id"), ("to_id", "adapter_versions", "id")],
        not_null={"stage", "action", "operator", "started_at", "pid", "pid_start"},
    )


def _m009_base_tune(db: sqlite_utils.Database) -> None:
    db.table("adapter_versions").add_column("parent_id", int)
    db.table("examples").add_column("evidence", str)
    db.table("base_exports").create(
        {
            "id": str,
            "role": str,
            "path": str,
            "created_at": str,
            "created_by": str,
            "train_count": int,
            "eval_count": int,
            "manifest_sha256": str,
            "manifest_json": str,
        },
        pk="id",
        not_null={"role", "path", "created_at", "manifest_sha256", "manifest_json"},
    )
    db.table("base_export_examples").create(
        {"export_id": str, "example_id": int, "split": str},
        pk=("export_id", "example_id"),
        foreign_keys=[("export_id", "base_exports", "id"), ("example_id", "examples", "id")],
        not_null={"split"},
    )
    for table in ("base_exports", "base_export_examples"):
        _append_only(db, table)


def _m010_task_identity(db: sqlite_utils.Database) -> None:
    """A task is its repository (the manifest's name) and commit, whatever package brought it.

    `tasks.validated_in` names the package whose sandbox run a reused gold validation is (NULL:
    the row's own run). `derivations` is keyed by repo and sha (the oldest of two packages'
    derivations of one commit stays). Stored items get the `repo:sha` key; an item whose
    rewritten key would make it an exact duplicate of another (the same commit derived from two
    packages) keeps its old key: curation drops it as an exact duplicate of its twin, and review
    carries decisions over by content.
    """
    db.table("tasks").add_column("validated_in", str)
    db.table("derivations_by_repo").create(
        {
            "repo": str,
            "sha": str,
            "package_digest": str,
            "derived_at": str,
            "examples": int,
            "pairs": int,
            "skipped_json": str,
        },
        pk=("repo", "sha"),
        not_null={"package_digest", "derived_at"},
    )
    db.execute(
        "INSERT OR IGNORE INTO derivations_by_repo (repo, sha, package_digest, derived_at, "
        "examples, pairs, skipped_json) SELECT p.name, d.sha, d.package_digest, d.derived_at, "
        "d.examples, d.pairs, d.skipped_json FROM derivations d "
        "JOIN packages p ON p.digest = d.package_digest ORDER BY d.derived_at, d.rowid"
    )
    db.execute("DROP TABLE derivations")
    db.execute("ALTER TABLE derivations_by_repo RENAME TO derivations")
    db.execute(
        "UPDATE OR IGNORE examples SET task_key = repo || ':' || sha "
        "WHERE source IN ('synthetic', 'harness') AND sha IS NOT NULL"
    )
    db.table("examples").create_index(["stage", "content_hash"])


def _m011_eval_scores(db: sqlite_utils.Database) -> None:
    """Each eval run's score per example, so two runs on one eval set compare pair by pair.

    `key` pairs a row across runs on the same eval set: `line:N` for a row scored alone, the
    task's name for a metric scored per harness task (planning_dpo's resolved_rate).
    `counts_json` maps each metric to [hits, out of]; `valid` is NULL where the stage has no
    answer shape to check. Written once, with the run's metrics, when the run is done.
    """
    db.table("eval_scores").create(
        {
            "eval_id": int,
            "key": str,
            "line": int,
            "example_id": int,
            "task": str,
            "valid": int,
            "counts_json": str,
        },
        pk=("eval_id", "key"),
        foreign_keys=[("eval_id", "eval_runs", "id")],
        not_null={"counts_json"},
    )
    _append_only(db, "eval_scores")


def _m012_watch(db: sqlite_utils.Database) -> None:
    """The end-to-end check after a promotion: one `watch_runs` row per promotion watched (its
    state moves queued → running → done, failed or stopped), and `e2e_results`, append-only,
    one row per model measured on a task set (a later watch may reuse it as its baseline)."""
    db.table("watch_runs").create(
        {
            "id": int,
            "stage": str,
            "adapter_id": int,
            "activation_id": int,
            "baseline": str,
            "baseline_adapter_id": int,
            "eval_set_id": int,
            "tasks_sha256": str,
            "backend": str,
            "tolerance": float,
            "status": str,
            "verdict": str,
            "baseline_result_id": int,
            "after_result_id": int,
            "rollback_id": int,
            "reason": str,
            "out_dir": str,
            "created_at": str,
            "created_by": str,
            "finished_at": str,
        },
        pk="id",
        foreign_keys=[
            ("adapter_id", "adapter_versions", "id"),
            ("baseline_adapter_id", "adapter_versions", "id"),
            ("activation_id", "adapter_activations", "id"),
            ("rollback_id", "adapter_activations", "id"),
        ],
        not_null={"stage", "adapter_id", "activation_id", "baseline", "status", "created_at"},
    )
    db.table("e2e_results").create(
        {
            "id": int,
            "watch_id": int,
            "target": str,
            "adapter_id": int,
            "stage": str,
            "base_path": str,
            "backend": str,
            "tasks_sha256": str,
            "n": int,
            "resolved": int,
            "outcomes_json": str,
            "at": str,
        },
        pk="id",
        foreign_keys=[("watch_id", "watch_runs", "id"), ("adapter_id", "adapter_versions", "id")],
        not_null={"watch_id", "target", "stage", "backend", "tasks_sha256", "n", "resolved", "at"},
    )
    db.table("e2e_results").create_index(["stage", "tasks_sha256", "target"])
    _append_only(db, "e2e_results")


def _m013_eval_sets(db: sqlite_utils.Database) -> None:
    """Frozen eval sets: one row a version, its rows (which example each line of its eval.jsonl
    is) and the task keys it holds, which no dataset ever trains on; an eval run names the set
    it scored."""
    db.table("eval_sets").create(
        {
            "id": int,
            "stage": str,
            "base_model": str,
            "path": str,
            "sha256": str,
            "size": int,
            "target_size": int,
            "tasks_json": str,
            "created_at": str,
            "created_by": str,
        },
        pk="id",
        not_null={"stage", "base_model", "path", "sha256", "size", "target_size", "tasks_json"},
    )
    db.table("eval_sets").create_index(["stage", "id"])
    db.table("eval_set_rows").create(
        {"eval_set_id": int, "line": int, "example_id": int, "flipped": int},
        pk=("eval_set_id", "line"),
        foreign_keys=[("eval_set_id", "eval_sets", "id"), ("example_id", "examples", "id")],
        not_null={"example_id", "flipped"},
    )
    for table in ("eval_sets", "eval_set_rows"):
        _append_only(db, table)
    db.execute("ALTER TABLE eval_runs ADD COLUMN eval_set_id INTEGER REFERENCES eval_sets(id)")


def _m014_gate_evidence(db: sqlite_utils.Database) -> None:
    """The gate's paired evidence and the overrides of it. A decision records, per metric, the
    paired comparison it rests on (`evidence_json`), whether its eval set was underpowered and
    which frozen set it was; an activation records the gate decision it promoted over
    (`override`: that decision's verdict, NULL for none) and which decision it was. Rows written
    before keep NULL there and read as before."""
    db.execute("ALTER TABLE gate_decisions ADD COLUMN evidence_json TEXT")
    db.execute("ALTER TABLE gate_decisions ADD COLUMN underpowered INTEGER")
    db.execute("ALTER TABLE gate_decisions ADD COLUMN eval_set_id INTEGER REFERENCES eval_sets(id)")
    db.execute("ALTER TABLE adapter_activations ADD COLUMN override TEXT")
    db.execute(
        "ALTER TABLE adapter_activations ADD COLUMN gate_decision_id INTEGER "
        "REFERENCES gate_decisions(id)"
    )


def _m015_validation_reports(db: sqlite_utils.Database) -> None:
    """Validation reports kept by package content and validation rules
    (`engine.intake.validation_cache`): an unchanged package is not validated twice."""
    db.execute(
        "CREATE TABLE validation_reports (content_sha256 TEXT NOT NULL, "
        "rules_sha256 TEXT NOT NULL, report_json TEXT NOT NULL, validated_at TEXT NOT NULL, "
        "PRIMARY KEY (content_sha256, rules_sha256))"
    )


def _m016_eval_progress(db: sqlite_utils.Database) -> None:
    """How far a running eval run has got (`eval_runs.progress_json`: phase, done, total), which
    its job writes as it goes and the Adapters pane and `cra eval status` show."""
    db.execute("ALTER TABLE eval_runs ADD COLUMN progress_json TEXT")


def _m017_task_validation_kind(db: sqlite_utils.Database) -> None:
    """How each task was validated (`tasks.validation`: gold, supplemented, structural, or
    skipped for a test-only commit; earlier rows were all gold), and for a supplemented task the
    later commit whose test files it borrows (`tests_from`) and those files (`test_files`, JSON)."""
    db.execute("ALTER TABLE tasks ADD COLUMN validation TEXT NOT NULL DEFAULT 'gold'")
    db.execute("ALTER TABLE tasks ADD COLUMN tests_from TEXT")
    db.execute("ALTER TABLE tasks ADD COLUMN test_files TEXT")


def _m018_task_reason_kind(db: sqlite_utils.Database) -> None:
    """The kind of a task's reason (`tasks.reason_kind`: collection-error, already-passing, …),
    which the yield counts unusable commits by; rows validated earlier have none (their
    `report.json` may)."""
    db.execute("ALTER TABLE tasks ADD COLUMN reason_kind TEXT")


def _m019_bases(db: sqlite_utils.Database) -> None:
    """Base model checkpoints, `{role}-base-v{N}`, with their files' hashes (LoRA Training
    Strategy §10.5); one current per role. Adapters name the version they were trained on;
    rows registered earlier have none until their role's first base is registered."""
    db.table("base_versions").create(
        {
            "id": int,
            "role": str,
            "version": int,
            "name": str,
            "path": str,
            "sha256": str,
            "size": int,
            "files_json": str,
            "registered_at": str,
            "registered_by": str,
            "note": str,
            "retired_at": str,
        },
        pk="id",
        not_null={
            "role",
            "version",
            "name",
            "path",
            "sha256",
            "size",
            "files_json",
            "registered_at",
            "registered_by",
            "note",
        },
    )
    db.table("base_versions").create_index(["role", "version"], unique=True)
    db.table("base_versions").create_index(["name"], unique=True)
    db.execute(
        "CREATE UNIQUE INDEX base_versions_one_current ON base_versions (role) "
        "WHERE retired_at IS NULL"
    )
    db.execute("ALTER TABLE adapter_versions ADD COLUMN base_version_id INTEGER")


def _m020_night_events(db: sqlite_utils.Database) -> None:
    """What the unattended parts did, for the morning report: the serving supervisor's starts,
    crashes, restarts and holds, the autopilot's decisions and steps. Append-only."""
    db.table("night_events").create(
        {"id": int, "at": str, "source": str, "kind": str, "detail": str, "data_json": str},
        pk="id",
        not_null={"at", "source", "kind", "detail"},
    )
    db.table("night_events").create_index(["at"])
    _append_only(db, "night_events")


def _m021_cluster_nodes(db: sqlite_utils.Database) -> None:
    """Which node each worker slot runs on, and the nodes a campaign on a cluster sees."""
    db.table("harness_workers").add_column("node_id", str)
    db.table("harness_workers").add_column("node_address", str)
    db.table("harness_nodes").create(
        {
            "campaign_id": int,
            "node_id": str,
            "address": str,
            "cpus": float,
            "alive": int,
            "updated_at": str,
        },
        pk=("campaign_id", "node_id"),
        not_null={"address", "alive", "updated_at"},
    )


MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "ingest: packages, package files, decisions", _m001_ingest),
    (2, "harness: validated tasks", _m002_tasks),
    (3, "harness: jobs, campaigns, attempts, worker stages", _m003_campaigns),
    (4, "harness: attempt indexes for the pane", _m004_attempt_indexes),
    (
        5,
        "training data: examples and pairs, logged runs, review, plans, datasets",
        _m005_training_data,
    ),
    (6, "training: runs and adapter versions", _m006_training),
    (7, "adapters: append-only activation records", _m007_activations),
    (8, "evaluation: eval runs, gate decisions, activation intents", _m008_evaluation),
    (9, "base fine-tune: exports, item evidence, adapter parents", _m009_base_tune),
    (
        10,
        "one task per commit: reused validations, derivations and task keys by repo",
        _m010_task_identity,
    ),
    (11, "evaluation: per-example scores", _m011_eval_scores),
    (12, "adapters: the watch after a promotion, end-to-end results", _m012_watch),
    (13, "evaluation: frozen eval sets per stage, the set an eval run scored", _m013_eval_sets),
    (14, "evaluation: the gate's paired evidence, overrides of it", _m014_gate_evidence),
    (15, "ingest: validation reports kept by package content", _m015_validation_reports),
    (16, "evaluation: the progress of a running eval run", _m016_eval_progress),
    (17, "harness: how each task was validated, borrowed test files", _m017_task_validation_kind),
    (18, "harness: the kind of each task's reason", _m018_task_reason_kind),
    (19, "bases: versioned base models, the base each adapter was trained on", _m019_bases),
    (20, "the night: what the serving supervisor and the autopilot did", _m020_night_events),
    (21, "harness: the cluster's nodes and which node runs each worker", _m021_cluster_nodes),
]


APPLICATION_ID = 0x43524131
"""`PRAGMA application_id` of a cra console database ("CRA1"): a file without it is not ours."""
_HEADER_BYTES = 100


def _damaged(path: Path, rule: str) -> WorkspaceError:
    return WorkspaceError(
        f"{path}: {rule}; it is not a cra console database: restore it from a backup, "
        "or point --workspace at the right folder"
    )


def _file_size(path: Path) -> int:
    """The database file's size, refused when it cannot hold a database at all.

    Only `stat`: the file is never opened here. Closing any descriptor of a database file drops
    every POSIX lock this process holds on it, SQLite's included, and another process may then
    take its live WAL for abandoned and delete it (SQLite's "How To Corrupt", 2.2): a console
    worker thread opens the workspace while the main thread's connection is live.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WorkspaceError(f"{path}: cannot read the database: {exc}") from exc
    if size == 0:
        raise _damaged(path, "is empty (0 bytes)")
    if size < _HEADER_BYTES:
        raise _damaged(path, f"is truncated ({size} bytes, shorter than an SQLite header)")
    return size


def _check_whole(conn: sqlite3.Connection, path: Path, size: int) -> None:
    """Refuse, through SQLite's own reading of the header, a file that is not an SQLite
    database, one shorter than its header records (truncated), or another application's."""
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise _damaged(path, "is not an SQLite database (its header is wrong)") from exc
        raise _damaged(path, f"is damaged or truncated ({exc})") from exc
    # A checkpoint cut short can leave the header ahead of the file; its -wal then still holds
    # the pages, and SQLite finishes the checkpoint on open. The file is measured again after
    # the -wal: another connection closing meanwhile (a workspace garbage-collected in this
    # process) may have checkpointed the pages read above into it and removed the -wal.
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    size = max(size, _file_size(path))
    if size < pages * page_size and not pending:
        raise _damaged(path, f"is truncated ({size} bytes, its header says {pages * page_size})")
    if app_id not in (0, APPLICATION_ID):
        raise _damaged(path, f"belongs to another application (application_id {app_id:#x})")


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """A connection to `path`; read-only ones never write beside it if they need not."""
    if not read_only:
        return sqlite3.connect(path, timeout=30, isolation_level=None)
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        # A WAL database on read-only media cannot get its -shm; with no -wal beside it
        # there is nothing but the file to read, so it is opened as immutable.
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise WorkspaceError(
                f"{wal}: holds writes not yet in {path.name}, and the folder is read-only so "
                "they cannot be read; copy the workspace somewhere writable"
            ) from None
        conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None)
    return conn


def open_db(path: Path, *, create: bool = False, read_only: bool = False) -> sqlite_utils.Database:
    """Open the cra console database at `path` and apply pending migrations.

    A missing file is created only with `create`; an existing one must be a whole SQLite
    database with this console's application_id (or, made before it was set, this console's
    schema_migrations table). `read_only` opens it without writing anything (and migrates
    nothing: a database that needs a migration cannot be read-only).
    """
    exists = path.exists()
    if not exists and (not create or read_only):
        raise WorkspaceError(f"{path}: no database here; this folder is not a cra workspace")
    size = _file_size(path) if exists else 0
    try:
        conn = _connect(path, read_only)
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise _damaged(path, "is not an SQLite database (its header is wrong)") from exc
        raise WorkspaceError(f"{path}: cannot open the database: {exc}") from exc
    try:
        if exists:
            _check_whole(conn, path, size)
        db = _checked(conn, path, exists, read_only)
    except BaseException:
        conn.close()
        raise
    return db


def _checked(
    conn: sqlite3.Connection, path: Path, exists: bool, read_only: bool
) -> sqlite_utils.Database:
    """`conn` as this console's migrated database, or refused without a change to it."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if exists and app_id != APPLICATION_ID and "schema_migrations" not in tables:
            raise _damaged(path, "is an SQLite database without cra's application_id or tables")
        db = sqlite_utils.Database(conn)
        _check_version(db, path, needs_migration_ok=not read_only)
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        if not read_only:
            migrate(db, path)
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(
            f"{path}: cannot read the database ({exc}); restore it from a backup"
        ) from exc
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest migration applied."""
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def _check_version(db: sqlite_utils.Database, path: Path | str, needs_migration_ok: bool) -> int:
    """The database's schema version, refused if newer than this code knows, or (when
    `needs_migration_ok` is false) older."""
    current = schema_version(db)
    newest = MIGRATIONS[-1][0]
    if current > newest:
        raise WorkspaceError(
            f"{path}: database schema version {current} is newer than this console knows "
            f"({newest}); use a newer cra console"
        )
    if current < newest and not needs_migration_ok:
        raise WorkspaceError(
            f"{path}: database schema version {current} needs migrating to {newest}, which "
            "writes; open it once where it is writable"
        )
    return current


def migrate(db: sqlite_utils.Database, path: Path | str = "database") -> None:
    """Apply every migration newer than the database, each in its own transaction, and mark
    the file as this console's (application_id)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
    )
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    current = _check_version(db, path, needs_migration_ok=True)
    for version, description, apply in MIGRATIONS:
        if version <= current:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            apply(db)
            db.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                [version, description],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class ChangeProbe:
    """Says whether the database changed since the last look, by `PRAGMA data_version` on a
    read-only connection of its own.

    The pragma's value moves only when another connection commits, and values read on two
    connections cannot be compared, so the probe keeps one connection open between looks
    (shared by threads one at a time) and writes nothing through it: every commit counts.
    """

    def __init__(self, path: Path) -> None:
        uri = f"file:{quote(str(path))}?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        self._seen: int | None = None

    def changed(self) -> bool:
        """True on the first look and whenever a commit landed since the previous one."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._seen
        self._seen = version
        return changed

    def close(self) -> None:
        self._conn.close()
