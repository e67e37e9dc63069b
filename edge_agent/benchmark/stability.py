"""Stability as perf_analyzer judges it: measure in windows until the last N windows agree.

Windows agree when, for throughput and for the stabilising latency percentile alike,
max / min of the last N windows is within 1 + tolerance. A measurement that never gets there
within the window limit is reported as unstable, with its windows, rather than hidden.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StabilityConfig:
    tolerance: float = 0.10  # 10 %: perf_analyzer's default stability percentage
    windows: int = 3  # how many trailing windows must agree
    max_windows: int = 10  # give up (unstable) after this many
    latency_key: str = "p50_ms"  # which window latency to stabilise on

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"stability tolerance must be a number >= 0, got {self.tolerance}")
        if self.windows < 1 or self.max_windows < self.windows:
            raise ValueError("need 1 <= windows <= max_windows")


def _spread(values: Sequence[float]) -> float:
    lo, hi = min(values), max(values)
    if lo <= 0:
        return float("inf") if hi > 0 else 0.0
    return hi / lo - 1.0


def is_stable(
    windows: Sequence[dict[str, Any]], config: StabilityConfig = StabilityConfig()
) -> bool:
    """True when the last `config.windows` windows agree within the tolerance."""
    if len(windows) < config.windows:
        return False
    tail = windows[-config.windows :]
    for key in ("throughput", config.latency_key):
        if _spread([float(w[key]) for w in tail]) > config.tolerance:
            return False
    return True
