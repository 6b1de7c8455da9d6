"""The workspace database: WAL, versioned migrations, append-only decisions."""

import sqlite3
from pathlib import Path

import pytest

from engine.db import MIGRATIONS, open_db, schema_version
from engine.errors import WorkspaceError


def test_fresh_database_is_migrated_and_in_wal(tmp_path: Path):
    db = open_db(tmp_path / "cra.sqlite")
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"packages", "package_files", "ingest_decisions"} <= set(db.table_names())


def test_reopening_applies_nothing_twice(tmp_path: Path):
    open_db(tmp_path / "cra.sqlite")
    db = open_db(tmp_path / "cra.sqlite")
    rows = db.execute("SELECT version FROM schema_migrations").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]


def test_newer_database_is_refused(tmp_path: Path):
    db = open_db(tmp_path / "cra.sqlite")
    db.execute("INSERT INTO schema_migrations (version, description) VALUES (999, 'future')")
    with pytest.raises(WorkspaceError, match="newer than this console knows"):
        open_db(tmp_path / "cra.sqlite")


def test_decisions_are_append_only(tmp_path: Path):
    db = open_db(tmp_path / "cra.sqlite")
    db["ingest_decisions"].insert(
        {"digest": "d", "decision": "rejected", "decided_at": "2026-01-01T00:00:00Z"}
    )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE ingest_decisions SET decision = 'approved'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM ingest_decisions")
