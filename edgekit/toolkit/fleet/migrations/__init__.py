"""The fleet store's schema as plain numbered SQL files, one folder per engine.

``<engine>/NNNN_name.sql`` takes a store from version NNNN-1 to NNNN; both engines have the same
numbers (a change is one file in each folder). SQLite records its version in ``PRAGMA
user_version`` (edge_agent.sqlite_schema applies the files), PostgreSQL in the
``schema_migrations`` table (edgekit.toolkit.fleet.pg_store). Released files are never edited.
"""

from __future__ import annotations

import re
from importlib import resources

ENGINES = ("sqlite", "postgresql")
_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


def load(engine: str) -> tuple[str, ...]:
    """The migration scripts of one engine, in order; the numbers must run 1, 2, 3… unbroken."""
    if engine not in ENGINES:
        raise ValueError(f"no fleet migrations for engine {engine!r}")
    folder = resources.files(__package__) / engine
    found = sorted(
        (int(m.group(1)), entry) for entry in folder.iterdir() if (m := _NAME.fullmatch(entry.name))
    )
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"fleet migrations for {engine} are not numbered 1..n: {numbers}")
    return tuple(entry.read_text(encoding="utf-8") for _, entry in found)
