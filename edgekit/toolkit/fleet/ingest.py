"""One received MQTT message → a checked telemetry message and the rows it adds to the store.

Pure functions (no I/O), so the collector's writer thread, the simulator's in-process path and
the tests all parse the same way. Split messages (``part.count > 1``) need no reassembly here:
the contract only spreads *dict entries* (drift features, bench results) over parts, and each
entry is additive on its own, so every part is stored and used as it arrives; only part 0
carries the window's request counts and latency histograms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from edge_agent import telemetry
from edgekit.toolkit.fleet import fastjson


@dataclass
class Received:
    """One message as it came off the wire; ``ack`` is called once it is durably stored."""

    topic: str
    payload: bytes
    received_at: float = field(default_factory=time.time)
    ack: Callable[[], None] | None = None


@dataclass
class Parsed:
    received: Received
    message: dict[str, Any]

    @property
    def thing(self) -> str:
        return self.message["thing"]

    @property
    def seq(self) -> int:
        return self.message["seq"]

    @property
    def type(self) -> str:
        return self.message["type"]

    @property
    def first_part(self) -> bool:
        return self.message["part"]["index"] == 0


@dataclass
class Rejected:
    received: Received
    error: str


def parse(item: Received) -> Parsed | Rejected:
    """Check topic and envelope; the thing in the topic must be the thing in the message."""
    where = telemetry.parse_topic(item.topic)
    if where is None or where[0] != "dt":
        return Rejected(item, f"topic {item.topic!r} is not dt/edgekit/<thing>/<type>")
    try:
        message = fastjson.loads(item.payload)
    except fastjson.DecodeError as exc:
        return Rejected(item, f"telemetry payload is not JSON: {exc}")
    problems = telemetry.check(message)
    if problems:
        return Rejected(item, "telemetry message is malformed: " + "; ".join(problems))
    if message["thing"] != where[1] or message["type"] != where[2]:
        return Rejected(
            item,
            f"message says {message['thing']}/{message['type']} but came on {item.topic}",
        )
    return Parsed(item, message)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class MessageRow(NamedTuple):
    """One row of ``messages``: the envelope of every stored message (the dedup key is
    (thing, seq)); the field names are the column names, so SQL names its columns from them."""

    thing: str
    seq: int
    type: str
    received_at: float
    created_at: float
    window_start: float
    window_end: float
    part_index: int
    part_count: int
    component_version: str
    model_name: str | None
    variant: str | None
    model_sha256: str | None
    payload: str | None


class MetricsRow(NamedTuple):
    """One row of ``metrics``: a device's window (counts, throughput, latency)."""

    thing: str
    seq: int
    window_start: float
    window_end: float
    model_name: str | None
    variant: str | None
    component_version: str
    requests: int
    ok: int
    errors: int
    rows: int
    requests_per_s: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    latency: str | None  # wire-form histogram (JSON), merged on read
    compute: str | None
    cpu_percent: float | None
    rss_bytes: float | None
    outbox_pending: int
    outbox_dropped: int


class DriftRow(NamedTuple):
    """One row of ``drift``: a message's drift block as sent (expanded on read)."""

    thing: str
    seq: int
    window_end: float
    model_name: str | None
    block: str


class BenchRow(NamedTuple):
    """One row of ``bench``: one variant's result of a device bench reply."""

    thing: str
    seq: int
    t: float
    model_name: str | None
    variant: str
    record: str


def message_row(p: Parsed, keep_payload: bool = True) -> MessageRow:
    m = p.message
    return MessageRow(
        thing=m["thing"],
        seq=m["seq"],
        type=m["type"],
        received_at=p.received.received_at,
        created_at=m["created_at"],
        window_start=m["window"]["start"],
        window_end=m["window"]["end"],
        part_index=m["part"]["index"],
        part_count=m["part"]["count"],
        component_version=m["component_version"],
        model_name=m["model"].get("name"),
        variant=m["model"].get("variant"),
        model_sha256=m["model"].get("sha256"),
        payload=p.received.payload.decode("utf-8") if keep_payload else None,
    )


def metrics_row(p: Parsed) -> MetricsRow | None:
    """The per-window row (part 0 only): counts, throughput, latency percentiles and histograms."""
    if not p.first_part:
        return None
    m, body = p.message, p.message["body"]
    req = body.get("requests") or {}
    lat = body.get("latency_ms") or {}
    comp = body.get("compute_ms") or {}
    proc = body.get("process") or {}
    outbox = body.get("outbox") or {}
    errors = sum(int(v) for v in (req.get("errors") or {}).values())
    return MetricsRow(
        thing=m["thing"],
        seq=m["seq"],
        window_start=m["window"]["start"],
        window_end=m["window"]["end"],
        model_name=m["model"].get("name"),
        variant=m["model"].get("variant"),
        component_version=m["component_version"],
        requests=int(req.get("count") or 0),
        ok=int(req.get("ok") or 0),
        errors=errors,
        rows=int(req.get("rows") or 0),
        requests_per_s=_num((body.get("throughput") or {}).get("requests_per_s")),
        p50=_num(lat.get("p50")),
        p90=_num(lat.get("p90")),
        p99=_num(lat.get("p99")),
        latency=fastjson.dumps(_wire(lat)) if lat else None,
        compute=fastjson.dumps(_wire(comp)) if comp else None,
        cpu_percent=_num(proc.get("cpu_percent")),
        rss_bytes=_num(proc.get("rss_bytes")),
        outbox_pending=int(outbox.get("pending") or 0),
        outbox_dropped=int(outbox.get("dropped_total") or 0),
    )


