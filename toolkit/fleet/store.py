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
from typing import Any, Protocol

from edge_agent.errors import BadInputError
from edge_agent.sqlite_schema import open_store
from toolkit.fleet import fastjson
from toolkit.fleet.ingest import (
    Parsed,
    Rejected,
    alert_rows,
    bench_rows,
    drift_row,
    metrics_row,
)

STORE_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, received_at REAL,
  created_at REAL, window_start REAL, window_end REAL, part_index INTEGER, part_count INTEGER,
  component_version TEXT, model_name TEXT, variant TEXT, model_sha256 TEXT, payload TEXT,
  UNIQUE (thing, seq));
CREATE TABLE IF NOT EXISTS devices (
  thing TEXT PRIMARY KEY, first_seen REAL, last_seen REAL, hello_seq INTEGER, target TEXT,
  bundle TEXT, variant TEXT, component_version TEXT, model_sha256 TEXT, cpu TEXT, hello TEXT);
CREATE TABLE IF NOT EXISTS metrics (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, window_start REAL, window_end REAL, model_name TEXT,
  variant TEXT, component_version TEXT, requests INTEGER, ok INTEGER, errors INTEGER,
  rows INTEGER, requests_per_s REAL, p50 REAL, p90 REAL, p99 REAL, latency TEXT, compute TEXT,
  cpu_percent REAL, rss_bytes REAL, outbox_pending INTEGER, outbox_dropped INTEGER,
  PRIMARY KEY (thing, seq));
CREATE INDEX IF NOT EXISTS metrics_time ON metrics (window_end);
CREATE TABLE IF NOT EXISTS drift (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, window_end REAL, model_name TEXT, block TEXT,
  PRIMARY KEY (thing, seq));
CREATE INDEX IF NOT EXISTS drift_time ON drift (window_end);
CREATE TABLE IF NOT EXISTS bench (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, t REAL, model_name TEXT, variant TEXT,
  record TEXT, PRIMARY KEY (thing, seq, variant));
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, source TEXT, thing TEXT, seq INTEGER,
  rule TEXT, state TEXT, severity TEXT, message TEXT, subject TEXT, value REAL,
  threshold REAL, detail TEXT);
CREATE TABLE IF NOT EXISTS actions (
  alert_id INTEGER, t REAL, action TEXT, ok INTEGER, detail TEXT);
CREATE TABLE IF NOT EXISTS deployments (
  deployment_id TEXT NOT NULL, thing TEXT NOT NULL, status TEXT, detailed_status TEXT,
  reason TEXT, started_at REAL, duration_s REAL, versions TEXT, components TEXT,
  PRIMARY KEY (deployment_id, thing));
