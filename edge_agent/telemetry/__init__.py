"""Telemetry contract (DESIGN.md contract 3): the messages a device sends and the commands it takes.

Every device publishes JSON on ``dt/edgekit/{thing}/<type>`` with ``type`` one of
``hello`` (birth), ``metrics`` (one monitoring window), ``alerts`` and ``bench``; it listens on
``cmd/edgekit/{thing}/<command>``. The fleet collector reads the same module, so both sides
agree on topics, fields and the maths that merges windows.

Envelope (every message, every type)::

    {
      "schema_version": 1,
      "type": "metrics",                   # hello | metrics | alerts | bench
      "thing": "pi-042",                   # IoT thing name, also in the topic
      "component_version": "1.0.0",        # the Greengrass component (or agent) version
      "model": {"name": "cnn", "variant": "int8", "sha256": "<64 hex>"},   # sha256 = digest
      "seq": 17,                           # per-device sequence, +1 per message, all types
      "window": {"start": 1700000000.0, "end": 1700000060.0},              # epoch seconds
      "created_at": 1700000060.2,          # when the agent made the message (epoch s)
      "part": {"index": 0, "count": 1},    # >1 parts when a message was split (see split())
      "body": {...}                        # per type, see below and the JSON Schema
    }

Guarantees the collector may rely on:

* ``seq`` starts at 1 on a fresh device and grows by exactly one per message, across restarts
  (it lives in the durable outbox). A message may arrive more than once (QoS 1 and outbox
  replay); duplicates are byte-identical and carry the same ``seq``, so drop by (thing, seq).
  A gap means messages were lost on the device: dropped by the bounded outbox, or not stored
  at all (disk full); the next ``metrics`` says how many in ``body.outbox.dropped_total``
  (``store_failed_total`` for the disk). A damaged outbox file is set aside and a new one
  started; the seq continues and ``body.outbox.events`` of the next ``hello``/``metrics`` says
  so (``kind`` damaged|unavailable, ``reason``, ``moved_to``, ``resumed_seq``).
* An encoded message is at most ``MAX_MESSAGE_BYTES`` (128 KB, the AWS IoT Core limit). Bigger
  ``metrics`` are split by feature into parts sharing type and window; each part has its own
  ``seq`` and ``part.index``/``part.count``; ``join()`` puts them back together.
* Latency goes as a sparse histogram on ``LATENCY_BOUNDS_MS``, the same fixed log-spaced bucket
  boundaries on every device, so ``merge_histograms()`` + ``percentile()`` give fleet percentiles
  exact to one bucket's width (about 12% relative, ``LATENCY_RELATIVE_ERROR`` either side).
* Drift goes as counts on the baseline's fixed bins (``edge_agent.monitoring.baseline.numeric_counts`` /
  ``categorical_counts``), so counts add up across windows and devices; ``edge_agent.monitoring.drift``
  has the PSI and the sample-size-aware test to recompute a verdict on merged counts.
* Model quality goes as sufficient statistics (confusion counts, error sums) so fleet accuracy,
  F1, MAE and RMSE are exact after summing; ``quality_scores()`` computes them.

Bodies (fields marked ? may be absent or null):

* ``hello``: ``hardware`` (``edge_agent.hardware.probe()``), ``bundle`` {name, task, variants
  {name: {sha256, bytes, precision}}, selected, target?, session_options}, ``agent`` {pid,
  started_at, transport, window_s, python, onnxruntime, endpoints}, ``ready_s`` (start→ready),
  ``outbox``? (as in ``metrics``).
* ``metrics``: ``requests`` {count, ok, rows, errors {kind: n}}, ``latency_ms``/``queue_ms``/
  ``compute_ms`` (histograms + p50/p90/p99), ``throughput`` {requests_per_s, rows_per_s},
  ``process`` {cpu_percent, rss_bytes, cpu_seconds}, ``data_quality`` {rows, counts {kind: n},
  by_feature {feature: {kind: n}}}, ``drift`` {features {name: drift entry}, predictions {name:
  drift entry}} with a drift entry {kind, n, counts [..], psi?, chi2?, p_value?, status},
  ``quality``? {task, labels, ...sufficient statistics, scores}, ``outbox`` {pending,
  dropped_total, store_failed_total?, durable?, events? [..]}, ``swaps`` [..].
* ``alerts``: ``alerts`` [{id, rule, state (firing|resolved), severity, message, subject?,
  value?, threshold?, held {m, n, hits}, hook? {command?|topic?}}].
* ``bench``: ``request_id``?, ``results`` {variant: result}, ``error``?, ``budget_s``.

Commands (JSON payloads on ``cmd/edgekit/{thing}/<name>``): ``bench`` {request_id?, variants?,
budget_s?}, ``feedback`` {labels: [{inference_id, label}]}, ``swap`` {variant?, bundle?},
``config`` {window_s?, thresholds?, ...} (standalone devices; Greengrass uses its configuration).
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 128 * 1024

MESSAGE_TYPES = ("hello", "metrics", "alerts", "bench")
COMMANDS = ("bench", "feedback", "swap", "config")
DATA_PREFIX = "dt/edgekit"
COMMAND_PREFIX = "cmd/edgekit"

# Data quality kinds, after SageMaker Model Monitor's violation types.
QUALITY_KINDS = ("missing", "unknown_category", "out_of_range", "non_finite", "wrong_type")
# Request error kinds the agent counts (never a free-form string, so fleets can sum them).
ERROR_KINDS = ("bad_request", "unauthorized", "not_ready", "too_large", "model_error", "timeout")
DRIFT_STATUSES = ("ok", "drift", "too_few_samples", "no_baseline")

# ---------------------------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------------------------


def data_topic(thing: str, message_type: str) -> str:
    """``dt/edgekit/{thing}/{type}``; refuses unknown types and MQTT wildcards in the thing name."""
    _check_thing(thing)
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown telemetry type {message_type!r}; one of {MESSAGE_TYPES}")
    return f"{DATA_PREFIX}/{thing}/{message_type}"


def command_topic(thing: str, command: str) -> str:
    """``cmd/edgekit/{thing}/{command}``."""
    _check_thing(thing)
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; one of {COMMANDS}")
    return f"{COMMAND_PREFIX}/{thing}/{command}"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``("dt"|"cmd", thing, type_or_command)`` for an edgekit topic, else None."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[1] != "edgekit" or parts[0] not in ("dt", "cmd"):
        return None
    known = MESSAGE_TYPES if parts[0] == "dt" else COMMANDS
    if parts[3] not in known or not parts[2]:
        return None
    return parts[0], parts[2], parts[3]


def _check_thing(thing: str) -> None:
    if not thing or any(c in thing for c in "/+#\0"):
        raise ValueError(f"thing name {thing!r} must be non-empty without '/', '+', '#'")


# ---------------------------------------------------------------------------------------------
# Mergeable latency histogram
# ---------------------------------------------------------------------------------------------

# Bucket i holds values v with LATENCY_BOUNDS_MS[i-1] < v <= LATENCY_BOUNDS_MS[i]; bucket 0 is
# everything <= 1 µs, the last bucket everything above 100 s. 20 buckets per decade.
HISTOGRAM_SCHEME = "log10/20:1e-3..1e5ms"
_PER_DECADE = 20
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(10 ** (i / _PER_DECADE) for i in range(-60, 101))
N_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
LATENCY_RELATIVE_ERROR = 10 ** (1 / _PER_DECADE) - 1  # one bucket's relative width (~12.2%)


class Histogram:
    """Counts on the fixed bounds plus exact count/sum/min/max; cheap to record, exact to merge."""

    __slots__ = ("counts", "count", "sum", "min", "max")

    def __init__(self) -> None:
        self.counts = [0] * N_BUCKETS
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value_ms: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BOUNDS_MS, value_ms)] += 1
        self.count += 1
        self.sum += value_ms
        if value_ms < self.min:
            self.min = value_ms
        if value_ms > self.max:
            self.max = value_ms

    def to_dict(self) -> dict[str, Any]:
        """Sparse wire form: ``buckets`` is a list of ``[index, count]`` for non-empty buckets."""
        return {
            "scheme": HISTOGRAM_SCHEME,
            "count": self.count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "buckets": [[i, c] for i, c in enumerate(self.counts) if c],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        if data.get("scheme") != HISTOGRAM_SCHEME:
            raise ValueError(f"histogram scheme {data.get('scheme')!r} is not {HISTOGRAM_SCHEME}")
        h = cls()
        for index, count in data.get("buckets", []):
            h.counts[int(index)] += int(count)
        h.count = int(data.get("count", 0))
        h.sum = float(data.get("sum", 0.0))
        h.min = math.inf if data.get("min") is None else float(data["min"])
        h.max = -math.inf if data.get("max") is None else float(data["max"])
        return h

    def merge(self, other: Histogram) -> Histogram:
        out = Histogram()
        out.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        out.count = self.count + other.count
        out.sum = self.sum + other.sum
        out.min = min(self.min, other.min)
        out.max = max(self.max, other.max)
        return out

    def percentile(self, q: float) -> float | None:
        return percentile(self.to_dict(), q)


def merge_histograms(histograms: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum wire-form histograms from any windows and devices into one (wire form)."""
    total = Histogram()
    for h in histograms:
        total = total.merge(Histogram.from_dict(h))
    return total.to_dict()


