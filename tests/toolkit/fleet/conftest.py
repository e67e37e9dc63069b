"""The store's test suite runs against both engines: ``store_at`` is a SQLite file or the URL of
a fresh database on a real PostgreSQL cluster (tests/helpers/postgres.py)."""

from __future__ import annotations

import pytest

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def fleet_engine(request) -> str:
    return request.param


@pytest.fixture
def store_at(fleet_engine, tmp_path, request):
    """Where a test's fleet store lives: ``tmp_path/fleet.db`` or ``postgresql://…/t_<hex>``."""
    if fleet_engine == "sqlite":
        return tmp_path / "fleet.db"
    return request.getfixturevalue("postgres_url")