CREATE TABLE IF NOT EXISTS rejects (received_at REAL, topic TEXT, error TEXT, head TEXT);
"""

# PRAGMA user_version n is reached by MIGRATIONS[n-1] (edge_agent.sqlite_schema); append a
# migration for every schema change, never edit a released one. Files made before user_version
# was kept are at 0 and adopted by migration 1 (all IF NOT EXISTS).
MIGRATIONS: tuple[str, ...] = (_SCHEMA,)


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
    """What the collector and the report need from a store (SQLite is the default)."""

    def write(self, items: Sequence[Parsed | Rejected]) -> WriteResult: ...

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def add_action_result(self, alert_id: int, action: str, ok: bool, detail: str) -> None: ...

    def add_deployments(self, records: Iterable[dict[str, Any]]) -> int: ...

    def gaps(self) -> list[Gap]: ...

    def close(self) -> None: ...


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

    def __init__(self, path: str | Path, *, keep_payloads: bool = True) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise BadInputError(f"--db {self.path} is not a file")
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

    @classmethod
    def open_existing(cls, path: str | Path) -> SqliteStore:
        """For readers (report, tune): the file must exist and be a fleet database."""
        path = Path(path)
        if not path.is_file():
            raise BadInputError(
                f"fleet database {path} does not exist",
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
        metrics, drifts, benches, alerts, hellos = [], [], [], [], []
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for item in items:
                    if isinstance(item, Rejected):
                        result.rejected += 1
                        cur.execute(
                            "INSERT INTO rejects VALUES (?, ?, ?, ?)",
                            (
                                item.received.received_at,
                                item.received.topic,
                                item.error[:500],
                                item.received.payload[:200].decode("utf-8", "replace"),
                            ),
                        )
                        continue
                    m = item.message
                    cur.execute(
                        "INSERT OR IGNORE INTO messages VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            m["thing"],
                            m["seq"],
                            m["type"],
                            item.received.received_at,
                            m["created_at"],
                            m["window"]["start"],
                            m["window"]["end"],
                            m["part"]["index"],
                            m["part"]["count"],
                            m["component_version"],
                            m["model"].get("name"),
                            m["model"].get("variant"),
                            m["model"].get("sha256"),
                            item.received.payload.decode("utf-8") if self.keep_payloads else None,
                        ),
                    )
                    if cur.rowcount != 1:
                        result.duplicates += 1
                        continue
                    result.new.append(item)
                    if m["type"] == "metrics":
                        row = metrics_row(item)
                        if row is not None:
                            metrics.append(row)
                        drow = drift_row(item)
                        if drow is not None:
                            drifts.append(drow)
                    elif m["type"] == "bench":
                        benches.extend(bench_rows(item))
                    elif m["type"] == "alerts":
                        alerts.extend(alert_rows(item))
                    elif m["type"] == "hello":
                        hellos.append(item)
                if metrics:
                    cur.executemany(
                        "INSERT OR IGNORE INTO metrics VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        metrics,
                    )
                if drifts:
                    cur.executemany(
                        "INSERT OR IGNORE INTO drift VALUES (?, ?, ?, ?, ?)",
                        drifts,
                    )
                if benches:
                    cur.executemany(
                        "INSERT OR IGNORE INTO bench VALUES (?, ?, ?, ?, ?, ?)", benches
                    )
                result.alerts = [self._insert_alert(cur, a) for a in alerts]
                self._touch_devices(cur, result.new, hellos)
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
            cur.execute(
                "INSERT INTO counters VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                (key, n),
            )

    @staticmethod
    def _touch_devices(cur: sqlite3.Cursor, new: list[Parsed], hellos: list[Parsed]) -> None:
        seen: dict[str, tuple[float, float, Parsed]] = {}
        for p in new:
            t = p.received.received_at
            lo, hi, last = seen.get(p.thing, (t, t, p))
            seen[p.thing] = (min(lo, t), max(hi, t), p if p.seq >= last.seq else last)
        for thing, (lo, hi, last) in seen.items():
            m = last.message
            cur.execute(
                "INSERT INTO devices (thing, first_seen, last_seen, variant, component_version, "
                "model_sha256, bundle) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(thing) DO UPDATE SET "
                "first_seen = min(first_seen, excluded.first_seen), "
                "last_seen = max(last_seen, excluded.last_seen), "
                "variant = excluded.variant, component_version = excluded.component_version, "
                "model_sha256 = excluded.model_sha256, "
                "bundle = coalesce(excluded.bundle, bundle)",
                (
                    thing,
                    lo,
                    hi,
                    m["model"].get("variant"),
                    m["component_version"],
                    m["model"].get("sha256"),
                    m["model"].get("name"),
                ),
            )
        for p in hellos:
            body = p.message["body"]
            bundle = body.get("bundle") or {}
            hw = body.get("hardware") or {}
            cpu = hw.get("cpu_model") or (hw.get("cpu") or {}).get("model")
            cur.execute(
                "UPDATE devices SET hello_seq = ?, target = ?, hello = ?, cpu = ?, "
                "bundle = coalesce(?, bundle) WHERE thing = ? AND coalesce(hello_seq, 0) <= ?",
                (
                    p.seq,
                    bundle.get("target"),
                    fastjson.dumps(body),
                    cpu,
                    bundle.get("name"),
                    p.thing,
                    p.seq,
                ),
            )

    @staticmethod
    def _insert_alert(cur: sqlite3.Cursor, a: dict[str, Any]) -> dict[str, Any]:
        cur.execute(
            "INSERT INTO alerts (t, source, thing, seq, rule, state, severity, message, subject, "
            "value, threshold, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
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
            ),
        )
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
            self._db.execute(
                "INSERT INTO actions VALUES (?, ?, ?, ?, ?)",
                (alert_id, time.time(), action, int(ok), detail[:2000]),
            )

    def add_deployments(self, records: Iterable[dict[str, Any]]) -> int:
        """Deployment results (the simulator's, or any with the same fields); replaces by id."""
        rows = [
            (
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
            for r in records
        ]
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
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
        """Missing seqs per device: between stored seqs, and before the first one stored."""
        rows = self.query(
            "SELECT thing, prev + 1 AS first, seq - 1 AS last FROM ("
            " SELECT thing, seq, LAG(seq) OVER (PARTITION BY thing ORDER BY seq) AS prev"
            " FROM messages) WHERE prev IS NOT NULL AND seq > prev + 1 ORDER BY thing, first"
        )
        out = [Gap(r["thing"], r["first"], r["last"]) for r in rows]
        for r in self.query(
            "SELECT thing, MIN(seq) AS lo FROM messages GROUP BY thing HAVING lo > 1"
        ):
            out.append(Gap(r["thing"], 1, r["lo"] - 1, leading=True))
        return sorted(out, key=lambda g: (g.thing, g.first))

    def close(self) -> None:
        with self._lock:
            self._db.close()
