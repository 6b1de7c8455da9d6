"""`cra import-logs`: a raw DB built here with the agent's schema, imported read-only into a real
workspace: examples and their lineage, skips by reason, idempotent and growing re-imports,
refused inputs that leave the workspace as it was, and the CLI."""

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from readonly_mount import cra_with_read_only, read_only_mounts_work

from app.cli import cli
from app.cli_logs import import_logs_command
from engine.core.workspace import Workspace
from engine.intake.approval import approve_package
from engine.training_data.items import Message
from engine.training_data.logged import (
    LogConflict,
    LogImportError,
    UnknownLogSchema,
    import_logs,
    normalise_time,
)
from engine.training_data.store import item_from_row

if "import-logs" not in cli.commands:
    cli.add_command(import_logs_command)

_SCHEMA = """
CREATE TABLE task_runs (
    id INTEGER PRIMARY KEY, task_id TEXT UNIQUE NOT NULL, repo_path TEXT, mode TEXT,
    execute_model TEXT, context_window INTEGER, reserved_tokens INTEGER, stages TEXT,
    plan_artifact TEXT, success INTEGER, total_tokens INTEGER, total_latency_ms INTEGER,
    final_diff TEXT, final_plan TEXT, timestamp
);
CREATE TABLE retrieval_llm_calls (
    id INTEGER PRIMARY KEY, task_id TEXT NOT NULL, call_type TEXT NOT NULL, stage_name TEXT,
    model TEXT, system_prompt TEXT, prompt TEXT, response TEXT, prompt_tokens INTEGER,
    completion_tokens INTEGER, latency_ms INTEGER, timestamp TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE retrieval_decisions (
    id INTEGER PRIMARY KEY, task_id TEXT NOT NULL, stage TEXT, file_id INTEGER,
    symbol_id INTEGER, detail_level TEXT, tier TEXT, included INTEGER, reason TEXT,
    timestamp TEXT
);
CREATE TABLE run_attempts (
    id INTEGER PRIMARY KEY, task_run_id INTEGER, attempt INTEGER, raw_response TEXT,
    patch_applied INTEGER
);
CREATE TABLE validation_results (
    id INTEGER PRIMARY KEY, attempt_id INTEGER, success INTEGER, test_output TEXT,
    failing_tests TEXT
);
"""

_TABLES = ("log_imports", "logged_runs", "logged_calls", "examples")
_EPOCH = 1767323045  # 2026-01-02T03:04:05Z


def _sql(path: Path, sql: str, params: tuple = ()) -> int:
    conn = sqlite3.connect(path)
    try:
        with conn:
            return conn.execute(sql, params).lastrowid
    finally:
        conn.close()


def _run(path: Path, task_id: str, success: int | None, repo: str, timestamp: object) -> None:
    _sql(
        path,
        "INSERT INTO task_runs (task_id, repo_path, mode, stages, success, total_tokens, "
        "timestamp) VALUES (?, ?, 'implement', 'task_analysis,scope,precision', ?, 1234, ?)",
        (task_id, repo, success, timestamp),
    )


def _call(
    path: Path,
    task_id: str,
    call_type: str,
    prompt: str = "Add a --keep-stopwords flag to the CLI.",
    response: str = '{"files": ["textkit/cli.py"]}',
    system: str = "You are the agent's retrieval stage.",
    timestamp: object = "2026-01-02 03:04:06",
) -> int:
    return _sql(
        path,
        "INSERT INTO retrieval_llm_calls (task_id, call_type, stage_name, model, system_prompt, "
        "prompt, response, prompt_tokens, completion_tokens, latency_ms, timestamp) "
        "VALUES (?, ?, ?, 'qwen3-4b', ?, ?, ?, 11, 7, 250, ?)",
        (task_id, call_type, call_type, system, prompt, response, timestamp),
    )


def _decisions(path: Path, task_id: str, n: int) -> None:
    for i in range(n):
        _sql(
            path,
            "INSERT INTO retrieval_decisions (task_id, stage, file_id, detail_level, tier, "
            "included, reason) VALUES (?, 'scope', ?, 'primary', 1, 1, 'needed')",
            (task_id, i),
        )


