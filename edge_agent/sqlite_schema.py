"""Versioned SQLite schemas: ``PRAGMA user_version`` records which migrations a file has had.

Every SQLite store of the project (the agent's outbox, the fleet store, the pipeline's run store)
declares its schema as an ordered list of migrations; migration *n* takes a file from version
n-1 to n. Opening a file applies the missing ones in one transaction each, so a store written
by an older release is upgraded in place, and a file from a newer release (a version above the
last migration) is refused instead of being misread. Files made before versions were recorded
have user_version 0; migration 1 is written with ``IF NOT EXISTS`` so it adopts them as they are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

# One migration: SQL statements (run as a script) or a function of the connection.
Migration = str | Callable[[sqlite3.Connection], None]


class SchemaTooNewError(Exception):
    """The file was written by a newer release (its user_version is beyond our migrations)."""

    def __init__(self, found: int, latest: int) -> None:
        super().__init__(f"schema version {found} is newer than this release knows ({latest})")
        self.found = found
        self.latest = latest


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations this file has not had yet, in order; returns the resulting version.

    Each step and its version bump commit together (a crash leaves the file at a whole version).
    The connection must be in autocommit mode (``isolation_level=None``) or have no open
    transaction.
    """
    latest = len(migrations)
    current = user_version(db)
    if current > latest:
        raise SchemaTooNewError(current, latest)
    for version in range(current + 1, latest + 1):
        step = migrations[version - 1]
        db.execute("BEGIN IMMEDIATE")
        try:
            if callable(step):
                step(db)
            else:
                for statement in _statements(step):
                    db.execute(statement)
            # PRAGMA takes no parameters; version is an int we computed
            db.execute(f"PRAGMA user_version = {int(version)}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return latest


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit our transaction)."""
    out, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out


def open_store(
    db: sqlite3.Connection,
    migrations: Sequence[Migration],
    *,
    pragmas: Sequence[str],
    what: str,
    path: object,
    option: str,
    foreign_hint: str,
) -> None:
    """Set the pragmas and migrate a workstation store, turning a file from a newer release or
    one that is no SQLite database into bad input named after the store and its option; the
    connection is closed when refused."""
    from edge_agent.errors import BadInputError

    try:
        for pragma in pragmas:
            db.execute(pragma)
        migrate(db, migrations)
    except SchemaTooNewError as exc:
        db.close()
        raise BadInputError(
            f"the {what} {path} was written by a newer edgekit ({exc})",
            hint=f"upgrade edgekit, or pass another {option}",
        ) from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise BadInputError(f"{path} is not an edgekit {what}: {exc}", hint=foreign_hint) from None
