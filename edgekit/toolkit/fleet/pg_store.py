"""The fleet store on PostgreSQL: many collectors (processes, hosts) writing one database while
reports read it.

Same tables, columns and behaviour as the SQLite store (edgekit.toolkit.fleet.store), built for many
writers: a connection pool (psycopg 3), each batch one transaction that COPYs the envelopes into
a temporary table and moves them with ``INSERT … ON CONFLICT (thing, seq) DO NOTHING
RETURNING`` (so the rows that were new are known and duplicates, from QoS 1 redelivery or
another collector, are dropped by the key), then COPYs the rows derived from the new messages.
Keys are written in one order (thing, seq) so concurrent collectors never deadlock. Time
columns carry BRIN indexes. The schema is the numbered files in migrations/postgresql, applied
under an advisory lock so collectors starting together migrate once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from edge_agent.errors import BadInputError
from edgekit.toolkit.fleet import migrations, rollup
from edgekit.toolkit.fleet.ingest import (
    BenchRow,
    DriftRow,
    MessageRow,
    MetricsRow,
    Parsed,
    Rejected,
    message_row,
)
from edgekit.toolkit.fleet.store import (
    ACTION_INSERT,
    ALERT_COLUMNS,
    DEPLOYMENT_COLUMNS,
    DEVICE_ON_CONFLICT,
    HELLO_UPDATE,
    REJECT_INSERT,
    STORE_VERSION,
    Derived,
    DeviceRow,
    Gap,
    WriteResult,
    alert_values,
    deployment_values,
    device_rows,
    gaps_of,
    hello_rows,
    reject_values,
)

MIGRATIONS: tuple[str, ...] = migrations.load("postgresql")
_LOCK_KEY = 0x6564676B  # "edgk": the advisory lock that serialises migrations
_HINT = "pass --store postgresql://USER@HOST:PORT/DATABASE of a reachable server"


def redact(url: str) -> str:
    """The URL to show: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _pg(sql: str) -> str:
    """The store's portable SQL (``?`` placeholders) in psycopg's style (``%s``)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _clean(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL; a malformed payload kept for the rejects table may."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _import():
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise BadInputError(
            "a PostgreSQL fleet store needs psycopg 3 and psycopg-pool",
            hint="pip install 'edgekit[postgresql]'",
        ) from None
    return psycopg, psycopg_pool


class PostgresStore:
    """The fleet store in a PostgreSQL database (``postgresql://…`` URL)."""

    engine = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        keep_payloads: bool = True,
        pool_size: int = 4,
        existing: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        psycopg, psycopg_pool = _import()
        from psycopg.rows import dict_row

        self.url = url
        self.location = redact(url)
        self.path = self.location  # what the summary names as its database
        self.keep_payloads = keep_payloads
        self._psycopg = psycopg
        self._dict_row = dict_row
        try:
            with psycopg.connect(url, connect_timeout=int(connect_timeout)) as conn:
                _migrate(conn, self.location, existing=existing)
        except psycopg.OperationalError as exc:
            raise BadInputError(
                f"cannot reach the PostgreSQL fleet store {self.location}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
                hint=_HINT,
            ) from None
        except psycopg.ProgrammingError as exc:  # a bad URL (option names, syntax)
            raise BadInputError(f"`store` {self.location}: {exc}", hint=_HINT) from None
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=True,
            timeout=60.0,
            name="edgekit-fleet",
        )
        self._closed = threading.Event()

    @classmethod
    def open_existing(cls, url: str) -> PostgresStore:
        """For readers: the database must already hold an edgekit fleet store."""
        return cls(url, existing=True)

    # -- writing -------------------------------------------------------------------------------
    def write(self, items: Sequence[Parsed | Rejected]) -> WriteResult:
        """Store one batch in one transaction; duplicates (thing, seq) are counted and dropped."""
        result = WriteResult()
        rejects = [tuple(map(_clean, reject_values(i))) for i in items if isinstance(i, Rejected)]
        result.rejected = len(rejects)
        parsed = [i for i in items if isinstance(i, Parsed)]
        first: dict[tuple[str, int], Parsed] = {}  # a key twice in one batch: the first copy
        for p in parsed:
            first.setdefault((p.thing, p.seq), p)
        rows = [message_row(first[k], self.keep_payloads) for k in sorted(first)]
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            if rejects:
                cur.executemany(_pg(REJECT_INSERT), rejects)
            new_keys: set[tuple[str, int]] = set()
            if rows:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS incoming "
                    "(LIKE messages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                _copy(cur, "incoming", MessageRow, rows)
                cols = ", ".join(MessageRow._fields)
                cur.execute(
                    f"INSERT INTO messages ({cols}) SELECT {cols} FROM incoming "
                    "ORDER BY thing, seq ON CONFLICT (thing, seq) DO NOTHING RETURNING thing, seq"
                )
                new_keys = {(t, int(s)) for t, s in cur.fetchall()}
            result.new = [
                p for p in parsed if first[(p.thing, p.seq)] is p and (p.thing, p.seq) in new_keys
            ]
            result.duplicates = len(parsed) - len(result.new)
            derived = Derived.of(result.new)
            # rows derived from messages new in this transaction cannot exist yet: plain COPY
            _copy(cur, "metrics", MetricsRow, derived.metrics)
            _copy(cur, "drift", DriftRow, derived.drift)
            _copy(cur, "bench", BenchRow, derived.bench)
            result.alerts = [self._insert_alert(cur, a) for a in derived.alerts]
            _upsert(cur, _THING_STATS, rollup.ThingStatsRow, rollup.thing_stats_rows(result.new))
            rollup.apply_latency(cur, rollup.latency_deltas(derived.metrics), _ROLLUP_OPS)
            _upsert(cur, _DEVICES, DeviceRow, device_rows(result.new))
            hellos = hello_rows(derived.hellos)
            if hellos:
                cur.executemany(_pg(HELLO_UPDATE), [(*h, h.hello_seq) for h in hellos])
            counts = [
                (k, n)
                for k, n in (
                    ("duplicates", result.duplicates),
                    ("rejected", result.rejected),
                    ("stored", len(result.new)),
                )
                if n
            ]
            if counts:  # always in key order: writers lock the counter rows alike
                counts.sort()
                cur.execute(
                    "INSERT INTO counters (key, value) VALUES "
                    + ", ".join(["(%s, %s)"] * len(counts))
                    + " ON CONFLICT (key) DO UPDATE SET value = counters.value + excluded.value",
                    [v for kv in counts for v in kv],
                )
        return result

    @staticmethod
    def _insert_alert(cur: Any, a: dict[str, Any]) -> dict[str, Any]:
        cur.execute(
            f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ({', '.join(['%s'] * 12)}) RETURNING id",
            [_clean(v) for v in alert_values(a)],
        )
        return {**a, "id": int(cur.fetchone()[0])}

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        alerts = list(alerts)
        if not alerts:
            return []
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            return [self._insert_alert(cur, a) for a in alerts]

    def add_action_result(self, alert_id: int, action: str, ok: bool, detail: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                _pg(ACTION_INSERT),
                (alert_id, time.time(), action, int(ok), _clean(detail[:2000])),
            )

    def add_deployments(self, records: Iterable[dict[str, Any]]) -> int:
        rows = [deployment_values(r) for r in records]
        if not rows:
            return 0
        cols = [c.strip() for c in DEPLOYMENT_COLUMNS.split(",")]
        update = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
        with self._pool.connection() as conn, conn.transaction():
            conn.cursor().executemany(
                f"INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES "
                f"({', '.join(['%s'] * len(cols))}) "
                f"ON CONFLICT (deployment_id, thing) DO UPDATE SET {update}",
                rows,
            )
        return len(rows)

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=self._dict_row)
            if params:
                cur.execute(_pg(sql), list(params))
            else:
                cur.execute(sql)
            return cur.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._pool.connection() as conn:
            cur = conn.cursor()
            if params:
                cur.execute(_pg(sql), list(params))
            else:
                cur.execute(sql)
            row = cur.fetchone()
        return None if row is None else row[0]

    def counter(self, key: str) -> int:
        return int(self.scalar("SELECT value FROM counters WHERE key = ?", (key,)) or 0)

    def gaps(self) -> list[Gap]:
        return gaps_of(self)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()


def _staged(table: str, row: type[tuple], conflict: str) -> tuple[str, str, str]:
    """Statements that upsert any number of rows with one COPY: a temporary staging table with
    the row's columns (no constraints), and an INSERT … SELECT from it in key order."""
    cols = ", ".join(row._fields)  # type: ignore[attr-defined]
    stage = f"stage_{table}"
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
        f"SELECT {cols} FROM {table} WITH NO DATA"
    )
    key = (
        "thing, variant"
        if table == "latency_rollup"
        else "thing"
        if table == "devices"
        else ("thing, type")
    )
    move = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ORDER BY {key}{conflict}"
    return stage, create, move


def _upsert(
    cur: Any, staged: tuple[str, str, str], row: type[tuple], rows: Sequence[tuple]
) -> None:
    if not rows:
        return
    stage, create, move = staged
    cur.execute(create)
    _copy(cur, stage, row, rows)
    cur.execute(move)
    cur.execute(f"DELETE FROM {stage}")


_LG = {"least": "least", "greatest": "greatest"}
_THING_STATS = _staged(
    "thing_stats", rollup.ThingStatsRow, rollup.THING_STATS_CONFLICT.format(**_LG)
)
_DEVICES = _staged("devices", DeviceRow, DEVICE_ON_CONFLICT.format(**_LG))
_ROLLUP_ENSURE = _staged(
    "latency_rollup", rollup.LatencyRollupRow, " ON CONFLICT (thing, variant) DO NOTHING"
)
_ROLLUP_WRITE = _staged(
    "latency_rollup",
    rollup.LatencyRollupRow,
    " ON CONFLICT (thing, variant) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in rollup.LatencyRollupRow._fields[2:]),
)


