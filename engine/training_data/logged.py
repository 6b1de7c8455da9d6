"""Importing the agent's raw DB: its runs and calls, and SFT examples from its successful runs.

LoRA Training Strategy §4: a stage's self-improvement data is the agent's own `retrieval_llm_calls`,
chosen by `call_type` (the stage that made the call) and by whether the run it belongs to succeeded
(`task_runs.success`). The raw DB is opened read-only and never changed. Every run and call is
recorded in `logged_runs` and `logged_calls`, upserted with the id of the latest import that read
it, so a run finalised after an earlier import gets its outcome. Each call of a successful run
that belongs to a stage (`agent_calls.stage_of_call`: by call type, and for planning calls by
task id) becomes one example: the call's system prompt (when it has one) and prompt, answered by
its response. A call that gives no example is counted under its reason, and an example over its
stage's token budget is skipped, never truncated.

An example's repo is the basename of its run's `repo_path`; its domain is the `domain` of the
newest approved package whose manifest name equals that repo, else the repo name itself (a repo
the console never ingested is its own balance group). Times are normalised to ISO 8601 UTC; a
time without an offset is read as UTC, as SQLite's CURRENT_TIMESTAMP writes it.

An import is one transaction in the workspace: it records itself in `log_imports` and writes
everything, or nothing. Importing the same raw DB again, or a grown one, adds only the examples
not yet held; an earlier import's examples keep its id.
"""

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import sqlite_utils
from pydantic import BaseModel, ConfigDict

from engine.core.db import inserted_id
from engine.core.errors import CraError
from engine.core.hashing import sha256_file
from engine.core.stages import TOKEN_BUDGET
from engine.core.timestamps import TIME_FORMAT, utc_now
from engine.core.workspace import Workspace
from engine.harness.retrieve import count_tokens
from engine.training_data.agent_calls import stage_of_call
from engine.training_data.items import Message, TrainingItem
from engine.training_data.store import insert_items

SQLITE_HEADER = b"SQLite format 3\x00"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "task_runs": ("task_id", "repo_path", "mode", "stages", "success", "total_tokens", "timestamp"),
    "retrieval_llm_calls": (
        "id",
        "task_id",
        "call_type",
        "model",
        "system_prompt",
        "prompt",
        "response",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "timestamp",
    ),
    "retrieval_decisions": ("task_id",),
}

_DECISIONS_SQL = "SELECT task_id, COUNT(*) FROM retrieval_decisions GROUP BY task_id"
_RUNS_SQL = (
    "SELECT task_id, repo_path, mode, stages, success, total_tokens, timestamp FROM task_runs"
)
_CALLS_SQL = (
    "SELECT id, task_id, call_type, model, system_prompt, prompt, response, prompt_tokens, "
    "completion_tokens, latency_ms, timestamp FROM retrieval_llm_calls ORDER BY id"
)
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
_EPOCH = re.compile(r"-?\d+(\.\d+)?")


class LogImportError(CraError):
    """A raw DB that cannot be imported; the message names the file and the reason."""


class UnknownLogSchema(LogImportError):
    """The raw DB lacks a table or column the import reads."""


class LogConflict(LogImportError):
    """The raw DB contradicts what an earlier import recorded."""


class ImportReport(BaseModel):
    """What one import read and wrote. `skipped` counts calls that gave no example, by reason:
    `no_run`, `not_finalised`, `run_failed`, `no_stage:<call type>`, `empty_prompt`,
    `empty_response`, `over_budget:<stage>`; with `added` and `already` they sum to `calls`."""

    model_config = ConfigDict(frozen=True)

    import_id: int
    path: str
    sha256: str
    imported_by: str
    imported_at: str
    runs: int
    successful_runs: int
    decisions: int
    calls: int
    added: int
    already: int
    added_by_stage: dict[str, int]
    skipped: dict[str, int]


class _Written(BaseModel):
    """The part of the report that `_record` knows."""

    model_config = ConfigDict(frozen=True)

    import_id: int
    imported_at: str
    calls: int
    added: int
    already: int
    added_by_stage: dict[str, int]
    skipped: dict[str, int]