def _build_raw(path: Path) -> dict[str, int]:
    """Runs that succeeded, failed and are still open; calls of stages and of none; an empty
    prompt and response; two over their budgets; a call of no run. Returns call ids by name."""
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    conn.close()
    _run(path, "run-ok", 1, "/home/agent/repos/textkit", "2026-01-02 03:04:05")
    _run(path, "run-iso", 1, "/srv/repos/otherlib/", "2026-01-02T05:04:05+02:00")
    _run(path, "run-epoch", 1, "/r/textkit", _EPOCH)
    _run(path, "run-failed", 0, "/r/textkit", "2026-01-01T00:00:00Z")
    _run(path, "run-open", None, "/r/textkit", "2026-01-03 10:00:00")
    ids = {
        "analysis": _call(path, "run-ok", "task_analysis"),
        "scope": _call(path, "run-ok", "scope", response="relevant: textkit/cli.py", system=""),
        "refilter": _call(path, "run-ok", "assembly_refilter"),
        "empty_response": _call(path, "run-ok", "precision", response=""),
        "long_code": _call(path, "run-ok", "execute_implement", prompt="x" * 100_000),
        "long_analysis": _call(path, "run-ok", "task_analysis", prompt="y" * 30_000),
        "dpo": _call(path, "run-ok", "planning_dpo"),
        "empty_prompt": _call(path, "run-ok", "precision", prompt="  \n"),
        "iso_precision": _call(
            path,
            "run-iso",
            "precision",
            response="primary: cli.main",
            timestamp="2026-01-02T03:05:00Z",
        ),
        "epoch_scope": _call(path, "run-epoch", "scope", timestamp=str(_EPOCH + 1)),
        "failed_scope": _call(path, "run-failed", "scope"),
        "failed_code": _call(path, "run-failed", "execute_code"),
        "open_analysis": _call(path, "run-open", "task_analysis"),
        "ghost": _call(path, "ghost-run", "scope"),
    }
    _decisions(path, "run-ok", 3)
    _decisions(path, "run-iso", 1)
    _decisions(path, "run-failed", 2)
    return ids


@pytest.fixture
def raw(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    path = tmp_path / "agent" / "raw.sqlite"
    path.parent.mkdir()
    return path, _build_raw(path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _counts(ws: Workspace) -> dict[str, int]:
    return {table: ws.db[table].count for table in _TABLES}


def _examples(ws: Workspace) -> dict[int, dict]:
    return {row["log_call_id"]: row for row in ws.db["examples"].rows}


_SKIPPED = {
    "empty_prompt": 1,
    "empty_response": 1,
    "no_run": 1,
    "no_stage:assembly_refilter": 1,
    "no_stage:planning_dpo": 1,
    "not_finalised": 1,
    "over_budget:execute_code": 1,
    "over_budget:task_analysis": 1,
    "run_failed": 2,
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02 03:04:05", "2026-01-02T03:04:05Z"),
        ("2026-01-02 03:04:05.123", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T05:04:05+02:00", "2026-01-02T03:04:05Z"),
        ("2026-01-01T23:04:05-0400", "2026-01-02T03:04:05Z"),
        (_EPOCH, "2026-01-02T03:04:05Z"),
        (_EPOCH + 0.75, "2026-01-02T03:04:05Z"),
        (str(_EPOCH), "2026-01-02T03:04:05Z"),
    ],
)
def test_the_stored_time_forms_are_normalised(value: object, expected: str) -> None:
    assert normalise_time(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "2026-01-02", "2026-01-02T03:04", "yesterday", "2026-13-02 03:04:05", 10**20],
)
def test_other_time_forms_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="is not a time this import reads"):
        normalise_time(value)


