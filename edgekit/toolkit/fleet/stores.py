"""One factory for the fleet store: the engine is picked by the target's URL scheme (a plain path
is a SQLite file). Apart from store.py so the engines can import the shared interface without a
circle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.fleet.store import SqliteStore, Store


def _postgres(target: str, keep_payloads: bool, existing: bool) -> Store:
    from edgekit.toolkit.fleet.pg_store import PostgresStore

    return PostgresStore(target, keep_payloads=keep_payloads, existing=existing)


ENGINES: dict[str, Any] = {"postgresql": _postgres, "postgres": _postgres}


def engine_of(target: str | Path) -> str:
    """``postgresql`` for a postgresql:// (or postgres://) URL, else ``sqlite`` (a file)."""
    if isinstance(target, str) and "://" in target:
        scheme = target.split("://", 1)[0].lower()
        if scheme not in ENGINES and scheme not in ("sqlite", "file"):
            raise BadInputError(
                f"--store {target.split('://', 1)[0]}://… is not a store this edgekit knows",
                hint="pass a SQLite file name or postgresql://USER@HOST:PORT/DATABASE",
            )
        return "postgresql" if scheme in ENGINES else "sqlite"
    return "sqlite"


def open_fleet_store(
    target: str | Path, *, keep_payloads: bool = True, existing: bool = False
) -> Store:
    """The fleet store at ``target``: a PostgreSQL URL, or a SQLite file (the default).

    ``existing``: for readers (report, tune), the store must already have been written."""
    if engine_of(target) == "postgresql":
        scheme = str(target).split("://", 1)[0].lower()
        return ENGINES[scheme](str(target), keep_payloads, existing)
    path = Path(str(target).split("://", 1)[1]) if "://" in str(target) else Path(target)
    if existing:
        return SqliteStore.open_existing(path)
    return SqliteStore(path, keep_payloads=keep_payloads)
