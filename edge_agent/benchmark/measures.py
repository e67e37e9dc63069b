"""What a measurement is: the timing settings, the counted latencies and the session timings.

Plain records apart from the loop that fills them (runner.py) and the record that reports them
(record.py), so that neither of those two imports the other back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.benchmark.stability import StabilityConfig
from edge_agent.benchmark.stats import latency_stats

DEFAULT_DURATION_S = 2.0


@dataclass(frozen=True)
class TimingConfig:
    """How long to measure: warm-up, then `iterations` calls or `duration_s` of windows."""

    warmup_iterations: int = 10
    warmup_s: float = 0.0
    iterations: int | None = None
    duration_s: float | None = None
    stability: StabilityConfig = field(default_factory=StabilityConfig)

    def __post_init__(self) -> None:
        if self.iterations is not None and self.duration_s is not None:
            raise ValueError("give a duration or a number of iterations, not both")
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and self.duration_s > 0
        ):
            raise ValueError(f"duration must be a number of seconds > 0, got {self.duration_s}")
        if self.warmup_iterations < 0 or not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise ValueError("warm-up must be >= 0")

    @property
    def effective_duration_s(self) -> float:
        return self.duration_s if self.duration_s is not None else DEFAULT_DURATION_S

    def describe(self) -> dict[str, Any]:
        return {
            "warmup_iterations": self.warmup_iterations,
            "warmup_s": self.warmup_s,
            "iterations": self.iterations,
            "duration_s": None if self.iterations is not None else self.effective_duration_s,
        }


@dataclass
class Measurement:
    """The counted latencies (seconds) and the windows they were judged stable on."""

    latencies_s: np.ndarray
    windows: list[dict[str, Any]]
    counted_windows: int
    stable: bool
    wall_s: float  # wall time of the counted windows
    cpu_s: float  # process CPU time over the counted windows
    total_calls: int  # warm-up excluded, all windows included

    @property
    def queries_per_s(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_percent(self) -> float | None:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else None

    def stats(self) -> dict[str, float | int]:
        return latency_stats(self.latencies_s)


@dataclass
class SessionTiming:
    create_s: float | None = None
    cold_first_s: float | None = None
