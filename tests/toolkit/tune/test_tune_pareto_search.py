"""Pure parts of tune: the Pareto front, the candidate space, the search strategies and
their budgets, objectives and budgets, on synthetic candidates."""

from __future__ import annotations

import itertools
import random

import pytest

from edge_agent.errors import BadInputError
from edgekit.toolkit.scoring.pareto import dominates, pareto_front
from edgekit.toolkit.tune.objective import parse_latency_budget, score
from edgekit.toolkit.tune.race import RaceConfig
from edgekit.toolkit.tune.search import Budget, halving_schedule, search
from edgekit.toolkit.tune.space import (
    Candidate,
    SessionOptions,
    candidate_space,
    session_option_space,
)


def test_pareto_front_on_synthetic_points():
    pts = {
        "a": {"accuracy": 0.95, "latency_ms": 2.0, "bytes": 100},  # most accurate
        "b": {"accuracy": 0.94, "latency_ms": 1.0, "bytes": 30},  # fast and small
        "c": {"accuracy": 0.94, "latency_ms": 1.5, "bytes": 30},  # dominated by b
        "d": {"accuracy": 0.90, "latency_ms": 0.5, "bytes": 50},  # fastest
        "e": {"accuracy": 0.90, "latency_ms": 0.6, "bytes": 20},  # smallest
        "f": {"accuracy": 0.89, "latency_ms": 3.0, "bytes": 200},  # dominated by everything
    }
    front = pareto_front(list(pts), lambda k: pts[k])
    assert front == ["a", "b", "d", "e"]
    assert dominates(pts["b"], pts["c"], {"accuracy": 1, "latency_ms": -1, "bytes": -1})


def test_pareto_front_matches_brute_force():
    rng = random.Random(7)
    axes = {"accuracy": 1, "latency_ms": -1, "bytes": -1}
    for _ in range(20):
        pts = [
            {
                "accuracy": rng.choice([0.9, 0.92, 0.95]),
                "latency_ms": rng.random(),
                "bytes": rng.randint(1, 5),
            }
            for _ in range(15)
        ]
        front = pareto_front(pts, lambda p: p)
        for p in pts:
            beaten = any(
                all(q[a] * s >= p[a] * s for a, s in axes.items())
                and q != p
                and any(q[a] * s > p[a] * s for a, s in axes.items())
                for q in pts
            )
            assert (p in front) == (not beaten)


def test_session_option_space_respects_cores():
    one = session_option_space(1)
    assert all(o.intra_op_num_threads == 1 and o.execution_mode == "sequential" for o in one)
    four = session_option_space(4, graph_levels=("all",))
    assert {o.intra_op_num_threads for o in four} == {1, 2, 4}
    assert all(o.cpus_needed <= 4 for o in four)
    assert any(o.execution_mode == "parallel" for o in four)
    assert len(set(four)) == len(four)
    six = session_option_space(6, graph_levels=("all",), parallel=False)
    assert [o.intra_op_num_threads for o in six] == [1, 2, 4, 6]


def test_candidate_space_pairs_variants_with_their_providers():
    space = candidate_space(
        ["fp32", "int8-static"],
        ["TensorrtExecutionProvider", "CPUExecutionProvider"],
        2,
        graph_levels=("all",),
        providers_for={"int8-static": ["TensorrtExecutionProvider"]},
    )
    pairs = {(c.variant, c.provider) for c in space}
    assert ("int8-static", "CPUExecutionProvider") not in pairs
    assert ("fp32", "CPUExecutionProvider") in pairs and (
        "int8-static",
        "TensorrtExecutionProvider",
    ) in pairs


def test_session_options_to_ort():
    so = SessionOptions(2, 3, "parallel", "basic").to_ort()
    import onnxruntime as ort

    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 3
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with pytest.raises(ValueError):
        SessionOptions(0)


