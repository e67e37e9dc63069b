"""Latency statistics: nearest-rank percentiles, as MLPerf LoadGen reports them.

Nearest rank (the smallest latency at or above which p% of the samples lie) is always a value
that was actually measured, so a p99 never reports a latency that no query saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# (key in the record, percentile)
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)

HISTOGRAM_BINS = 40


def percentile(sorted_values: np.ndarray | Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in (0, 100])."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no latencies to summarise")
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = max(1, math.ceil(p / 100.0 * n - 1e-9))
    return float(sorted_values[rank - 1])


def latency_stats(latencies_s: np.ndarray | Sequence[float]) -> dict[str, float | int]:
    """min/mean/std/percentiles/max in milliseconds, plus the count they came from."""
    values = np.sort(np.asarray(latencies_s, dtype=np.float64)) * 1e3
    if values.size == 0:
        raise ValueError("no latencies to summarise")
    out: dict[str, float | int] = {
        "count": int(values.size),
        "min": float(values[0]),
        "mean": float(values.mean()),
        "std": float(values.std()),
    }
    for key, p in PERCENTILES:
        out[key] = percentile(values, p)
    out["max"] = float(values[-1])
    return out


def histogram(
    latencies_s: np.ndarray | Sequence[float], bins: int = HISTOGRAM_BINS
) -> dict[str, Any]:
    """Log-spaced histogram in ms: small enough for a record, enough to draw the distribution."""
    values = np.asarray(latencies_s, dtype=np.float64) * 1e3
    values = values[values > 0]
    if values.size == 0:
        return {"edges_ms": [], "counts": []}
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo * 1.0001 + 1e-9
    edges = np.geomspace(lo, hi, bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    return {"edges_ms": [float(e) for e in edges], "counts": [int(c) for c in counts]}
