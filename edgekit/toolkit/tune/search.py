"""How much of the space to measure: all of it when it is small, successive halving otherwise,
then a race of the best few (edgekit.toolkit.tune.race) before anything is chosen.

Successive halving (Jamieson & Talwalkar) measures every candidate briefly, keeps the best
1/eta, measures those eta times longer, and so on until one round at full effort. A trial
budget (`max_trials`) shrinks the first round to the candidates the prior ranks highest; a
time budget stops before a trial that would overrun it, and the result says so. The race
re-measures the leaders head to head in interleaved rounds, so the choice does not rest on one
trial each taken at different moments.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekit.toolkit.tune.race import RaceConfig, race
from edgekit.toolkit.tune.space import Candidate

EXHAUSTIVE_LIMIT = 24
ETA = 3
MIN_EFFORT = 1 / 9


@dataclass(frozen=True)
class Budget:
    max_trials: int | None = None
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ValueError("`max_trials` must be >= 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("`time_budget` must be > 0 seconds")


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
    race: dict[str, Any] | None = None  # entrants, rounds, effort when a race was run
    interrupted: bool = False  # Ctrl-C: the trials so far are kept, the one in progress is not

    @property
    def n_trials(self) -> int:
        return len(self.history)

    def finalists(self) -> list[Trial]:
        """Trials from the last round any candidate reached: the comparable ones."""
        if not self.trials:
            return []
        top = max(t.effort for t in self.trials.values())
        return [t for t in self.trials.values() if math.isclose(t.effort, top)]


INTERRUPTED = "interrupted (Ctrl-C)"
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


def _schedule(
    candidates: Sequence[Candidate], budget: Budget, exhaustive: bool, eta: int
) -> tuple[list[Candidate], list[tuple[int, float]]]:
    """The candidates to measure and the rounds (size, effort): every candidate once at full
    effort, or successive halving over as many of the first candidates as the trial budget
    allows."""
    pool = list(candidates)
    if exhaustive:
        return pool, [(len(pool), 1.0)]
    if budget.max_trials is not None:
        while len(pool) > 1 and schedule_trials(len(pool), eta) > budget.max_trials:
            pool.pop()  # drop the lowest-prior candidate
    return pool, halving_schedule(len(pool), eta)


def _over_budget(
    budget: Budget, n_trials: int, elapsed_s: float, effort: float, per_effort_s: list[float]
) -> str | None:
    """Why the next trial (at `effort`) would break the budget, or None: the trial count, or
    the time so far plus what the slowest trial per unit effort predicts."""
    if budget.max_trials is not None and n_trials >= budget.max_trials:
        return f"trial budget of {budget.max_trials} reached"
    if budget.time_budget_s is not None:
        expected = effort * (max(per_effort_s) if per_effort_s else 0.0)
        if elapsed_s + expected > budget.time_budget_s:
            return f"time budget of {budget.time_budget_s:g} s reached"
    return None


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
    race_config: RaceConfig | None = None,
    reference_variant: str | None = None,
) -> SearchResult:
    """Measure candidates (given in prior order, most promising first) and return the trials;
    with `race_config`, the leaders are raced at the end and their trials become the race's
    medians (at a higher effort than any other trial, so they are the finalists)."""
    start = clock()
    n = len(candidates)
    fits_trials = budget.max_trials is None or budget.max_trials >= n
    exhaustive = n <= exhaustive_limit and fits_trials
    result = SearchResult("exhaustive" if exhaustive else "successive-halving", {}, space_size=n)
    if n == 0:
        return result

    pool, schedule = _schedule(candidates, budget, exhaustive, eta)
    planned = sum(size for size, _ in schedule)
    per_effort_s: list[float] = []  # seconds per unit effort, from trials so far

    try:
        for round_no, (size, effort) in enumerate(schedule):
            pool = pool[:size]
            round_trials: list[Trial] = []
            for cand in pool:
                result.stopped = _over_budget(
                    budget, result.n_trials, clock() - start, effort, per_effort_s
                )
                if result.stopped:
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
                {
                    "round": round_no,
                    "effort": effort,
                    "planned": size,
                    "measured": len(round_trials),
                }
            )
            if result.stopped:
                break
            round_trials.sort(key=score)
            pool = [t.candidate for t in round_trials]
    except KeyboardInterrupt:  # Ctrl-C: the trials so far stand, the one in progress not
        result.stopped, result.interrupted = INTERRUPTED, True
    if race_config is not None and not result.stopped:
        _race(
            result,
            measure,
            score,
            budget,
            race_config,
            reference_variant,
            clock,
            start,
            per_effort_s,
            on_trial,
        )
    result.elapsed_s = clock() - start
    return result


def race_entrants(
    result: SearchResult, score: ScoreFn, config: RaceConfig, reference_variant: str | None
) -> list[Candidate]:
    """Who races: the finalists first, then the best of the rest, all within `config.within`
    of the best score, at most `config.size`, the fastest of each thread count among them
    (threads are what drifts most on a busy machine); plus the reference variant's best, so
    that the reason's "N× faster than fp32" is measured head to head too."""
    finalists = sorted(result.finalists(), key=score)
    if not finalists:
        return []
    best = score(finalists[0])
    seen = {t.candidate.key for t in finalists}
    rest = sorted((t for t in result.trials.values() if t.candidate.key not in seen), key=score)

    def near(t: Trial) -> bool:
        s = score(t)
        if tuple(s[:-1]) != tuple(best[:-1]):
            return False
        a, b = abs(float(s[-1])), abs(float(best[-1]))
        lo, hi = min(a, b), max(a, b)
        return hi == 0 or (lo > 0 and hi / lo - 1 <= config.within)

    eligible = [t for t in finalists + rest if near(t)]
    picked: list[Trial] = []
    threads: set[int] = set()
    for t in eligible:  # the fastest of each thread count first
        n = t.candidate.options.intra_op_num_threads
        if n not in threads and len(picked) < config.size:
            threads.add(n)
            picked.append(t)
    for t in eligible:
        if len(picked) >= config.size:
            break
        if t not in picked:
            picked.append(t)
    picked.sort(key=score)
    entrants = [t.candidate for t in picked]
    if reference_variant is not None and all(c.variant != reference_variant for c in entrants):
        ref = [t for t in finalists + rest if t.candidate.variant == reference_variant]
        if ref:
            entrants.append(min(ref, key=score).candidate)
    return entrants


