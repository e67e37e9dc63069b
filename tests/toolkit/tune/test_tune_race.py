"""The final race: interleaved rounds, medians, and what it changes in a search's choice."""

from __future__ import annotations

import itertools

import pytest

from edgekit.toolkit.tune.objective import score
from edgekit.toolkit.tune.race import RaceConfig, combine, race, round_order
from edgekit.toolkit.tune.search import Budget, race_entrants, search
from edgekit.toolkit.tune.space import Candidate, SessionOptions


def _cand(variant: str, threads: int, level: str = "all") -> Candidate:
    return Candidate(
        variant, "CPUExecutionProvider", SessionOptions(threads, 1, "sequential", level)
    )


def _score(t):
    return score("latency", t.metrics, 1, None)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _metrics(lat: float) -> dict:
    return {
        "latency_ms": {"p50": lat, "p90": lat * 1.1, "p99": lat * 1.3, "mean": lat},
        "samples_per_s": 1000 / lat,
        "throughput_qps": 1000 / lat,
        "count": 10,
        "stable": True,
        "memory_bytes": 100,
    }


def test_round_order_rotates_and_reverses():
    c = [_cand(v, 1) for v in "abcd"]
    orders = [round_order(c, r) for r in range(4)]
    assert orders[0] == c
    assert orders[1] == [c[1], c[0], c[3], c[2]]
    # every entrant is measured once per round, and each comes first in some round
    assert all(sorted(o) == sorted(c) for o in orders)
    assert {o[0].variant for o in orders} == set("abcd")


def test_combine_takes_medians_over_rounds():
    runs = [_metrics(x) for x in (1.0, 5.0, 1.2, 1.1, 0.9)]
    runs[1]["stable"] = False
    runs[2]["memory_bytes"] = 300
    out = combine(runs, effort=5 / 3)
    assert out["latency_ms"]["p50"] == pytest.approx(1.1)  # the 5.0 outlier does not move it
    assert out["samples_per_s"] == pytest.approx(1000 / 1.1)
    assert out["count"] == 50 and out["memory_bytes"] == 300 and out["stable"] is False
    assert out["race"]["p50_ms"] == [1.0, 5.0, 1.2, 1.1, 0.9]
    assert out["effort"] == pytest.approx(5 / 3)


def test_race_interleaves_and_stops_on_complete_rounds():
    entrants = [_cand(v, 1) for v in "abc"]
    seen = []

    def measure(c, effort):
        seen.append(c.variant)
        return _metrics({"a": 1.0, "b": 2.0, "c": 3.0}[c.variant])

    out, rounds = race(entrants, measure, RaceConfig(rounds=4, effort=0.25))
    assert rounds == 4 and len(seen) == 12
    assert seen[:3] == ["a", "b", "c"] and seen[3:6] == ["b", "a", "c"]
    assert out[entrants[0].key]["latency_ms"]["p50"] == 1.0
    assert out[entrants[0].key]["effort"] == pytest.approx(1.0)

    calls = itertools.count()
    out, rounds = race(
        entrants, measure, RaceConfig(rounds=4), stop=lambda: "enough" if next(calls) >= 7 else None
    )
    assert rounds == 2  # the third round was cut short: only complete rounds count
    assert all(v["race"]["rounds"] == 2 for v in out.values())


def test_race_overturns_a_choice_made_in_a_disturbed_moment():
    """Two threads are really faster (0.75 vs 1.0 ms), but the machine was disturbed while the
    search measured them (2-thread runs 1.8x slower for the first seconds). The search alone
    picks 1 thread; the race, measuring both again in interleaved rounds, picks 2 threads."""
    one, two = _cand("fp32", 1), _cand("fp32", 2)
    true = {one.key: 1.0, two.key: 0.75}
    clock = Clock()

    def measure(c, effort):
        disturbed = clock.now < 2.0 and c.options.intra_op_num_threads > 1
        clock.now += effort
        return _metrics(true[c.key] * (1.8 if disturbed else 1.0))

    plain = search([two, one], measure, _score, clock=clock)
    assert min(plain.finalists(), key=_score).candidate == one
    clock.now = 0.0
    raced = search([two, one], measure, _score, clock=clock, race_config=RaceConfig())
    assert raced.race["used"] and raced.race["rounds"] == 5
    assert min(raced.finalists(), key=_score).candidate == two
    assert {t.candidate for t in raced.finalists()} == {one, two}
    assert all(t.effort == pytest.approx(1 + 5 / 3) for t in raced.finalists())