def percentile(histogram: Mapping[str, Any], q: float) -> float | None:
    """The q-th percentile (0..100) of a wire-form histogram, None when it is empty.

    Returns the geometric middle of the bucket holding the rank, clamped to the exact min/max,
    so the answer is within ``LATENCY_RELATIVE_ERROR`` of some value in that bucket.
    """
    if not 0 <= q <= 100:
        raise ValueError("percentile q must be within 0..100")
    count = int(histogram.get("count", 0))
    if count == 0:
        return None
    lo_clamp, hi_clamp = histogram.get("min"), histogram.get("max")
    rank = max(1, math.ceil(q / 100 * count))
    seen = 0
    for index, n in sorted((int(i), int(c)) for i, c in histogram["buckets"]):
        seen += n
        if seen >= rank:
            value = _bucket_middle(index)
            if lo_clamp is not None:
                value = max(value, float(lo_clamp))
            if hi_clamp is not None:
                value = min(value, float(hi_clamp))
            return value
    return None if hi_clamp is None else float(hi_clamp)


def _bucket_middle(index: int) -> float:
    if index == 0:
        return LATENCY_BOUNDS_MS[0]
    if index >= len(LATENCY_BOUNDS_MS):
        return LATENCY_BOUNDS_MS[-1]
    return math.sqrt(LATENCY_BOUNDS_MS[index - 1] * LATENCY_BOUNDS_MS[index])


