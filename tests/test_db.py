"""The workspace database: WAL, versioned migrations, append-only decisions."""

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from engine.core.db import APPLICATION_ID, MIGRATIONS, open_db, schema_version
from engine.core.errors import WorkspaceError


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


def _at_version(path: Path, version: int) -> sqlite_utils.Database:
    """A database made by the migrations up to `version`, as an older console left it."""
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
        "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
    )
    for number, description, apply in MIGRATIONS:
        if number <= version:
            apply(db)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", [number, description])
    return db


def _example(task_key: str, digest: str, sha: str, content: str) -> dict:
    return {
        "stage": "scope",
        "base_model": "coder",
        "kind": "sft",
        "source": "synthetic",
        "origin": "commit",
        "repo": "textkit",
        "domain": "text",
        "task_key": task_key,
        "task_date": "2024-03-04T10:00:00Z",
        "package_digest": digest,
        "sha": sha,
        "prompt_json": "[]",
        "chosen_json": "[]",
        "content_hash": content,
        "created_at": "2024-03-05T10:00:00Z",
    }


def test_migration_9_keys_tasks_by_repo_and_commit(tmp_path: Path):
    """A database where one commit came in two packages (derived twice under `digest:sha`):
    its derivations become one row per repo and sha (the older stays), items get `repo:sha`
    keys, and the one twin whose new key would duplicate another item keeps its old key."""
    path = tmp_path / "cra.sqlite"
    old = _at_version(path, 8)
    for digest, name in (("d1", "textkit"), ("d2", "textkit"), ("d3", "other")):
        old["packages"].insert(
            {
                "name": name,
                "digest": digest,
                "corpus_path": f"corpus/{digest}",
                "approved_by": "op",
                "approved_at": "2024-03-01T00:00:00Z",
            }
        )
    for digest, when in (("d2", "2024-03-06T00:00:00Z"), ("d1", "2024-03-05T00:00:00Z")):
        old["derivations"].insert(
            {
                "package_digest": digest,
                "sha": "s1",
                "derived_at": when,
                "examples": 1,
                "pairs": 0,
                "skipped_json": "[]",
            }
        )
    old["derivations"].insert(
        {"package_digest": "d3", "sha": "s1", "derived_at": "2024-03-07T00:00:00Z"}
    )
    old["examples"].insert_all(
        [
            _example("d1:s1", "d1", "s1", "same"),
            _example("d2:s1", "d2", "s1", "same"),
            _example("d2:s1", "d2", "s1", "other"),
            {**_example("logged:7", None, None, "same"), "source": "logged", "repo": "r"},
        ]
    )
    old.conn.close()

    db = open_db(path)
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert db.execute(
        "SELECT repo, sha, package_digest, derived_at FROM derivations ORDER BY repo"
    ).fetchall() == [
        ("other", "s1", "d3", "2024-03-07T00:00:00Z"),
        ("textkit", "s1", "d1", "2024-03-05T00:00:00Z"),
    ]
    assert db.execute("SELECT task_key FROM examples ORDER BY id").fetchall() == [
        ("textkit:s1",),
        ("d2:s1",),
        ("textkit:s1",),
        ("logged:7",),
    ]
    assert "validated_in" in db["tasks"].columns_dict
