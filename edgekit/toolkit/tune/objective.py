"""What "best" means: the objective, the latency budget, and how a point is scored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edge_agent.errors import BadInputError

OBJECTIVES = ("latency", "throughput", "size")
PERCENTILE_KEYS = ("mean", "p50", "p90", "p99")
TIE = 0.02  # latencies within 2 % are a tie: then accuracy, CPUs and size decide
_UNITS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class LatencyBudget:
    percentile: str  # "p50", "p90", "p99" or "mean"
    limit_ms: float

    def __str__(self) -> str:
        return f"{self.percentile}={self.limit_ms:g}ms"


def parse_latency_budget(text: str | None) -> LatencyBudget | None:
    """'p99=5ms' -> LatencyBudget('p99', 5.0); units us, ms, s (ms when absent)."""
    if text is None or not text.strip():
        return None
    m = re.fullmatch(r"\s*(p50|p90|p99|mean)\s*=\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s)?\s*", text)
    if not m:
        raise BadInputError(
            f"`latency_budget` {text!r} is not PERCENTILE=VALUE",
            hint="write it like p99=5ms (percentiles p50, p90, p99 or mean; units us, ms, s)",
        )
    value = float(m.group(2)) * _UNITS[m.group(3) or "ms"]
    if value <= 0:
        raise BadInputError(f"`latency_budget` {text!r} must be above zero")
    return LatencyBudget(m.group(1), value)


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise BadInputError(
            f"`objective` {objective!r} is not one of {', '.join(OBJECTIVES)}",
            hint="latency: fastest single query; throughput: most samples/s; size: smallest file",
        )
    return objective


def latency_of(metrics: dict[str, Any], budget: LatencyBudget | None) -> float:
    """The latency an objective compares: the budget's percentile, else the median."""
    return float(metrics["latency_ms"][budget.percentile if budget else "p50"])


def meets_budget(metrics: dict[str, Any], budget: LatencyBudget | None) -> bool:
    return budget is None or float(metrics["latency_ms"][budget.percentile]) <= budget.limit_ms


def score(
    objective: str, metrics: dict[str, Any], size_bytes: int, budget: LatencyBudget | None
) -> tuple[Any, ...]:
    """Lower is better; a point over the latency budget loses to every point within it."""
    over = 0 if meets_budget(metrics, budget) else 1
    if objective == "throughput":
        return (over, -float(metrics["samples_per_s"]))
    if objective == "size":
        return (over, size_bytes, latency_of(metrics, budget))
    return (over, latency_of(metrics, budget))