def test_import_makes_examples_of_successful_stage_calls(
    tmp_path: Path, valid_package: Path, raw: tuple[Path, dict[str, int]]
) -> None:
    path, ids = raw
    ws = Workspace.open(tmp_path / "workspace")
    approve_package(ws, valid_package, operator="ana")  # textkit, domain text-processing
    before = _sha(path)

    report = import_logs(ws, path, operator="bob")

    assert _sha(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["raw.sqlite"]
    assert report.sha256 == before and report.path == str(path)
    assert (report.runs, report.successful_runs, report.decisions, report.calls) == (5, 3, 4, 14)
    assert (report.added, report.already) == (4, 0)
    assert report.added_by_stage == {"precision": 1, "scope": 2, "task_analysis": 1}
    assert report.skipped == _SKIPPED
    assert report.added + report.already + sum(report.skipped.values()) == report.calls

    [imported] = list(ws.db["log_imports"].rows)
    assert imported["id"] == report.import_id
    assert (imported["path"], imported["sha256"], imported["imported_by"]) == (
        str(path),
        before,
        "bob",
    )
    assert (imported["runs"], imported["calls"], imported["examples"]) == (5, 14, 4)
    assert json.loads(imported["skipped_json"]) == _SKIPPED

    examples = _examples(ws)
    assert set(examples) == {
        ids["analysis"],
        ids["scope"],
        ids["iso_precision"],
        ids["epoch_scope"],
    }
    analysis = item_from_row(examples[ids["analysis"]])
    assert (analysis.stage, analysis.kind, analysis.source, analysis.origin) == (
        "task_analysis",
        "sft",
        "logged",
        "logged_call",
    )
    assert (analysis.repo, analysis.domain, analysis.task_key, analysis.task_date) == (
        "textkit",
        "text-processing",
        "logged:run-ok",
        "2026-01-02T03:04:05Z",
    )
    assert (analysis.log_import_id, analysis.base_model) == (report.import_id, "reasoning")
    assert analysis.prompt == [
        Message(role="system", content="You are the agent's retrieval stage."),
        Message(role="user", content="Add a --keep-stopwords flag to the CLI."),
    ]
    assert analysis.chosen == [Message(role="assistant", content='{"files": ["textkit/cli.py"]}')]
    scope = item_from_row(examples[ids["scope"]])
    assert scope.row()["messages"] == [
        {"role": "user", "content": "Add a --keep-stopwords flag to the CLI."},
        {"role": "assistant", "content": "relevant: textkit/cli.py"},
    ]
    iso = item_from_row(examples[ids["iso_precision"]])
    assert (iso.repo, iso.domain, iso.task_date) == ("otherlib", "otherlib", "2026-01-02T03:04:05Z")
    epoch = item_from_row(examples[ids["epoch_scope"]])
    assert (epoch.repo, epoch.domain, epoch.task_key, epoch.task_date) == (
        "textkit",
        "text-processing",
        "logged:run-epoch",
        "2026-01-02T03:04:05Z",
    )

    runs = {row["task_id"]: row for row in ws.db["logged_runs"].rows}
    assert {task: row["success"] for task, row in runs.items()} == {
        "run-ok": 1,
        "run-iso": 1,
        "run-epoch": 1,
        "run-failed": 0,
        "run-open": None,
    }
    assert runs["run-failed"]["timestamp"] == "2026-01-01T00:00:00Z"
    assert runs["run-ok"]["repo_path"] == "/home/agent/repos/textkit"
    assert runs["run-ok"]["stages"] == "task_analysis,scope,precision"
    assert {row["import_id"] for row in runs.values()} == {report.import_id}
    calls = {row["call_id"]: row for row in ws.db["logged_calls"].rows}
    assert set(calls) == set(ids.values())
    ghost = calls[ids["ghost"]]
    assert (ghost["task_id"], ghost["call_type"], ghost["model"]) == (
        "ghost-run",
        "scope",
        "qwen3-4b",
    )
    assert (ghost["prompt_tokens"], ghost["completion_tokens"], ghost["latency_ms"]) == (11, 7, 250)
    assert calls[ids["epoch_scope"]]["timestamp"] == "2026-01-02T03:04:06Z"
    assert calls[ids["refilter"]]["call_type"] == "assembly_refilter"


def test_reimport_adds_nothing_and_a_grown_db_adds_only_the_new(
    workspace: Workspace, raw: tuple[Path, dict[str, int]]
) -> None:
    path, ids = raw
    first = import_logs(workspace, path)
    again = import_logs(workspace, path)
    assert (again.added, again.already, again.skipped) == (0, 4, _SKIPPED)
    assert again.import_id == first.import_id + 1
    assert workspace.db["examples"].count == 4
    assert workspace.db["log_imports"].count == 2
    assert {row["import_id"] for row in workspace.db["logged_runs"].rows} == {again.import_id}

    _sql(path, "UPDATE task_runs SET success = 1 WHERE task_id = 'run-open'")
    _run(path, "run-new", 1, "/r/newlib", "2026-01-04 08:00:00")
    new_call = _call(path, "run-new", "execute_implement", response="<<<SEARCH\na\n===\nb\n>>>")

    grown = import_logs(workspace, path)

    assert (grown.added, grown.already) == (2, 4)
    assert grown.added_by_stage == {"execute_code": 1, "task_analysis": 1}
    assert "not_finalised" not in grown.skipped
    examples = _examples(workspace)
    assert len(examples) == 6
    assert examples[ids["open_analysis"]]["log_import_id"] == grown.import_id
    assert examples[new_call]["base_model"] == "coding"
    assert examples[new_call]["domain"] == "newlib"
    assert examples[ids["analysis"]]["log_import_id"] == first.import_id
    assert workspace.db["logged_runs"].get("run-open")["success"] == 1
    assert workspace.db["logged_calls"].count == 15


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "UPDATE task_runs SET success = 0 WHERE task_id = 'run-ok'",
            "run 'run-ok' has success 0, but import 1 recorded it finalised with success 1",
        ),
        (
            "UPDATE retrieval_llm_calls SET task_id = 'run-iso' WHERE task_id = 'run-failed'",
            "belongs to run 'run-iso', but import 1 recorded call",
        ),
    ],
)
def test_a_raw_db_contradicting_an_earlier_import_is_refused(
    workspace: Workspace, raw: tuple[Path, dict[str, int]], change: str, message: str
) -> None:
    path, _ = raw
    import_logs(workspace, path)
    counts = _counts(workspace)
    runs = list(workspace.db["logged_runs"].rows)
    _sql(path, change)
    with pytest.raises(LogConflict, match=message):
        import_logs(workspace, path)
    assert _counts(workspace) == counts
    assert list(workspace.db["logged_runs"].rows) == runs


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ("DROP TABLE retrieval_decisions", "missing table retrieval_decisions;"),
        (
            "ALTER TABLE task_runs DROP COLUMN success; "
            "ALTER TABLE retrieval_llm_calls DROP COLUMN response",
            "missing column task_runs.success, column retrieval_llm_calls.response;",
        ),
    ],
)
def test_an_unknown_schema_is_refused_with_nothing_written(
    workspace: Workspace, raw: tuple[Path, dict[str, int]], change: str, missing: str
) -> None:
    path, _ = raw
    conn = sqlite3.connect(path)
    conn.executescript(change)
    conn.close()
    before = _sha(path)
    with pytest.raises(UnknownLogSchema) as caught:
        import_logs(workspace, path)
    assert str(path) in str(caught.value)
    assert "not the agent's raw DB schema this console knows" in str(caught.value)
    assert missing in str(caught.value)
    assert _counts(workspace) == dict.fromkeys(_TABLES, 0)
    assert _sha(path) == before