def _wire(h: Any) -> dict[str, Any]:
    """The histogram as stored, checked first: the report merges every stored one, so a
    count of "x" or a bucket index past the end broke `fleet report` for the whole fleet.
    A ValueError here makes the collector reject the message (it is stored nowhere else)."""
    keys = ("scheme", "count", "sum", "min", "max", "buckets")
    if not isinstance(h, dict) or h.get("scheme") != telemetry.HISTOGRAM_SCHEME:
        raise ValueError(f"a histogram is not in the {telemetry.HISTOGRAM_SCHEME} wire form")
    wire = {k: h.get(k) for k in keys}
    if not _is_count(wire["count"]):
        raise ValueError(f"histogram count {wire['count']!r} is not a count")
    for k in ("sum", "min", "max"):
        v = wire[k]
        if v is not None and (_num(v) is None or not math.isfinite(v)):
            raise ValueError(f"histogram {k} {v!r} is not a finite number")
    buckets = wire["buckets"]
    if not isinstance(buckets, list) or not all(
        isinstance(b, list)
        and len(b) == 2
        and _is_count(b[0])
        and b[0] < telemetry.N_BUCKETS
        and _is_count(b[1])
        for b in buckets
    ):
        raise ValueError("histogram buckets are not [[index, count], ...] within the scheme")
    return wire


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= telemetry.MAX_SEQ


def drift_row(p: Parsed) -> DriftRow | None:
    """The drift block of a metrics message (or of one part of it), stored as sent: one row per
    message keeps ingestion fast; ``expand_drift`` turns it into per-feature rows on read."""
    m = p.message
    block = m["body"].get("drift") if m["type"] == "metrics" else None
    if not isinstance(block, dict) or not any(block.get(g) for g in DRIFT_GROUPS):
        return None
    return DriftRow(
        thing=m["thing"],
        seq=m["seq"],
        window_end=m["window"]["end"],
        model_name=m["model"].get("name"),
        block=fastjson.dumps({g: block[g] for g in DRIFT_GROUPS if isinstance(block.get(g), dict)}),
    )


DRIFT_GROUPS = ("features", "predictions")


def expand_drift(row: Any) -> list[dict[str, Any]]:
    """A stored drift row → one dict per feature: thing, seq, window_end, model_name, grp, name,
    kind, n, counts, psi, status."""
    block = fastjson.loads(row["block"])
    out = []
    for group in DRIFT_GROUPS:
        for name, e in (block.get(group) or {}).items():
            if not _drift_entry_ok(e):
                continue  # stored as a device sent it: one of the wrong shape is left out
            out.append(
                {
                    "thing": row["thing"],
                    "seq": row["seq"],
                    "window_end": row["window_end"],
                    "model_name": row["model_name"],
                    "grp": group,
                    "name": name,
                    "kind": e.get("kind"),
                    "n": int(e.get("n") or 0),
                    "counts": e["counts"],
                    "psi": _num(e.get("psi")),
                    "status": e.get("status"),
                }
            )
    return out


def _drift_entry_ok(e: Any) -> bool:
    """A feature's drift entry the report can use: a count `n`, counts that are numbers, a
    number or null psi, and text or null kind and status (an `n` of "x" broke `fleet report`)."""
    if not isinstance(e, dict) or not isinstance(counts := e.get("counts"), list):
        return False
    n, psi = e.get("n"), e.get("psi")
    return (
        (n is None or _is_count(n))
        and all(_num(c) is not None and math.isfinite(c) and c >= 0 for c in counts)
        and (psi is None or _num(psi) is not None)
        and all(isinstance(e.get(k), (str, type(None))) for k in ("kind", "status"))
    )


def alert_rows(p: Parsed) -> list[dict[str, Any]]:
    """Device alerts as the store's alert records (source ``device``)."""
    m = p.message
    if m["type"] != "alerts":
        return []
    out = []
    for a in m["body"].get("alerts") or []:
        if not isinstance(a, dict):
            continue
        out.append(
            {
                "t": m["window"]["end"],
                "source": "device",
                "thing": m["thing"],
                "seq": m["seq"],
                "rule": str(a.get("rule")),
                "state": a.get("state", "firing"),
                "severity": a.get("severity", "warning"),
                "message": str(a.get("message", "")),
                "subject": a.get("subject"),
                "value": _num(a.get("value")),
                "threshold": _num(a.get("threshold")),
                "detail": {
                    "id": a.get("id"),
                    "held": a.get("held"),
                    "variant": m["model"].get("variant"),
                },
            }
        )
    return out


def bench_rows(p: Parsed) -> list[BenchRow]:
    """One row per variant result of a bench reply (errors and skips kept, they are results)."""
    m = p.message
    if m["type"] != "bench":
        return []
    results = m["body"].get("results") or {}
    return [
        BenchRow(
            thing=m["thing"],
            seq=m["seq"],
            t=m["window"]["end"],
            model_name=m["model"].get("name"),
            variant=variant,
            record=fastjson.dumps(rec),
        )
        for variant, rec in results.items()
        if isinstance(rec, dict)
    ]
