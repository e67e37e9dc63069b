"""Per-device rollups kept at ingest (migration 0002), so that readers touch one row per device
instead of one per message: a report on 10 million windows reads 10,000 rollup rows.

* ``thing_stats`` (thing, type): messages, seq range, window span. Additive, so each batch
  upserts its deltas in SQL (both engines), whichever collector wrote them.
* ``latency_rollup`` (thing, variant): windows, requests, errors, summed requests/s and the
  merged latency histogram. Histograms merge in Python: the batch's deltas are merged into the
  rows read back in the same transaction (``FOR UPDATE`` on PostgreSQL, the write lock on
  SQLite), keys in one order so concurrent collectors never deadlock.

Both are written in the transaction that stores the messages, so they count exactly the rows
that are stored (duplicates never reach them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from edge_agent import telemetry
from edgekit.toolkit.fleet import fastjson
from edgekit.toolkit.fleet.ingest import MetricsRow, Parsed


class ThingStatsRow(NamedTuple):
    thing: str
    type: str
    messages: int
    min_seq: int
    max_seq: int
    first_window: float
    last_window: float


class LatencyRollupRow(NamedTuple):
    thing: str
    variant: str  # '' when the device named none
    windows: int
    requests: int
    errors: int
    rps_sum: float
    latency: str | None  # wire-form histogram (JSON)


THING_STATS_CONFLICT = (
    " ON CONFLICT (thing, type) DO UPDATE SET "
    "messages = thing_stats.messages + excluded.messages, "
    "min_seq = {least}(thing_stats.min_seq, excluded.min_seq), "
    "max_seq = {greatest}(thing_stats.max_seq, excluded.max_seq), "
    "first_window = {least}(thing_stats.first_window, excluded.first_window), "
    "last_window = {greatest}(thing_stats.last_window, excluded.last_window)"
)


def thing_stats_rows(new: Iterable[Parsed]) -> list[ThingStatsRow]:
    acc: dict[tuple[str, str], list[Any]] = {}
    for p in new:
        w = p.message["window"]
        a = acc.get((p.thing, p.type))
        if a is None:
            acc[(p.thing, p.type)] = [1, p.seq, p.seq, w["start"], w["end"]]
        else:
            a[0] += 1
            a[1], a[2] = min(a[1], p.seq), max(a[2], p.seq)
            a[3], a[4] = min(a[3], w["start"]), max(a[4], w["end"])
    return [ThingStatsRow(t, k, *acc[(t, k)]) for t, k in sorted(acc)]


def _histogram(wire: Any) -> telemetry.Histogram | None:
    if not wire:
        return None
    try:
        data = fastjson.loads(wire) if isinstance(wire, (str, bytes)) else wire
        return telemetry.Histogram.from_dict(data) if data.get("count") else None
    except (ValueError, TypeError, AttributeError):
        return None  # another scheme or a damaged record: not mergeable, left out


def latency_deltas(rows: Iterable[MetricsRow]) -> dict[tuple[str, str], list[Any]]:
    """(thing, variant) → [windows, requests, errors, rps_sum, Histogram | None] of a batch."""
    out: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        key = (r.thing, r.variant or "")
        a = out.setdefault(key, [0, 0, 0, 0.0, None])
        a[0] += 1
        a[1] += r.requests or 0
        a[2] += r.errors or 0
        a[3] += r.requests_per_s or 0.0
        h = _histogram(r.latency)
        if h is not None:
            a[4] = h if a[4] is None else a[4].merge(h)
    return out


def _merged(old: tuple | None, key: tuple[str, str], delta: list[Any]) -> LatencyRollupRow:
    windows, requests, errors, rps, hist = delta
    if old is not None:
        windows += int(old[0])
        requests += int(old[1])
        errors += int(old[2])
        rps += float(old[3])
        before = _histogram(old[4])
        if before is not None:
            hist = before if hist is None else before.merge(hist)
    wire = fastjson.dumps(hist.to_dict()) if hist is not None else None
    return LatencyRollupRow(key[0], key[1], windows, requests, errors, rps, wire)


class RollupOps:
    """The three statements apply_latency needs, in SQLite's form (``?``, executemany); the
    PostgreSQL store passes its own (arrays through ``unnest``, ``FOR UPDATE``)."""

    COLS = "thing, variant, windows, requests, errors, rps_sum, latency"

    def ensure(self, cur: Any, keys: list[tuple[str, str]]) -> None:
        cur.executemany(
            f"INSERT INTO latency_rollup ({self.COLS}) VALUES (?, ?, 0, 0, 0, 0, NULL) "
            "ON CONFLICT (thing, variant) DO NOTHING",
            keys,
        )

    def read(self, cur: Any, things: list[str]) -> list[tuple]:
        out: list[tuple] = []
        for i in range(0, len(things), 500):
            chunk = things[i : i + 500]
            cur.execute(
                f"SELECT {self.COLS} FROM latency_rollup "
                f"WHERE thing IN ({', '.join(['?'] * len(chunk))})",
                chunk,
            )
            out += cur.fetchall()
        return out

    def write(self, cur: Any, rows: list[LatencyRollupRow]) -> None:
        cur.executemany(
            "UPDATE latency_rollup SET windows = ?, requests = ?, errors = ?, rps_sum = ?, "
            "latency = ? WHERE thing = ? AND variant = ?",
            [(*r[2:], r.thing, r.variant) for r in rows],
        )


def apply_latency(
    cur: Any, deltas: dict[tuple[str, str], list[Any]], ops: RollupOps | None = None
) -> None:
    """Merge a batch's deltas into latency_rollup inside the caller's transaction: a row for
    every key first (so there is one to lock), read them back, write the merged values."""
    if not deltas:
        return
    ops = ops or RollupOps()
    keys = sorted(deltas)
    ops.ensure(cur, keys)
    old = {(r[0], r[1]): tuple(r[2:]) for r in ops.read(cur, sorted({t for t, _ in keys}))}
    ops.write(cur, [_merged(old.get(k), k, deltas[k]) for k in keys])


def rebuild_latency(
    cur: Any, q: Callable[[str], str] = lambda s: s, ops: RollupOps | None = None
) -> int:
    """Recompute latency_rollup from every metrics row (a store migrated from before 0002)."""
    cur.execute("DELETE FROM latency_rollup")
    cur.execute(
        "SELECT thing, seq, window_start, window_end, model_name, variant, component_version, "
        "requests, ok, errors, rows, requests_per_s, p50, p90, p99, latency, compute, "
        "cpu_percent, rss_bytes, outbox_pending, outbox_dropped FROM metrics"
    )
    rows = [MetricsRow(*r) for r in cur.fetchall()]
    apply_latency(cur, latency_deltas(rows), ops)
    cur.execute(q("DELETE FROM meta WHERE key = ?"), ("rebuild_latency_rollup",))
    return len(rows)
