"""Both store engines behind one factory: numbered migrations, refusals (a newer release, a
foreign database, an unreachable server), and concurrent writers deduplicated by (thing, seq)."""

from __future__ import annotations

import random
import sqlite3
import threading

import pytest
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app
from edgekit.toolkit.fleet import migrations
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received, parse
from edgekit.toolkit.fleet.pg_store import PostgresStore, redact
from edgekit.toolkit.fleet.store import SqliteStore
from edgekit.toolkit.fleet.stores import open_fleet_store
from tests.toolkit.fleet.fleet_helpers import metrics

runner = CliRunner()


def _version(store_at) -> int:
    if isinstance(store_at, str):
        import psycopg

        with psycopg.connect(store_at) as conn:
            return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    return sqlite3.connect(store_at).execute("PRAGMA user_version").fetchone()[0]


def _set_version(store_at, version: int) -> None:
    if isinstance(store_at, str):
        import psycopg

        with psycopg.connect(store_at) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (version,))
        return
    db = sqlite3.connect(store_at)
    db.execute(f"PRAGMA user_version = {version}")
    db.close()


def test_migrations_are_numbered_sql_files_alike_for_both_engines():
    lite, pg = migrations.load("sqlite"), migrations.load("postgresql")
    assert len(lite) == len(pg) >= 1
    assert all("CREATE TABLE IF NOT EXISTS messages" in m for m in (lite[0], pg[0]))
    assert "USING brin" in pg[0]  # telemetry time columns: BRIN on PostgreSQL


def test_store_records_its_version_and_refuses_a_newer_one(store_at):
    open_fleet_store(store_at).close()
    assert _version(store_at) == len(migrations.load("sqlite"))
    open_fleet_store(store_at).close()  # reopening applies nothing twice
    assert _version(store_at) == len(migrations.load("sqlite"))
    _set_version(store_at, len(migrations.load("sqlite")) + 1)
    with pytest.raises(BadInputError, match="written by a newer edgekit"):
        open_fleet_store(store_at)


def test_sqlite_file_from_before_versions_is_adopted_and_read(tmp_path):
    """A file an older release wrote (user_version 0, same tables) opens and reads back."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(migrations.load("sqlite")[0])
    db.execute("INSERT INTO meta VALUES ('store_version', '1')")
    db.execute(
        "INSERT INTO messages (thing, seq, type) VALUES ('old-1', 1, 'metrics'), "
        "('old-1', 4, 'metrics')"
    )
    db.commit()
    db.close()
    store = open_fleet_store(path, existing=True)
    try:
        assert isinstance(store, SqliteStore)
        assert [(g.thing, g.first, g.last) for g in store.gaps()] == [("old-1", 2, 3)]
    finally:
        store.close()
    assert _version(path) == len(migrations.load("sqlite"))


def test_postgres_refuses_a_database_with_tables_of_its_own(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    with pytest.raises(BadInputError, match="did not make; nothing was changed"):
        Collector.open(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert tables == [("customers",)]


def test_readers_refuse_an_empty_postgres_database(postgres_url):
    with pytest.raises(BadInputError, match="holds no edgekit fleet store"):
        open_fleet_store(postgres_url, existing=True)
    result = runner.invoke(app, ["fleet", "report", "--store", postgres_url])
    assert result.exit_code == 2 and "holds no edgekit fleet store" in result.output
    assert "Traceback" not in result.output


def test_unreachable_server_and_unknown_engine_are_bad_input(postgres_server):
    from tests.helpers.mosquitto import free_port

    url = f"postgresql://edgekit:s3cret@127.0.0.1:{free_port()}/fleet"
    result = runner.invoke(app, ["fleet", "report", "--store", url])
    assert result.exit_code == 2 and "cannot reach the PostgreSQL fleet store" in result.output
    assert "s3cret" not in result.output and "***" in result.output
    other = runner.invoke(app, ["fleet", "report", "--store", "mysql://h/db"])
    assert other.exit_code == 2 and "not a store this edgekit knows" in other.output
    both = runner.invoke(app, ["fleet", "report", "--store", url, "--db", "x.db"])
    assert both.exit_code == 2 and "pass the fleet store once" in both.output


def test_redact_hides_only_the_password():
    assert redact("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def _open_writer(store_at):
    if isinstance(store_at, str):
        return PostgresStore(store_at, pool_size=1)
    return SqliteStore(store_at)


def test_concurrent_writers_store_each_message_once(store_at):
    """Three writers (as three collectors would) get overlapping, reordered batches of the same
    400 messages at once: each (thing, seq) is stored exactly once, counted new by exactly one
    writer, and every other copy is counted as a duplicate."""
    items = [Received(*metrics(f"dev-{t}", s)) for t in range(8) for s in range(1, 51)]
    open_fleet_store(store_at).close()
    writers = [_open_writer(store_at) for _ in range(3)]
    new_counts = [0, 0, 0]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        rng = random.Random(i)
        mine = items[:]
        rng.shuffle(mine)
        try:
            for k in range(0, len(mine), 50):
                res = writers[i].write([parse(x) for x in mine[k : k + 50]])
                new_counts[i] += len(res.new)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for w in writers:
        w.close()
    assert not errors, errors
    store = open_fleet_store(store_at, existing=True)
    try:
        assert store.scalar("SELECT COUNT(*) FROM messages") == 400
        assert store.scalar("SELECT COUNT(*) FROM metrics") == 400
        assert sum(new_counts) == 400
        assert store.counter("duplicates") == 800
        assert store.counter("stored") == 400
        assert store.gaps() == []
    finally:
        store.close()


def _downgrade_to_v1(store_at) -> None:
    """What a store written by the release before the rollups (migration 0002) looks like."""
    if isinstance(store_at, str):
        import psycopg

        with psycopg.connect(store_at) as conn:
            conn.execute("DROP TABLE thing_stats, latency_rollup")
            conn.execute("DELETE FROM schema_migrations WHERE version >= 2")
        return
    db = sqlite3.connect(store_at)
    db.executescript("DROP TABLE thing_stats; DROP TABLE latency_rollup; PRAGMA user_version = 1;")
    db.close()


def test_a_store_from_before_the_rollups_is_migrated_and_reports_the_same(store_at):
    from edgekit.toolkit.fleet.summary import fleet_summary

    c = Collector.open(store_at)
    items = [
        Received(*metrics(f"dev-{t}", s, latency_ms=1 + t))
        for t in range(3)
        for s in range(1, 10)
        if (t, s) != (1, 5)  # one lost message: a gap the rollup must still find
    ]
    c.process(items)
    c.close()
    before = open_fleet_store(store_at, existing=True)
    want = fleet_summary(before)
    before.close()
    _downgrade_to_v1(store_at)
    after = open_fleet_store(store_at, existing=True)  # applies 0002: backfill + rebuild
    try:
        got = fleet_summary(after)
        assert _version(store_at) == 2
        assert after.scalar("SELECT COUNT(*) FROM latency_rollup") == 3
        for key in ("messages", "devices", "fleet_latency", "span", "gaps"):
            assert got[key] == want[key], key
        assert got["messages"]["stored"] == 26 and got["messages"]["lost"] == 1
        assert after.scalar("SELECT value FROM meta WHERE key = 'rebuild_latency_rollup'") is None
    finally:
        after.close()