@dataclass(frozen=True)
class _Run:
    task_id: str
    repo_path: str | None
    mode: str | None
    stages: str | None
    success: int | None
    total_tokens: int | None
    timestamp: str


def normalise_time(value: object) -> str:
    """`value` as `YYYY-MM-DDTHH:MM:SSZ`: from `YYYY-MM-DD HH:MM:SS`, ISO 8601 with `T`, `Z` or
    an offset (fractions of a second dropped; no offset means UTC), or unix epoch seconds."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and _EPOCH.fullmatch(value):
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str) and _ISO_TIME.fullmatch(value):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        else:
            raise ValueError("expected 'YYYY-MM-DD HH:MM:SS', ISO 8601 or unix epoch seconds")
        return moment.astimezone(UTC).strftime(TIME_FORMAT)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"{value!r} is not a time this import reads: {exc}") from exc


def import_logs(ws: Workspace, raw_db: Path, operator: str | None = None) -> ImportReport:
    """Import the agent's raw DB at `raw_db` into `ws` (see the module docstring)."""
    path = raw_db.expanduser().absolute()
    _check_sqlite_file(path)
    digest = sha256_file(path)
    who = operator or ws.config.operator
    raw = _open_read_only(path)
    try:
        raw.execute("BEGIN")
        _check_schema(raw, path)
        runs = _read_runs(raw, path)
        decisions: dict[str, int] = {
            task_id: count for task_id, count in _rows(raw, path, _DECISIONS_SQL)
        }
        ws.db.execute("BEGIN IMMEDIATE")
        try:
            written = _record(ws.db, raw, path, digest, who, runs)
            if sha256_file(path) != digest:
                raise LogImportError(
                    f"{path}: the file changed while it was being imported; nothing was "
                    "imported: stop the agent or import a copy"
                )
        except BaseException:
            ws.db.execute("ROLLBACK")
            raise
        ws.db.execute("COMMIT")
    finally:
        raw.close()
    successful = [run.task_id for run in runs.values() if run.success == 1]
    return ImportReport(
        path=str(path),
        sha256=digest,
        imported_by=who,
        runs=len(runs),
        successful_runs=len(successful),
        decisions=sum(decisions.get(task_id, 0) for task_id in successful),
        **written.model_dump(),
    )


def _check_sqlite_file(path: Path) -> None:
    if not path.is_file():
        raise LogImportError(f"{path}: no such file; give the agent's raw DB (raw.sqlite)")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise LogImportError(f"{path}: cannot read the raw DB: {exc}") from exc
    if header != SQLITE_HEADER:
        raise LogImportError(f"{path}: not an SQLite database; give the agent's raw DB")


def _open_read_only(path: Path) -> sqlite3.Connection:
    """The raw DB opened so that nothing is written beside it, even on read-only media.

    A WAL database opened read-only the usual way makes a -wal and -shm beside it and leaves
    them; opened immutable it makes neither but reads only the main file. So a raw DB with
    writes still in its -wal (the agent is running, or did not close cleanly) is refused.
    """
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise LogImportError(
            f"{path}: has writes not yet checkpointed into it ({wal.name}): stop the agent, or "
            "import a copy made with `sqlite3 raw.sqlite .backup copy.sqlite`"
        )
    try:
        raw = sqlite3.connect(
            f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise LogImportError(f"{path}: cannot open the raw DB read-only: {exc}") from exc
    raw.row_factory = sqlite3.Row
    return raw


def _rows(raw: sqlite3.Connection, path: Path, sql: str) -> Iterator[sqlite3.Row]:
    try:
        yield from raw.execute(sql)
    except sqlite3.DatabaseError as exc:
        raise LogImportError(f"{path}: cannot read the raw DB: {exc}") from exc


def _check_schema(raw: sqlite3.Connection, path: Path) -> None:
    tables = {
        row[0].lower()
        for row in _rows(raw, path, "SELECT name FROM sqlite_master WHERE type='table'")
    }
    missing = []
    for table, needed in REQUIRED_COLUMNS.items():
        if table not in tables:
            missing.append(f"table {table}")
            continue
        columns = {row[1].lower() for row in _rows(raw, path, f"PRAGMA table_info({table})")}
        missing += [f"column {table}.{column}" for column in needed if column not in columns]
    if missing:
        raise UnknownLogSchema(
            f"{path}: not the agent's raw DB schema this console knows: missing "
            f"{', '.join(missing)}; nothing was imported"
        )


def _read_runs(raw: sqlite3.Connection, path: Path) -> dict[str, _Run]:
    runs: dict[str, _Run] = {}
    for row in _rows(raw, path, _RUNS_SQL):
        task_id = row["task_id"]
        if not isinstance(task_id, str) or not task_id:
            raise LogImportError(f"{path}: a task_runs row has task_id {task_id!r}, not a name")
        if task_id in runs:
            raise LogImportError(f"{path}: task_runs holds task_id {task_id!r} twice")
        if row["success"] not in (None, 0, 1):
            raise LogImportError(
                f"{path}: run {task_id!r}: success is {row['success']!r}, not NULL, 0 or 1"
            )
        try:
            timestamp = normalise_time(row["timestamp"])
        except ValueError as exc:
            raise LogImportError(f"{path}: run {task_id!r}: timestamp {exc}") from exc
        runs[task_id] = _Run(
            task_id=task_id,
            repo_path=row["repo_path"],
            mode=row["mode"],
            stages=row["stages"],
            success=row["success"],
            total_tokens=row["total_tokens"],
            timestamp=timestamp,
        )
    return runs


def _record(
    db: sqlite_utils.Database,
    raw: sqlite3.Connection,
    path: Path,
    digest: str,
    who: str,
    runs: dict[str, _Run],
) -> _Written:
    """Every write of one import; the caller holds the transaction."""
    now = utc_now()
    import_id = inserted_id(
        db.table("log_imports").insert(
            {"path": str(path), "sha256": digest, "imported_at": now, "imported_by": who}
        )
    )
    for run in runs.values():
        _upsert_run(db, path, import_id, run)
    domains: dict[str, str] = {}
    skipped: Counter[str] = Counter()
    added_by_stage: Counter[str] = Counter()
    calls = already = 0
    for call in _rows(raw, path, _CALLS_SQL):
        calls += 1
        _upsert_call(db, path, import_id, call)
        outcome = _example(path, call, runs.get(call["task_id"]), import_id, domains, db)
        if isinstance(outcome, str):
            skipped[outcome] += 1
        elif insert_items(db, [outcome], now).added:
            added_by_stage[outcome.stage] += 1
        else:
            already += 1
    added = sum(added_by_stage.values())
    db.execute(
        "UPDATE log_imports SET runs = ?, calls = ?, examples = ?, skipped_json = ? WHERE id = ?",
        [len(runs), calls, added, json.dumps(dict(sorted(skipped.items()))), import_id],
    )
    return _Written(
        import_id=import_id,
        imported_at=now,
        calls=calls,
        added=added,
        already=already,
        added_by_stage=dict(sorted(added_by_stage.items())),
        skipped=dict(sorted(skipped.items())),
    )


def _upsert_run(db: sqlite_utils.Database, path: Path, import_id: int, run: _Run) -> None:
    cursor = db.execute(
        "INSERT INTO logged_runs (task_id, import_id, repo_path, mode, stages, success, "
        "total_tokens, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (task_id) DO UPDATE SET import_id = excluded.import_id, "
        "repo_path = excluded.repo_path, mode = excluded.mode, stages = excluded.stages, "
        "success = excluded.success, total_tokens = excluded.total_tokens, "
        "timestamp = excluded.timestamp "
        "WHERE logged_runs.success IS NULL OR logged_runs.success IS excluded.success",
        [
            run.task_id,
            import_id,
            run.repo_path,
            run.mode,
            run.stages,
            run.success,
            run.total_tokens,
            run.timestamp,
        ],
    )
    if cursor.rowcount == 0:
        held = db.execute(
            "SELECT success, import_id FROM logged_runs WHERE task_id = ?", [run.task_id]
        ).fetchone()
        raise LogConflict(
            f"{path}: run {run.task_id!r} has success {run.success!r}, but import {held[1]} "
            f"recorded it finalised with success {held[0]}; nothing was imported"
        )


def _upsert_call(db: sqlite_utils.Database, path: Path, import_id: int, call: sqlite3.Row) -> None:
    call_id, task_id, call_type = call["id"], call["task_id"], call["call_type"]
    where = f"{path}: call {call_id!r}"
    if not isinstance(call_id, int):
        raise LogImportError(f"{where}: its id is not an integer")
    if not isinstance(task_id, str) or not task_id:
        raise LogImportError(f"{where}: task_id {task_id!r} is not a name")
    if not isinstance(call_type, str) or not call_type:
        raise LogImportError(f"{where}: call_type {call_type!r} is not a name")
    try:
        timestamp = normalise_time(call["timestamp"])
    except ValueError as exc:
        raise LogImportError(f"{where}: timestamp {exc}") from exc
    cursor = db.execute(
        "INSERT INTO logged_calls (call_id, task_id, import_id, call_type, model, "
        "prompt_tokens, completion_tokens, latency_ms, timestamp) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (call_id) DO UPDATE SET import_id = excluded.import_id, "
        "call_type = excluded.call_type, model = excluded.model, "
        "prompt_tokens = excluded.prompt_tokens, "
        "completion_tokens = excluded.completion_tokens, latency_ms = excluded.latency_ms, "
        "timestamp = excluded.timestamp WHERE logged_calls.task_id = excluded.task_id",
        [
            call_id,
            task_id,
            import_id,
            call_type,
            call["model"],
            call["prompt_tokens"],
            call["completion_tokens"],
            call["latency_ms"],
            timestamp,
        ],
    )
    if cursor.rowcount == 0:
        held = db.execute(
            "SELECT task_id, import_id FROM logged_calls WHERE call_id = ?", [call_id]
        ).fetchone()
        raise LogConflict(
            f"{where} belongs to run {task_id!r}, but import {held[1]} recorded call "
            f"{call_id} for run {held[0]!r}: is this another agent's raw DB? nothing was imported"
        )


def _example(
    path: Path,
    call: sqlite3.Row,
    run: _Run | None,
    import_id: int,
    domains: dict[str, str],
    db: sqlite_utils.Database,
) -> TrainingItem | str:
    """The call's example, or the reason it gives none."""
    if run is None:
        return "no_run"
    if run.success is None:
        return "not_finalised"
    if run.success == 0:
        return "run_failed"
    call_type = call["call_type"]
    stage = stage_of_call(call_type, call["task_id"])
    if stage is None:
        return f"no_stage:{call_type}"
    where = f"{path}: call {call['id']}"
    system, prompt, response = (
        _text(call, column, where) for column in ("system_prompt", "prompt", "response")
    )
    if not prompt.strip():
        return "empty_prompt"
    if not response.strip():
        return "empty_response"
    if count_tokens(system) + count_tokens(prompt) + count_tokens(response) > TOKEN_BUDGET[stage]:
        return f"over_budget:{stage}"
    repo = _repo_name(path, run)
    if repo not in domains:
        domains[repo] = _domain(db, repo)
    return TrainingItem(
        stage=stage,
        kind="sft",
        source="logged",
        origin="logged_call",
        repo=repo,
        domain=domains[repo],
        task_key=f"logged:{run.task_id}",
        task_date=run.timestamp,
        log_import_id=import_id,
        log_call_id=call["id"],
        prompt=[
            *([Message(role="system", content=system)] if system.strip() else []),
            Message(role="user", content=prompt),
        ],
        chosen=[Message(role="assistant", content=response)],
    )


def _text(call: sqlite3.Row, column: str, where: str) -> str:
    value = call[column]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LogImportError(f"{where}: {column} is {type(value).__name__}, not text")
    return value


def _repo_name(path: Path, run: _Run) -> str:
    name = Path(run.repo_path).name if isinstance(run.repo_path, str) else ""
    if not name:
        raise LogImportError(
            f"{path}: run {run.task_id!r}: repo_path {run.repo_path!r} names no repo folder"
        )
    return name


def _domain(db: sqlite_utils.Database, repo: str) -> str:
    row = db.execute(
        "SELECT manifest_json FROM packages WHERE name = ? ORDER BY approved_at DESC, id DESC "
        "LIMIT 1",
        [repo],
    ).fetchone()
    return repo if row is None else json.loads(row[0])["domain"]