def test_entrants_are_near_the_best_cover_thread_counts_and_the_reference():
    clock = Clock()
    lat = {
        _cand("int8", 2).key: 1.0,
        _cand("int8", 2, "basic").key: 1.01,
        _cand("int8", 2, "extended").key: 1.02,
        _cand("int8", 1).key: 1.2,  # slower but the best 1-thread one: races
        _cand("int8", 1, "basic").key: 1.3,
        _cand("fp32", 2).key: 3.0,  # far behind, but the reference the reason quotes
        _cand("fp32", 1).key: 4.0,
    }
    cands = [
        c
        for c in (
            _cand(v, n, lv)
            for v in ("int8", "fp32")
            for n in (2, 1)
            for lv in ("all", "basic", "extended")
        )
        if c.key in lat
    ]

    def measure(c, effort):
        clock.now += effort
        return _metrics(lat[c.key])

    res = search(cands, measure, _score, clock=clock)
    entrants = race_entrants(res, _score, RaceConfig(size=3, within=0.25), "fp32")
    keys = [c.key for c in entrants]
    # the best, the best of the other thread count (though 2nd-tier 2-thread ones are faster),
    # the next best up to size 3, in score order; then the reference's best, outside `within`
    assert keys == [
        _cand("int8", 2).key,
        _cand("int8", 2, "basic").key,
        _cand("int8", 1).key,
        _cand("fp32", 2).key,
    ]


def test_race_respects_the_trial_budget():
    cands = [_cand("fp32", n, lv) for n in (1, 2) for lv in ("all", "basic", "extended")]
    clock = Clock()

    def measure(c, effort):
        clock.now += effort
        return _metrics(1.0 + 0.01 * cands.index(c))

    res = search(
        cands, measure, _score, Budget(max_trials=10), clock=clock, race_config=RaceConfig()
    )
    assert res.n_trials <= 10
    assert res.race is not None and res.race["used"] is False  # too few rounds fitted
    assert res.stopped and "final race" in res.stopped
    assert all(t.effort == 1.0 for t in res.finalists())  # the search's own trials decide


def test_reason_names_the_options_compared_and_a_win_at_one_thread():
    """The image CNN's case: int8-static is 1.04x faster than fp32 at 1 thread, but fp32
    gains more from 2 threads, so int8-static's best loses to fp32's best. The reason says
    which options it compared and that int8-static wins at 1 thread."""
    from edgekit.toolkit.tune.explain import Point, measured_reason
    from edgekit.toolkit.tune.gate import VariantInfo

    infos = {
        "fp32": VariantInfo("fp32", "fp32", "fp32", 4000, "cosine_mean", 1.0, 0.0),
        "int8-static": VariantInfo(
            "int8-static", "int8-static", "int8-static", 1000, "cosine_mean", 1.0, 0.0
        ),
    }
    lat = {("fp32", 1): 0.383, ("fp32", 2): 0.209, ("int8-static", 1): 0.368}
    lat[("int8-static", 2)] = 0.280
    points = [
        Point(_cand(v, n), infos[v], {**_metrics(x), "effort": 1.0}, "this machine")
        for (v, n), x in lat.items()
    ]
    sel = next(p for p in points if p.candidate == _cand("fp32", 2))
    text = measured_reason(sel, points, infos, "latency", None, "on this CPU")
    assert "int8-static: no speed-up on this CPU (1.3× slower than fp32" in text
    assert "at 1 thread 1.04× faster than fp32" in text
    assert "2 threads 1.8× 1 thread" in text