def test_files_that_are_not_sqlite_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("task_runs, retrieval_llm_calls\n")
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for path in (text, empty):
        with pytest.raises(LogImportError, match="not an SQLite database") as caught:
            import_logs(workspace, path)
        assert str(path) in str(caught.value)
    for path in (tmp_path, tmp_path / "missing.sqlite"):
        with pytest.raises(LogImportError, match="no such file") as caught:
            import_logs(workspace, path)
        assert str(path) in str(caught.value)
    assert _counts(workspace) == dict.fromkeys(_TABLES, 0)


def test_a_bad_time_anywhere_leaves_the_workspace_as_it_was(
    workspace: Workspace, raw: tuple[Path, dict[str, int]]
) -> None:
    path, ids = raw
    late = _call(path, "run-ok", "scope", timestamp="soon")
    with pytest.raises(LogImportError, match=f"call {late}: timestamp 'soon' is not a time"):
        import_logs(workspace, path)
    assert _counts(workspace) == dict.fromkeys(_TABLES, 0)

    _sql(path, "DELETE FROM retrieval_llm_calls WHERE id = ?", (late,))
    _sql(path, "UPDATE task_runs SET timestamp = 'last tuesday' WHERE task_id = 'run-failed'")
    with pytest.raises(LogImportError, match="run 'run-failed': timestamp 'last tuesday'"):
        import_logs(workspace, path)
    assert _counts(workspace) == dict.fromkeys(_TABLES, 0)