def _race(
    result: SearchResult,
    measure: MeasureFn,
    score: ScoreFn,
    budget: Budget,
    config: RaceConfig,
    reference_variant: str | None,
    clock: Callable[[], float],
    start: float,
    per_effort_s: list[float],
    on_trial: Callable[[Trial, int, int], None] | None,
) -> None:
    entrants = race_entrants(result, score, config, reference_variant)
    if len(entrants) < 2:
        return
    top = max(t.effort for t in result.trials.values())
    planned = result.n_trials + len(entrants) * config.rounds

    def stop() -> str | None:
        if budget.max_trials is not None and result.n_trials >= budget.max_trials:
            return f"trial budget of {budget.max_trials} reached"
        if budget.time_budget_s is not None:
            expected = config.effort * (max(per_effort_s) if per_effort_s else 0.0)
            if clock() - start + expected > budget.time_budget_s:
                return f"time budget of {budget.time_budget_s:g} s reached"
        return None

    def timed(cand: Candidate, effort: float) -> dict[str, Any]:
        t0 = clock()
        metrics = measure(cand, effort)
        wall = clock() - t0
        per_effort_s.append(wall / effort)
        trial = Trial(cand, effort, metrics, wall)
        result.history.append(trial)
        if on_trial:
            on_trial(trial, result.n_trials, planned)
        return metrics

    def check() -> str | None:
        why = stop()
        if why:
            result.stopped = f"{why} during the final race"
        return why

    try:
        combined, rounds = race(entrants, timed, config, stop=check)
    except KeyboardInterrupt:  # the race's rounds so far are not enough for medians
        result.stopped, result.interrupted = f"{INTERRUPTED} during the final race", True
        result.race = {"entrants": [c.key for c in entrants], "rounds": 0, "used": False}
        return
    result.rounds.append(
        {
            "round": "race",
            "effort": config.effort,
            "planned": len(entrants) * config.rounds,
            "measured": len(entrants) * rounds,
        }
    )
    result.race = {
        "entrants": [c.key for c in entrants],
        "rounds": rounds,
        "effort_per_round": config.effort,
    }
    if rounds < min(3, config.rounds):  # too few rounds for a median: keep the search's trials
        result.race["used"] = False
        return
    result.race["used"] = True
    for cand in entrants:
        metrics = combined[cand.key]
        metrics["effort"] = top + rounds * config.effort  # the search's trial plus the race
        result.trials[cand.key] = Trial(cand, metrics["effort"], metrics, 0.0)