def summarize_histogram(h: Histogram) -> dict[str, Any]:
    """Wire histogram plus the percentiles every dashboard wants (p50/p90/p99, mean)."""
    data = h.to_dict()
    data.update(
        p50=percentile(data, 50),
        p90=percentile(data, 90),
        p99=percentile(data, 99),
        mean=(h.sum / h.count) if h.count else None,
    )
    return data


# ---------------------------------------------------------------------------------------------
# Model quality: sufficient statistics that add up, and the scores from them
# ---------------------------------------------------------------------------------------------


def merge_quality(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Sum two quality blocks (same task). Classification: ``confusion`` {"true|pred": n};
    regression: ``abs_error_sum``, ``sq_error_sum``. ``labels`` counts joined labels."""
    if not a:
        return dict(b) if b else None
    if not b:
        return dict(a)
    if a.get("task") != b.get("task"):
        raise ValueError("cannot merge quality of different tasks")
    out: dict[str, Any] = {"task": a["task"], "labels": a["labels"] + b["labels"]}
    if a["task"] == "classification":
        confusion = dict(a.get("confusion", {}))
        for key, n in b.get("confusion", {}).items():
            confusion[key] = confusion.get(key, 0) + n
        out["confusion"] = confusion
    else:
        out["abs_error_sum"] = a["abs_error_sum"] + b["abs_error_sum"]
        out["sq_error_sum"] = a["sq_error_sum"] + b["sq_error_sum"]
    out["scores"] = quality_scores(out)
    return out


def quality_scores(block: Mapping[str, Any]) -> dict[str, float | None]:
    """Accuracy and macro-F1 (classification) or MAE and RMSE (regression) from the sums."""
    n = int(block.get("labels", 0))
    if block.get("task") == "classification":
        confusion: dict[str, int] = block.get("confusion", {})
        if not n:
            return {"accuracy": None, "f1_macro": None}
        pairs = [(k.split("|", 1), v) for k, v in confusion.items()]
        classes = sorted({p[0][0] for p in pairs} | {p[0][1] for p in pairs})
        correct = sum(v for (t, p), v in pairs if t == p)
        f1s = []
        for c in classes:
            tp = sum(v for (t, p), v in pairs if t == c and p == c)
            fp = sum(v for (t, p), v in pairs if t != c and p == c)
            fn = sum(v for (t, p), v in pairs if t == c and p != c)
            f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
        return {"accuracy": correct / n, "f1_macro": sum(f1s) / len(f1s) if f1s else None}
    if not n:
        return {"mae": None, "rmse": None}
    return {
        "mae": float(block["abs_error_sum"]) / n,
        "rmse": math.sqrt(float(block["sq_error_sum"]) / n),
    }


# ---------------------------------------------------------------------------------------------
# Envelope, encoding, splitting
# ---------------------------------------------------------------------------------------------


def make_message(
    message_type: str,
    *,
    thing: str,
    component_version: str,
    model: Mapping[str, Any],
    window: tuple[float, float],
    body: Mapping[str, Any],
    seq: int = 0,
    created_at: float | None = None,
) -> dict[str, Any]:
    """Build one message. ``seq`` is normally 0 here and assigned by the outbox on enqueue."""
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown telemetry type {message_type!r}")
    _check_thing(thing)
    return {
        "schema_version": SCHEMA_VERSION,
        "type": message_type,
        "thing": thing,
        "component_version": component_version,
        "model": {
            "name": model.get("name"),
            "variant": model.get("variant"),
            "sha256": model.get("sha256"),
        },
        "seq": int(seq),
        "window": {"start": float(window[0]), "end": float(window[1])},
        "created_at": float(created_at if created_at is not None else time.time()),
        "part": {"index": 0, "count": 1},
        "body": dict(body),
    }


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/inf are refused (not JSON), so callers must send null instead."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(payload: bytes | str) -> dict[str, Any]:
    """Parse and structurally check one message; raises ValueError naming what is wrong."""
    try:
        message: dict[str, Any] = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"telemetry payload is not JSON: {exc}") from exc
    problems = check(message)
    if problems:
        raise ValueError("telemetry message is malformed: " + "; ".join(problems))
    return message


_ENVELOPE: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "type": str,
    "thing": str,
    "component_version": str,
    "model": dict,
    "seq": int,
    "window": dict,
    "created_at": (int, float),
    "part": dict,
    "body": dict,
}


MAX_SEQ = 2**63 - 1  # what SQL stores as a BIGINT
MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the reports print every time as a date


def _is_time(value: float) -> bool:
    """A finite Unix time that a date can show (a window at 1e308 broke `fleet report`)."""
    return 0.0 <= value <= MAX_TIME  # NaN compares false


def check(message: Any) -> list[str]:
    """Structural checks without jsonschema (the device has none); [] when fine.

    Workstation code can add ``edge_agent.schemas.validation_errors(msg, "telemetry")``.
    """
    if not isinstance(message, dict):
        return ["message must be a JSON object"]
    problems = []
    for key, kind in _ENVELOPE.items():
        if key not in message:
            problems.append(f"missing field {key!r}")
        elif not isinstance(message[key], kind) or isinstance(message[key], bool):
            problems.append(f"field {key!r} has the wrong type")
    if problems:
        return problems
    if message["schema_version"] != SCHEMA_VERSION:
        problems.append(f"schema_version {message['schema_version']} is not {SCHEMA_VERSION}")
    if message["type"] not in MESSAGE_TYPES:
        problems.append(f"unknown type {message['type']!r}")
    if message["seq"] < 1:
        problems.append("seq must be >= 1 once the outbox has assigned it")
    elif message["seq"] > MAX_SEQ:
        problems.append(f"seq must be at most {MAX_SEQ} (a 64-bit integer)")
    window = message["window"]
    if not all(isinstance(window.get(k), (int, float)) for k in ("start", "end")):
        problems.append("window needs numeric start and end")
    elif not all(_is_time(window[k]) for k in ("start", "end")):
        problems.append("window start and end must be Unix times within years 1970..9999")
    elif window["end"] < window["start"]:
        problems.append("window ends before it starts")
    if not _is_time(message["created_at"]):
        problems.append("created_at must be a Unix time within years 1970..9999")
    part = message["part"]
    if not (0 <= part.get("index", -1) < part.get("count", 0)):
        problems.append("part index must be within 0..count-1")
    return problems


# Per type, the dict-valued body paths whose entries may be spread over parts.
SPLITTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "metrics": (
        ("drift", "features"),
        ("data_quality", "by_feature"),
        ("drift", "predictions"),
    ),
    "bench": (("results",),),
    "hello": (),
    "alerts": (),
}


def split(message: Mapping[str, Any], max_bytes: int = MAX_MESSAGE_BYTES) -> list[dict[str, Any]]:
    """Split one message into parts that each encode to at most ``max_bytes``.

    Entries of the splittable maps (``SPLITTABLE``) are spread over parts; every other body
    field stays in part 0. Parts share type, window and model; the outbox gives each its own seq.
    Raises ValueError when even a single entry is too big (a contract bug, not data).
    """
    if len(encode(message)) <= max_bytes:
        return [dict(message)]
    paths = SPLITTABLE.get(message["type"], ())
    base = json.loads(encode(message))
    movable: list[tuple[tuple[str, ...], str, Any]] = []
    for path in paths:
        holder = _get(base["body"], path)
        if isinstance(holder, dict):
            movable.extend((path, key, value) for key, value in holder.items())
            holder.clear()
    parts = [base]
    for path, key, value in movable:
        placed = False
        for part in parts:
            _ensure(part["body"], path)[key] = value
            if len(encode(part)) <= max_bytes - 64:  # room for the final part counters
                placed = True
                break
            del _get(part["body"], path)[key]
        if not placed:
            fresh = {**base, "body": {}, "part": {"index": 0, "count": 1}}
            _ensure(fresh["body"], path)[key] = value
            if len(encode(fresh)) > max_bytes - 64:
                raise ValueError(f"entry {'.'.join(path)}.{key} alone exceeds {max_bytes} bytes")
            parts.append(fresh)
    if len(encode(parts[0])) > max_bytes:
        raise ValueError(f"{message['type']} message exceeds {max_bytes} bytes and cannot split")
    for i, part in enumerate(parts):
        part["part"] = {"index": i, "count": len(parts)}
    return parts


def join(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Reassemble the parts of one split message (any order); the result has part 0's seq."""
    if not parts:
        raise ValueError("no parts to join")
    ordered = sorted(parts, key=lambda p: p["part"]["index"])
    count = ordered[0]["part"]["count"]
    if [p["part"]["index"] for p in ordered] != list(range(count)):
        raise ValueError(f"parts are incomplete: have {[p['part']['index'] for p in ordered]}")
    out: dict[str, Any] = json.loads(encode(ordered[0]))
    for part in ordered[1:]:
        for path in SPLITTABLE.get(out["type"], ()):
            holder = _get(part["body"], path)
            if isinstance(holder, dict):
                _ensure(out["body"], path).update(holder)
    out["part"] = {"index": 0, "count": 1}
    return out


def _get(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ensure(body: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = body
    for key in path:
        node = node.setdefault(key, {})
    return node
