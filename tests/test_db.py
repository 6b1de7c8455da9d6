"""The workspace database: WAL, versioned migrations, append-only decisions."""

import sqlite3
from pathlib import Path

import pytest

from engine.db import APPLICATION_ID, MIGRATIONS, open_db, schema_version
from engine.errors import WorkspaceError


def test_fresh_database_is_migrated_and_in_wal(tmp_path: Path):
    db = open_db(tmp_path / "cra.sqlite", create=True)
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"packages", "package_files", "ingest_decisions"} <= set(db.table_names())


def test_reopening_applies_nothing_twice(tmp_path: Path):
    open_db(tmp_path / "cra.sqlite", create=True)
    db = open_db(tmp_path / "cra.sqlite", create=True)
    rows = db.execute("SELECT version FROM schema_migrations").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]


def test_newer_database_is_refused(tmp_path: Path):
    db = open_db(tmp_path / "cra.sqlite", create=True)
    db.execute("INSERT INTO schema_migrations (version, description) VALUES (999, 'future')")
    with pytest.raises(WorkspaceError, match="newer than this console knows"):
        open_db(tmp_path / "cra.sqlite", create=True)


def test_decisions_are_append_only(tmp_path: Path):
    db = open_db(tmp_path / "cra.sqlite", create=True)
    db["ingest_decisions"].insert(
        {"digest": "d", "decision": "rejected", "decided_at": "2026-01-01T00:00:00Z"}
    )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE ingest_decisions SET decision = 'approved'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM ingest_decisions")


def test_new_database_carries_the_application_id(tmp_path: Path):
    """A database this console makes is marked as its own in the SQLite header."""
    db = open_db(tmp_path / "cra.sqlite", create=True)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_missing_database_is_not_created_without_create(tmp_path: Path):
    """Opening a database that is not there refuses, and leaves nothing behind."""
    with pytest.raises(WorkspaceError, match="not a cra workspace"):
        open_db(tmp_path / "cra.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_database_from_before_the_application_id_opens_and_gets_it(tmp_path: Path):
    """A database made by an earlier version (schema_migrations, no application_id) opens and
    is marked as this console's."""
    path = tmp_path / "cra.sqlite"
    open_db(path, create=True).execute("PRAGMA application_id=0")
    db = open_db(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert schema_version(db) == MIGRATIONS[-1][0]


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "empty"),
        (b"this is a text file, not a database\n" * 10, "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\x00" * 20, "truncated"),
    ],
)
def test_a_file_that_is_not_a_whole_database_is_refused_untouched(
    tmp_path: Path, content: bytes, rule: str
):
    """Empty, foreign or cut-short files are refused, never migrated over."""
    path = tmp_path / "cra.sqlite"
    path.write_bytes(content)
    with pytest.raises(WorkspaceError, match=rule):
        open_db(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cra.sqlite"]


def test_truncated_database_is_refused(tmp_path: Path):
    """A real database cut to half its size is refused as truncated."""
    path = tmp_path / "cra.sqlite"
    db = open_db(path, create=True)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkspaceError, match="truncated"):
        open_db(path)


def test_another_applications_database_is_refused_untouched(tmp_path: Path):
    """An SQLite file made by something else (its own tables, or another application_id) is
    refused and not migrated."""
    path = tmp_path / "cra.sqlite"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (body TEXT)")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(WorkspaceError, match="without cra's application_id"):
        open_db(path)
    assert path.read_bytes() == before
    other = sqlite3.connect(path)
    other.execute("PRAGMA application_id=1234")
    other.close()
    with pytest.raises(WorkspaceError, match="another application"):
        open_db(path)


def test_read_only_open_writes_nothing(tmp_path: Path):
    """A read-only open reads the tables, refuses writes, and migrates nothing."""
    path = tmp_path / "cra.sqlite"
    open_db(path, create=True).conn.close()
    db = open_db(path, read_only=True)
    assert "packages" in db.table_names()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("DELETE FROM packages")