# -- search -------------------------------------------------------------------------------
def _synthetic(n: int) -> tuple[list[Candidate], dict[str, float]]:
    cands = [
        Candidate(
            f"v{i % 4}",
            "CPUExecutionProvider",
            SessionOptions(1 + i // 4 % 2, 1, "sequential", lvl),
        )
        for i, lvl in zip(range(n), itertools.cycle(["all", "basic", "extended"]))
    ]
    rng = random.Random(1)
    true = {c.key: 1.0 + rng.random() * 4 for c in cands}
    return cands, true


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _measure(true, clock, noise=0.0, seconds=1.0):
    rng = random.Random(3)

    def measure(c, effort):
        clock.now += seconds * effort  # a trial costs time in proportion to its effort
        lat = true[c.key] * (1 + noise * (rng.random() - 0.5) / effort**0.5)
        return {"latency_ms": {"p50": lat, "p99": lat * 1.2}, "samples_per_s": 1000 / lat}

    return measure


def _score(t):
    return score("latency", t.metrics, 1, None)


def test_small_space_is_exhaustive():
    cands, true = _synthetic(12)
    clock = FakeClock()
    res = search(cands, _measure(true, clock), _score, clock=clock)
    assert res.strategy == "exhaustive"
    assert res.n_trials == 12 and all(t.effort == 1.0 for t in res.history)
    best = min(res.trials.values(), key=_score)
    assert best.candidate.key == min(true, key=true.get)


def test_successive_halving_finds_the_best_cheaper():
    cands, true = _synthetic(60)
    clock = FakeClock()
    res = search(cands, _measure(true, clock, noise=0.02), _score, clock=clock)
    assert res.strategy == "successive-halving"
    assert [r["planned"] for r in res.rounds] == [s for s, _ in halving_schedule(60)]
    # cheaper than measuring all 60 at full effort (60 s on the fake clock)
    assert clock.now < 60 / 2
    best = min(res.finalists(), key=_score)
    assert true[best.candidate.key] <= 1.05 * min(true.values())


def test_max_trials_is_respected():
    cands, true = _synthetic(60)
    clock = FakeClock()
    res = search(cands, _measure(true, clock), _score, Budget(max_trials=10), clock=clock)
    assert res.n_trials <= 10
    assert res.finalists()
    # the first round kept the highest-prior candidates (the given order)
    first_round = [t.candidate for t in res.history[: res.rounds[0]["measured"]]]
    assert first_round == cands[: len(first_round)]


def test_time_budget_stops_within_budget():
    cands, true = _synthetic(30)
    clock = FakeClock()
    res = search(
        cands,
        _measure(true, clock, seconds=1.0),
        _score,
        Budget(time_budget_s=5.0),
        exhaustive_limit=100,
        clock=clock,
    )
    assert res.stopped and "time budget" in res.stopped
    assert clock.now <= 5.0 + 1e-9
    assert 0 < res.n_trials < 30


def test_objectives_and_budget_parsing():
    b = parse_latency_budget("p99=5ms")
    assert (b.percentile, b.limit_ms) == ("p99", 5.0)
    assert parse_latency_budget("p50=800us").limit_ms == pytest.approx(0.8)
    assert parse_latency_budget("p90=0.01s").limit_ms == pytest.approx(10.0)
    assert parse_latency_budget(None) is None
    for bad in ("5ms", "p42=1ms", "p99=fast", "p99=-1ms"):
        with pytest.raises(BadInputError):
            parse_latency_budget(bad)
    fast_big = {"latency_ms": {"p50": 1.0, "p99": 6.0}, "samples_per_s": 900}
    slow_small = {"latency_ms": {"p50": 2.0, "p99": 4.0}, "samples_per_s": 500}
    assert score("latency", fast_big, 100, None) < score("latency", slow_small, 10, None)
    assert score("latency", fast_big, 100, b) > score("latency", slow_small, 10, b)  # over budget
    assert score("size", slow_small, 10, None) < score("size", fast_big, 100, None)
    assert score("throughput", fast_big, 100, None) < score("throughput", slow_small, 10, None)


@pytest.mark.parametrize("at", [3, 14])  # during the first round / during the final race
def test_ctrl_c_keeps_the_trials_measured_before_it(at):
    cands, true = _synthetic(12)
    clock = FakeClock()
    measure = _measure(true, clock)
    calls = [0]

    def interrupted(c, effort):
        calls[0] += 1
        if calls[0] == at:
            raise KeyboardInterrupt
        return measure(c, effort)

    res = search(cands, interrupted, _score, clock=clock, race_config=RaceConfig())
    assert res.interrupted and res.stopped.startswith("interrupted (Ctrl-C)")
    assert res.n_trials == at - 1  # every finished trial, not the one in progress
    assert len(res.trials) == min(at - 1, 12)
    if at > 12:
        assert res.race["used"] is False  # too few rounds: the search's own trials stand
