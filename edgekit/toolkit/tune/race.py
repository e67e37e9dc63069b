"""The final race: the few best candidates of a search measured again, head to head.

One trial per candidate is one moment of the machine. On a small or shared machine the speed
of multi-threaded runs drifts from second to second (where the hypervisor places the vCPUs,
what else runs), so a single trial per candidate compares moments as much as candidates: two
searches of the same space can rank 1 and 2 threads in opposite orders. The race measures its
entrants in rounds, one short trial each per round, the order rotated and reversed from round
to round so that no candidate is always first or always after the same neighbour, and scores
each candidate by the median over rounds: drift and order effects hit every entrant alike and
a minority of disturbed rounds does not move a median (racing, as in irace / F-Race).

The same function measures the exhaustive reference of benchmarks/tune_quality.py, so tune's
choice and the reference it is judged against come from one measurement procedure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgekit.toolkit.tune.space import Candidate

RACE_SIZE = 4  # the best this many candidates of the search ...
RACE_WITHIN = 0.5  # ... that are within 50 % of the best one (a disturbed trial of
# two threads reads 1.3-1.8x slow here: it must still get a second chance)
RACE_ROUNDS = 5
RACE_EFFORT = 1 / 3  # of a full trial, per round: 5 rounds = 1.7 full trials each

MeasureFn = Callable[[Candidate, float], dict[str, Any]]
_LATENCY_KEYS = ("mean", "p50", "p90", "p99", "min", "max")


@dataclass(frozen=True)
class RaceConfig:
    size: int = RACE_SIZE
    within: float = RACE_WITHIN
    rounds: int = RACE_ROUNDS
    effort: float = RACE_EFFORT

    def __post_init__(self) -> None:
        if self.size < 1 or self.rounds < 1 or self.effort <= 0 or self.within < 0:
            raise ValueError("a race needs size >= 1, rounds >= 1, effort > 0, within >= 0")

    @property
    def total_effort(self) -> float:
        return self.rounds * self.effort


def round_order(entrants: Sequence[Candidate], round_no: int) -> list[Candidate]:
    """Round r starts with entrant r (mod n) and goes forward through the list on even rounds,
    backward on odd ones: each entrant comes first once in n rounds, and after each neighbour
    as often as before it."""
    n = len(entrants)
    k = round_no % n if n else 0
    step = -1 if round_no % 2 else 1
    return [entrants[(k + step * i) % n] for i in range(n)]


def combine(runs: Sequence[dict[str, Any]], effort: float) -> dict[str, Any]:
    """One candidate's metrics from its rounds: the median of each figure over rounds (the
    peak memory: the largest), the counts added up, stable only if every round was."""
    first = runs[0]
    lat = {
        k: statistics.median(float(r["latency_ms"][k]) for r in runs)
        for k in _LATENCY_KEYS
        if all(k in r.get("latency_ms", {}) for r in runs)
    }
    out = {**first, "latency_ms": lat}
    for key in ("throughput_qps", "samples_per_s"):
        if all(key in r for r in runs):
            out[key] = statistics.median(float(r[key]) for r in runs)
    if all("count" in r for r in runs):
        out["count"] = sum(int(r["count"]) for r in runs)
    if any("stable" in r for r in runs):
        out["stable"] = all(bool(r.get("stable")) for r in runs)
    mems = [r["memory_bytes"] for r in runs if r.get("memory_bytes")]
    if "memory_bytes" in first:
        out["memory_bytes"] = max(mems) if mems else None
    out["effort"] = effort
    out["race"] = {"rounds": len(runs), "p50_ms": [float(r["latency_ms"]["p50"]) for r in runs]}
    return out


def race(
    entrants: Sequence[Candidate],
    measure: MeasureFn,
    config: RaceConfig = RaceConfig(),
    *,
    on_trial: Callable[[Candidate, dict[str, Any]], None] | None = None,
    stop: Callable[[], str | None] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Measure the entrants in interleaved rounds; returns ({key: combined metrics}, rounds
    completed). Only complete rounds count, so every entrant has the same number of rounds;
    `stop` (checked before each trial) ends the race early with the reason it returns."""
    runs: dict[str, list[dict[str, Any]]] = {c.key: [] for c in entrants}
    done = 0
    for r in range(config.rounds):
        partial = False
        for cand in round_order(entrants, r):
            if stop is not None and stop():
                partial = True
                break
            metrics = measure(cand, config.effort)
            runs[cand.key].append(metrics)
            if on_trial:
                on_trial(cand, metrics)
        if partial:
            break
        done += 1
    if done == 0:
        return {}, 0
    effort = done * config.effort
    return {c.key: combine(runs[c.key][:done], effort) for c in entrants}, done
