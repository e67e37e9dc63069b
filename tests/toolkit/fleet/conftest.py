"""The store's test suite runs against both engines: ``store_at`` is a SQLite file or the URL of
a fresh database on a real PostgreSQL cluster (tests/helpers/postgres.py). ``aws``: moto's
service models behind the standard boto3 chain, in eu-west-1."""

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


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield
