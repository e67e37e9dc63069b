"""Where the fleet's telemetry lands: a small store interface and its SQLite (WAL) implementation.

Duplicates are dropped by the primary key (thing, seq): QoS 1 redelivery and outbox replays
resend the same seq, and ``INSERT OR IGNORE`` keeps the first copy. Lost messages are the gaps
between the seqs a device has stored (computed on read, so a late message fills its gap).
Several collectors may write one database file (WAL, busy timeout) or keep one each.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from edge_agent.errors import BadInputError
from edge_agent.sqlite_schema import open_store
from edgekit.toolkit.fleet import fastjson, migrations, rollup
from edgekit.toolkit.fleet.ingest import (
    BenchRow,
    DriftRow,
    MessageRow,
    MetricsRow,
    Parsed,
    Rejected,
    alert_rows,
    bench_rows,
    drift_row,
    message_row,
    metrics_row,
)

STORE_VERSION = 1

# PRAGMA user_version n is reached by MIGRATIONS[n-1] (edge_agent.sqlite_schema): the numbered
# files in edgekit/toolkit/fleet/migrations/sqlite. Files made before user_version was kept are at 0 and
# adopted by migration 1 (all IF NOT EXISTS).
MIGRATIONS: tuple[str, ...] = migrations.load("sqlite")


@dataclass
class WriteResult:
    """What one batch did: the messages that were new, and how many were dropped."""

    new: list[Parsed] = field(default_factory=list)
    duplicates: int = 0
    rejected: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)  # device alerts, with ids


@dataclass(frozen=True)
class Gap:
    thing: str
    first: int
    last: int
    leading: bool = False  # before the first message seen (the collector may have started late)

    @property
    def missing(self) -> int:
        return self.last - self.first + 1


class Store(Protocol):
    """What the collector, the rules and the readers need from a store, whichever the engine.

    Readers write their SQL once with ``?`` placeholders and portable SQL (both engines run it);
    rows come back indexable by column name.
    """

    location: str  # what to show the user: a file name, or a URL without its password

    def write(self, items: Sequence[Parsed | Rejected]) -> WriteResult: ...

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def add_action_result(self, alert_id: int, action: str, ok: bool, detail: str) -> None: ...

    def add_deployments(self, records: Iterable[dict[str, Any]]) -> int: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def counter(self, key: str) -> int: ...

    def gaps(self) -> list[Gap]: ...

    def close(self) -> None: ...


def insert_sql(table: str, row: type[tuple], *, placeholder: str = "?", rows: int = 1) -> str:
    """``INSERT INTO table (col, …) VALUES (…)`` naming the columns from a row type's fields."""
    cols = row._fields  # type: ignore[attr-defined]
    one = "(" + ", ".join([placeholder] * len(cols)) + ")"
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES " + ", ".join([one] * rows)


@dataclass
class Derived:
    """The rows a batch of new messages adds besides ``messages`` (the same for every engine)."""

    metrics: list[MetricsRow] = field(default_factory=list)
    drift: list[DriftRow] = field(default_factory=list)
    bench: list[BenchRow] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    hellos: list[Parsed] = field(default_factory=list)

    @classmethod
    def of(cls, new: Iterable[Parsed]) -> Derived:
        d = cls()
        for item in new:
            kind = item.type
            if kind == "metrics":
                if (row := metrics_row(item)) is not None:
                    d.metrics.append(row)
                if (drow := drift_row(item)) is not None:
                    d.drift.append(drow)
            elif kind == "bench":
                d.bench.extend(bench_rows(item))
            elif kind == "alerts":
                d.alerts.extend(alert_rows(item))
            elif kind == "hello":
                d.hellos.append(item)
        return d


class DeviceRow(NamedTuple):
    """What a batch says about one device: seen between first_seen and last_seen, last running
    this variant/version/model (from its latest message)."""

    thing: str
    first_seen: float
    last_seen: float
    variant: str | None
    component_version: str
    model_sha256: str | None
    bundle: str | None


class HelloRow(NamedTuple):
    """A device's birth message: its target, hardware and bundle (kept for the latest hello)."""

    hello_seq: int
    target: str | None
    hello: str
    cpu: str | None
    bundle: str | None
    thing: str


def device_rows(new: list[Parsed]) -> list[DeviceRow]:
    seen: dict[str, tuple[float, float, Parsed]] = {}
    for p in new:
        t = p.received.received_at
        lo, hi, last = seen.get(p.thing, (t, t, p))
        seen[p.thing] = (min(lo, t), max(hi, t), p if p.seq >= last.seq else last)
    out = []
    for thing in sorted(seen):  # one lock order for every writer (no deadlocks between them)
        lo, hi, last = seen[thing]
        m = last.message
        out.append(
            DeviceRow(
                thing=thing,
                first_seen=lo,
                last_seen=hi,
                variant=m["model"].get("variant"),
                component_version=m["component_version"],
                model_sha256=m["model"].get("sha256"),
                bundle=m["model"].get("name"),
            )
        )
    return out


def hello_rows(hellos: list[Parsed]) -> list[HelloRow]:
    out = []
    for p in sorted(hellos, key=lambda h: (h.thing, h.seq)):
        body = p.message["body"]
        bundle = body.get("bundle") or {}
        hw = body.get("hardware") or {}
        out.append(
            HelloRow(
                hello_seq=p.seq,
                target=bundle.get("target"),
                hello=fastjson.dumps(body),
                cpu=hw.get("cpu_model") or (hw.get("cpu") or {}).get("model"),
                bundle=bundle.get("name"),
                thing=p.thing,
            )
        )
    return out


# Both engines: upsert a device (ON CONFLICT … excluded is SQLite's and PostgreSQL's syntax;
# the two-argument minimum is min() in SQLite and least() in PostgreSQL).
DEVICE_ON_CONFLICT = (
    " ON CONFLICT (thing) DO UPDATE SET "
    "first_seen = {least}(devices.first_seen, excluded.first_seen), "
    "last_seen = {greatest}(devices.last_seen, excluded.last_seen), "
    "variant = excluded.variant, component_version = excluded.component_version, "
    "model_sha256 = excluded.model_sha256, "
    "bundle = coalesce(excluded.bundle, devices.bundle)"
)
DEVICE_UPSERT = insert_sql("devices", DeviceRow) + DEVICE_ON_CONFLICT
HELLO_UPDATE = (
    "UPDATE devices SET hello_seq = ?, target = ?, hello = ?, cpu = ?, "
    "bundle = coalesce(?, bundle) WHERE thing = ? AND coalesce(hello_seq, 0) <= ?"
)
ALERT_COLUMNS = (
    "t, source, thing, seq, rule, state, severity, message, subject, value, threshold, detail"
)


def alert_values(a: dict[str, Any]) -> tuple:
    return (
        a.get("t", time.time()),
        a.get("source", "fleet"),
        a.get("thing"),
        a.get("seq"),
        a["rule"],
        a.get("state", "firing"),
        a.get("severity", "warning"),
        a.get("message", ""),
        a.get("subject"),
        a.get("value"),
        a.get("threshold"),
        json.dumps(a.get("detail") or {}),
    )


def deployment_values(r: dict[str, Any]) -> tuple:
    return (
        r["deployment_id"],
        r["thing"],
        r.get("status"),
        r.get("detailed_status"),
        r.get("reason"),
        r.get("started_at"),
        r.get("duration_s"),
        json.dumps(r.get("versions") or {}),
        json.dumps(r.get("components") or []),
    )


DEPLOYMENT_COLUMNS = (
    "deployment_id, thing, status, detailed_status, reason, started_at, duration_s, "
    "versions, components"
)

# Portable SQL (SQLite and PostgreSQL alike) for the sequence gaps: the rollup says which
# devices have holes (fewer messages than their seq range); only their seqs are read.
SEQ_RANGES_SQL = (
    "SELECT thing, MIN(min_seq) AS lo, MAX(max_seq) AS hi, SUM(messages) AS n "
    "FROM thing_stats GROUP BY thing"
)
GAPS_SQL = (
    "SELECT thing, prev + 1 AS first, seq - 1 AS last FROM ("
    " SELECT thing, seq, LAG(seq) OVER (PARTITION BY thing ORDER BY seq) AS prev"
    " FROM messages WHERE thing IN ({things})) AS s"
    " WHERE prev IS NOT NULL AND seq > prev + 1 ORDER BY thing, first"
)


def gaps_of(store: Store) -> list[Gap]:
    """Missing seqs per device: between stored seqs, and before the first one stored."""
    out, holey = [], []
    for r in store.query(SEQ_RANGES_SQL):
        lo, hi, n = int(r["lo"]), int(r["hi"]), int(r["n"])
        if lo > 1:
            out.append(Gap(r["thing"], 1, lo - 1, leading=True))
        if hi - lo + 1 > n:
            holey.append(r["thing"])
    for i in range(0, len(holey), 500):
        chunk = holey[i : i + 500]
        sql = GAPS_SQL.format(things=", ".join(["?"] * len(chunk)))
        out += [Gap(r["thing"], int(r["first"]), int(r["last"])) for r in store.query(sql, chunk)]
    return sorted(out, key=lambda g: (g.thing, g.first))


COUNTER_BUMP = (
    "INSERT INTO counters (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = counters.value + excluded.value"
)
ACTION_INSERT = "INSERT INTO actions (alert_id, t, action, ok, detail) VALUES (?, ?, ?, ?, ?)"
REJECT_INSERT = "INSERT INTO rejects (received_at, topic, error, head) VALUES (?, ?, ?, ?)"


def reject_values(item: Rejected) -> tuple:
    return (
        item.received.received_at,
        item.received.topic,
        item.error[:500],
        item.received.payload[:200].decode("utf-8", "replace"),
    )


_MESSAGE_INSERT = insert_sql("messages", MessageRow).replace("INSERT", "INSERT OR IGNORE", 1)
_METRICS_INSERT = insert_sql("metrics", MetricsRow).replace("INSERT", "INSERT OR IGNORE", 1)
_DRIFT_INSERT = insert_sql("drift", DriftRow).replace("INSERT", "INSERT OR IGNORE", 1)
_BENCH_INSERT = insert_sql("bench", BenchRow).replace("INSERT", "INSERT OR IGNORE", 1)
_DEVICE_UPSERT = DEVICE_UPSERT.format(least="min", greatest="max")
_THING_STATS_UPSERT = insert_sql("thing_stats", rollup.ThingStatsRow) + (
    rollup.THING_STATS_CONFLICT.format(least="min", greatest="max")
)
_ALERT_INSERT = f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ({', '.join(['?'] * 12)})"
_REJECT_INSERT = REJECT_INSERT

_NOT_OURS_HINT = "pass a new file name or one written by `edgekit fleet collect`"


def _refuse_foreign(path: Path) -> None:
    """An existing --db must be a fleet database edgekit made: our tables are never added to
    someone else's SQLite file (nor is any other file turned into one)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    version = None
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()
            version = row[0] if row else None
        finally:
            db.close()
    except sqlite3.Error:
        pass
    if version is None:
        raise BadInputError(
            f"--db {path} is not an edgekit fleet database; nothing was changed",
            hint=_NOT_OURS_HINT,
        )


class SqliteStore:
    """The default store: one SQLite file in WAL mode, one writer connection guarded by a lock."""

    engine = "sqlite"

    def __init__(self, path: str | Path, *, keep_payloads: bool = True) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        if self.path.exists() and not self.path.is_file():
            raise BadInputError(f"`db` {self.path} is not a file")
        _refuse_foreign(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keep_payloads = keep_payloads
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except sqlite3.DatabaseError as exc:
            raise BadInputError(
                f"{self.path} is not an edgekit fleet database: {exc}",
                hint=_NOT_OURS_HINT,
            ) from None
        open_store(
            self._db,
            MIGRATIONS,
            pragmas=("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"),
            what="fleet database",
            path=self.path,
            option="--db",
            foreign_hint=_NOT_OURS_HINT,
        )
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", (str(STORE_VERSION),)
        )
        if self.scalar("SELECT value FROM meta WHERE key = 'rebuild_latency_rollup'"):
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                rollup.rebuild_latency(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    @classmethod
    def open_existing(cls, path: str | Path) -> SqliteStore:
        """For readers (report, tune): the file must exist and be a fleet database."""
        path = Path(path)
        if not path.is_file():
            raise BadInputError(
                f"fleet database {path} "
                + ("is a folder, not a database file" if path.is_dir() else "does not exist"),
                hint="collect first: edgekit fleet collect --broker URL --db FILE",
            )
        store = cls(path)
        version = store.scalar("SELECT value FROM meta WHERE key='store_version'")
        if version != str(STORE_VERSION):
            raise BadInputError(f"{path} has store version {version}, expected {STORE_VERSION}")
        return store

    # -- writing -------------------------------------------------------------------------------
    def write(self, items: Sequence[Parsed | Rejected]) -> WriteResult:
        """Store one batch in one transaction; duplicates (thing, seq) are counted and dropped."""
        result = WriteResult()
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for item in items:
                    if isinstance(item, Rejected):
                        result.rejected += 1
                        cur.execute(_REJECT_INSERT, reject_values(item))
                        continue
                    cur.execute(_MESSAGE_INSERT, message_row(item, self.keep_payloads))
                    if cur.rowcount != 1:
                        result.duplicates += 1
                        continue
                    result.new.append(item)
                d = Derived.of(result.new)
                if d.metrics:
                    cur.executemany(_METRICS_INSERT, d.metrics)
                if d.drift:
                    cur.executemany(_DRIFT_INSERT, d.drift)
                if d.bench:
                    cur.executemany(_BENCH_INSERT, d.bench)
                result.alerts = [self._insert_alert(cur, a) for a in d.alerts]
                cur.executemany(_THING_STATS_UPSERT, rollup.thing_stats_rows(result.new))
                rollup.apply_latency(cur, rollup.latency_deltas(d.metrics))
                cur.executemany(_DEVICE_UPSERT, device_rows(result.new))
                cur.executemany(HELLO_UPDATE, [(*h, h.hello_seq) for h in hello_rows(d.hellos)])
                self._bump(cur, "duplicates", result.duplicates)
                self._bump(cur, "rejected", result.rejected)
                self._bump(cur, "stored", len(result.new))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return result

    @staticmethod
    def _bump(cur: sqlite3.Cursor, key: str, n: int) -> None:
        if n:
            cur.execute(COUNTER_BUMP, (key, n))

    @staticmethod
    def _insert_alert(cur: sqlite3.Cursor, a: dict[str, Any]) -> dict[str, Any]:
        cur.execute(_ALERT_INSERT, alert_values(a))
        return {**a, "id": cur.lastrowid}

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store fleet-side alerts; returns them with their ids."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            out = [self._insert_alert(cur, a) for a in alerts]
            cur.execute("COMMIT")
        return out

    def add_action_result(self, alert_id: int, action: str, ok: bool, detail: str) -> None:
        with self._lock:
            self._db.execute(ACTION_INSERT, (alert_id, time.time(), action, int(ok), detail[:2000]))

    def add_deployments(self, records: Iterable[dict[str, Any]]) -> int:
        """Deployment results (the simulator's, or any with the same fields); replaces by id."""
        rows = [deployment_values(r) for r in records]
        with self._lock:
            self._db.executemany(
                f"INSERT OR REPLACE INTO deployments ({DEPLOYMENT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._db.cursor()
            cur.row_factory = sqlite3.Row
            return cur.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def counter(self, key: str) -> int:
        return int(self.scalar("SELECT value FROM counters WHERE key = ?", (key,)) or 0)

    def gaps(self) -> list[Gap]:
        return gaps_of(self)

    def close(self) -> None:
        with self._lock:
            self._db.close()
