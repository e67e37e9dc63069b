"""The fleet store records its schema version (PRAGMA user_version) and refuses a file
written by a newer release instead of misreading it."""

from __future__ import annotations

import sqlite3

import pytest

from edge_agent.errors import BadInputError
from edge_agent.sqlite_schema import user_version
from edgekit.toolkit.fleet.store import MIGRATIONS, SqliteStore


def test_new_file_records_its_version(tmp_path):
    path = tmp_path / "fleet.sqlite"
    SqliteStore(path).close()
    assert user_version(sqlite3.connect(path)) == len(MIGRATIONS) >= 1
    SqliteStore(path).close()  # reopening applies nothing twice
    assert user_version(sqlite3.connect(path)) == len(MIGRATIONS)


def test_a_file_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "newer.sqlite"
    SqliteStore(path).close()  # an edgekit fleet database, as a newer release would leave it
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(BadInputError, match="the fleet database .* was written by a newer edgekit"):
        SqliteStore(path)