def test_cli_prints_the_report_and_refuses_in_one_line(
    tmp_path: Path, raw: tuple[Path, dict[str, int]]
) -> None:
    path, _ = raw
    root = Workspace.open(tmp_path / "workspace").root

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["--workspace", str(root), "import-logs", *args])

    result = invoke(str(path), "--operator", "bob")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"import 1: {path} (sha256 ")
    assert "examples: 4 new (precision 1, scope 2, task_analysis 1), 0 already held" in (
        result.stdout
    )
    assert "skipped run_failed: 2" in result.stdout

    result = invoke(str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["import_id"], report["added"], report["already"]) == (2, 0, 4)
    assert report["skipped"] == _SKIPPED

    bogus = tmp_path / "raw.txt"
    bogus.write_text("not a database")
    result = invoke(str(bogus))
    assert result.exit_code == 1
    assert result.stderr == f"error: {bogus}: not an SQLite database; give the agent's raw DB\n"
    assert "Traceback" not in result.output


def test_a_raw_db_in_wal_mode_is_read_without_changing_it(
    workspace: Workspace, raw: tuple[Path, dict[str, int]]
) -> None:
    path, _ = raw
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    before = _sha(path)
    report = import_logs(workspace, path)
    assert (report.added, report.calls) == (4, 14)
    assert _sha(path) == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("raw")) == [path.name]


def test_a_raw_db_with_writes_in_its_wal_is_refused_untouched(
    workspace: Workspace, raw: tuple[Path, dict[str, int]]
) -> None:
    """Rows still in the -wal would be missed by an immutable read: the import refuses."""
    path, _ = raw
    agent = sqlite3.connect(path)
    agent.execute("PRAGMA journal_mode=WAL")
    agent.execute("PRAGMA wal_autocheckpoint=0")
    agent.execute("CREATE TABLE agent_scratch (x INTEGER)")
    agent.commit()
    before = _sha(path)
    with pytest.raises(LogImportError, match="writes not yet checkpointed"):
        import_logs(workspace, path)
    assert _sha(path) == before
    agent.close()


def test_planning_and_code_calls_map_to_their_stages_by_call_type_and_task_id(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "raw.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    conn.close()
    for task_id in ("t1:meta_plan", "t1:part_plan:p1", "t1:test_plan:p1", "t1", "t1:adjust"):
        _run(path, task_id, 1, "/r/textkit", "2026-01-02 03:04:05")
    ids = {
        "meta_plan": _call(path, "t1:meta_plan", "execute_plan"),
        "step_plan": _call(path, "t1:part_plan:p1", "execute_plan"),
        "test_plan": _call(path, "t1:test_plan:p1", "execute_plan"),
        "execute_code": _call(path, "t1", "execute_function_implement"),
        "unplanned": _call(path, "t1:adjust", "execute_plan"),
    }
    report = import_logs(workspace, path)
    stages = {row["log_call_id"]: row["stage"] for row in workspace.db["examples"].rows}
    assert stages == {
        ids[stage]: stage for stage in ("meta_plan", "step_plan", "test_plan", "execute_code")
    }
    assert report.skipped == {"no_stage:execute_plan": 1}


@pytest.mark.skipif(not read_only_mounts_work(), reason="no user and mount namespaces here")
def test_a_raw_db_on_read_only_media_is_imported(
    tmp_path: Path, raw: tuple[Path, dict[str, int]]
) -> None:
    """A WAL raw DB on a read-only drive imports (nothing can be written beside it)."""
    path, _ = raw
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    drive = tmp_path / "drive"
    drive.mkdir()
    path = path.rename(drive / path.name)
    root = Workspace.open(tmp_path / "workspace").root
    done = cra_with_read_only(drive, "--workspace", str(root), "import-logs", str(path))
    assert done.returncode == 0, done.stderr
    assert "examples: 4 new" in done.stdout
    assert sorted(p.name for p in drive.iterdir()) == [path.name]