class _PgRollupOps(rollup.RollupOps):
    """COPY through the staging table; the rows read back are locked (FOR UPDATE) until commit."""

    def ensure(self, cur: Any, keys: list[tuple[str, str]]) -> None:
        stage, create, move = _ROLLUP_ENSURE
        cur.execute(create)
        _copy(cur, stage, rollup.LatencyRollupRow, [(t, v, 0, 0, 0, 0.0, None) for t, v in keys])
        cur.execute(move)

    def read(self, cur: Any, things: list[str]) -> list[tuple]:
        cur.execute(
            f"SELECT l.thing, l.variant, l.windows, l.requests, l.errors, l.rps_sum, l.latency "
            f"FROM latency_rollup l JOIN {_ROLLUP_ENSURE[0]} s USING (thing, variant) "
            "ORDER BY l.thing, l.variant FOR UPDATE OF l"
        )
        rows = cur.fetchall()
        cur.execute(f"DELETE FROM {_ROLLUP_ENSURE[0]}")
        return rows

    def write(self, cur: Any, rows: list[rollup.LatencyRollupRow]) -> None:
        _upsert(cur, _ROLLUP_WRITE, rollup.LatencyRollupRow, rows)


_ROLLUP_OPS = _PgRollupOps()


def _copy(cur: Any, table: str, row: type[tuple], rows: Sequence[tuple]) -> None:
    if not rows:
        return
    cols = ", ".join(row._fields)  # type: ignore[attr-defined]
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(r)


def _migrate(conn: Any, location: str, *, existing: bool) -> None:
    """Apply the missing numbered migrations in one transaction, under an advisory lock."""
    latest = len(MIGRATIONS)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        have = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
        if not have:
            if existing:
                raise BadInputError(
                    f"{location} holds no edgekit fleet store",
                    hint="collect first: edgekit fleet collect --broker URL --store " + location,
                )
            others = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchone()[0]
            if others:
                raise BadInputError(
                    f"{location} already holds {others} tables that edgekit did not make; "
                    "nothing was changed",
                    hint="pass an empty database (createdb NAME) or one written by "
                    "`edgekit fleet collect`",
                )
            conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
        current = conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        ).fetchone()[0]
        if current > latest:
            raise BadInputError(
                f"the fleet store {location} was written by a newer edgekit (schema version "
                f"{current} is newer than this release knows ({latest}))",
                hint="upgrade edgekit, or pass another `store`",
            )
        for version in range(current + 1, latest + 1):
            conn.execute(MIGRATIONS[version - 1])
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, time.time()))
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('store_version', %s) ON CONFLICT DO NOTHING",
            (str(STORE_VERSION),),
        )
        flag = conn.execute("SELECT value FROM meta WHERE key = 'rebuild_latency_rollup'")
        if flag.fetchone():
            rollup.rebuild_latency(conn.cursor(), _pg, _ROLLUP_OPS)
