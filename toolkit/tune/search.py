"""How much of the space to measure: all of it when it is small, successive halving otherwise.

Successive halving (Jamieson & Talwalkar) measures every candidate briefly, keeps the best
1/eta, measures those eta times longer, and so on until one round at full effort. A trial
budget (`max_trials`) shrinks the first round to the candidates the prior ranks highest; a
time budget stops before a trial that would overrun it, and the result says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolkit.tune.space import Candidate

EXHAUSTIVE_LIMIT = 24
ETA = 3
MIN_EFFORT = 1 / 9


@dataclass(frozen=True)
class Budget:
    max_trials: int | None = None
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError("--max-trials must be >= 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("--time-budget must be > 0 seconds")


@dataclass
class Trial:
    """One measurement of one candidate at one effort (1.0 = the full measurement)."""

    candidate: Candidate
    effort: float
    metrics: dict[str, Any]  # latency_ms {p50, p90, p99, mean}, throughput, peak_rss_bytes...
    wall_s: float


@dataclass
class SearchResult:
    strategy: str
    trials: dict[str, Trial]  # candidate key -> its highest-effort trial
    history: list[Trial] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # why the search ended early, if it did
    elapsed_s: float = 0.0
    space_size: int = 0

    @property
    def n_trials(self) -> int:
        return len(self.history)

    def finalists(self) -> list[Trial]:
        """Trials from the last round any candidate reached: the comparable ones."""
        if not self.trials:
            return []
        top = max(t.effort for t in self.trials.values())
        return [t for t in self.trials.values() if math.isclose(t.effort, top)]


MeasureFn = Callable[[Candidate, float], dict[str, Any]]
ScoreFn = Callable[[Trial], Any]  # lower is better; tuples compare lexicographically


def halving_schedule(n: int, eta: int = ETA) -> list[tuple[int, float]]:
    """[(candidates, effort)] per round: n at the lowest effort, then the best 1/eta of them
    at eta times the effort, ..., the last round at effort 1 (at most log_eta(1/MIN_EFFORT)+1
    rounds, so no trial is shorter than MIN_EFFORT of a full one)."""
    max_rounds = 1 + round(math.log(1 / MIN_EFFORT, eta))
    rounds = 1
    while rounds < max_rounds and eta**rounds <= n:
        rounds += 1
    schedule, size = [], n
    for r in range(rounds):
        schedule.append((size, float(eta) ** (r - rounds + 1)))
        size = max(1, math.ceil(size / eta))
    return schedule


def schedule_trials(n: int, eta: int = ETA) -> int:
    return sum(size for size, _ in halving_schedule(n, eta))


def search(
    candidates: Sequence[Candidate],
    measure: MeasureFn,
    score: ScoreFn,
    budget: Budget = Budget(),
    *,
    exhaustive_limit: int = EXHAUSTIVE_LIMIT,
    eta: int = ETA,
    clock: Callable[[], float] = time.monotonic,
    on_trial: Callable[[Trial, int, int], None] | None = None,
) -> SearchResult:
    """Measure candidates (given in prior order, most promising first) and return the trials."""
    start = clock()
    n = len(candidates)
    fits_trials = budget.max_trials is None or budget.max_trials >= n
    exhaustive = n <= exhaustive_limit and fits_trials
    result = SearchResult("exhaustive" if exhaustive else "successive-halving", {}, space_size=n)
    if n == 0:
        return result

    if exhaustive:
        schedule = [(n, 1.0)]
        pool = list(candidates)
    else:
        pool = list(candidates)
        if budget.max_trials is not None:
            while len(pool) > 1 and schedule_trials(len(pool), eta) > budget.max_trials:
                pool.pop()  # drop the lowest-prior candidate
        schedule = halving_schedule(len(pool), eta)
    planned = sum(size for size, _ in schedule)
    per_effort_s: list[float] = []  # seconds per unit effort, from trials so far

    for round_no, (size, effort) in enumerate(schedule):
        pool = pool[:size]
        round_trials: list[Trial] = []
        for cand in pool:
            if budget.max_trials is not None and result.n_trials >= budget.max_trials:
                result.stopped = f"trial budget of {budget.max_trials} reached"
                break
            if budget.time_budget_s is not None:
                expected = effort * (max(per_effort_s) if per_effort_s else 0.0)
                if clock() - start + expected > budget.time_budget_s:
                    result.stopped = f"time budget of {budget.time_budget_s:g} s reached"
                    break
            t0 = clock()
            metrics = measure(cand, effort)
            wall = clock() - t0
            per_effort_s.append(wall / effort)
            trial = Trial(cand, effort, metrics, wall)
            round_trials.append(trial)
            result.history.append(trial)
            result.trials[cand.key] = trial
            if on_trial:
                on_trial(trial, result.n_trials, planned)
        result.rounds.append(
            {"round": round_no, "effort": effort, "planned": size, "measured": len(round_trials)}
        )
        if result.stopped:
            break
        round_trials.sort(key=score)
        pool = [t.candidate for t in round_trials]
    result.elapsed_s = clock() - start
    return result
