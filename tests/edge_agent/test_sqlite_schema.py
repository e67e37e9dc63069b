"""Versioned SQLite schemas: migrations run in order, once, each with its version bump; a file
from a newer release is refused; a file made before versions were kept is adopted."""

from __future__ import annotations

import sqlite3

import pytest

from edge_agent.sqlite_schema import SchemaTooNewError, migrate, user_version


def _db(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_migrations_apply_in_order_once(tmp_path):
    ran = []

    def third(db: sqlite3.Connection) -> None:
        ran.append(3)
        db.execute("UPDATE t SET b = a * 2")

    migrations = [
        "CREATE TABLE t (a INTEGER);\nINSERT INTO t VALUES (1);",
        "ALTER TABLE t ADD b",
        third,
    ]
    db = _db(tmp_path / "x.sqlite")
    assert migrate(db, migrations[:1]) == 1
    assert migrate(db, migrations) == 3
    assert migrate(db, migrations) == 3  # nothing left to do
    assert ran == [3]
    assert db.execute("SELECT a, b FROM t").fetchall() == [(1, 2)]
    assert user_version(db) == 3


def test_a_failing_migration_leaves_the_previous_version(tmp_path):
    db = _db(tmp_path / "x.sqlite")
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, ["CREATE TABLE t (a);", "ALTER TABLE nowhere ADD b"])
    assert user_version(db) == 1
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]


def test_a_newer_file_is_refused(tmp_path):
    db = _db(tmp_path / "x.sqlite")
    db.execute("PRAGMA user_version = 7")
    with pytest.raises(SchemaTooNewError, match="7 is newer"):
        migrate(db, ["CREATE TABLE t (a);"])
