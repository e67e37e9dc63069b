"""Honesty of the benchmark harness (issue 4), run with pytest-benchmark:

    .venv/bin/pytest benchmarks/test_harness_overhead.py -q --benchmark-only -s

1. Overhead: on a model whose run takes at least 50 µs, the p50 that edge_agent.benchmark's
   timed loop reports stays within 2 % of a bare loop of `session.run` on the same session and
   the same inputs, measured side by side in one run (interleaved rounds, ABBA order, so drift
   of the machine hits both alike).
2. Repeatability: two consecutive single-stream runs of the same configuration give p50 within
   5 % of each other.

Both need a quiet machine: on a shared, loaded box the scheduler's noise is larger than the
harness. The figures are printed and attached to the pytest-benchmark record (extra_info).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.benchmark import TimingConfig, create_session, feeds_for, measure, run_single_stream
from edge_agent.benchmark.stats import percentile

WIDTH, LAYERS = 512, 6  # ~1.6 M multiply-adds: well over 50 µs a run on one thread
ROUNDS, PER_ROUND = 8, 1500


def _mlp(path: Path) -> Path:
    """A seeded MatMul/Relu stack built with onnx.helper (no framework, no download)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "harness_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", WIDTH])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


SIGNATURE = [{"name": "x", "dtype": "float32", "shape": ["batch", WIDTH]}]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _mlp(tmp_path_factory.mktemp("harness") / "mlp.onnx")


def _bare(session, feeds, n: int) -> list[int]:
    clock = time.perf_counter_ns
    lat = []
    k = len(feeds)
    for i in range(n):
        feed = feeds[i % k]
        t0 = clock()
        session.run(None, feed)
        lat.append(clock() - t0)
    return lat


def _harness(run, feeds, n: int) -> list[int]:
    m = measure(run, feeds, TimingConfig(iterations=n, warmup_iterations=0))
    return list((m.latencies_s * 1e9).astype(np.int64))


def test_harness_p50_within_2_percent_of_a_bare_loop(model: Path, benchmark) -> None:
    session, _ = create_session(model, threads=1)
    feeds = feeds_for(SIGNATURE, 1, sets=8, seed=0).feeds
    run = functools.partial(session.run, None)
    _bare(session, feeds, 300)  # warm both paths
    harness, bare = [], []
    for r in range(ROUNDS):  # ABBA: neither method always goes first
        if r % 2 == 0:
            harness += _harness(run, feeds, PER_ROUND)
            bare += _bare(session, feeds, PER_ROUND)
        else:
            bare += _bare(session, feeds, PER_ROUND)
            harness += _harness(run, feeds, PER_ROUND)
    p50_h = percentile(np.sort(harness), 50) / 1e3
    p50_b = percentile(np.sort(bare), 50) / 1e3
    ratio = p50_h / p50_b
    # the pytest-benchmark record: the harness timing a fixed batch of calls
    benchmark.pedantic(_harness, args=(run, feeds, 200), rounds=5, iterations=1)
    benchmark.extra_info.update(
        harness_p50_us=p50_h, bare_p50_us=p50_b, ratio=ratio, calls_each=ROUNDS * PER_ROUND
    )
    print(f"\nharness p50 {p50_h:.2f} µs, bare loop p50 {p50_b:.2f} µs, ratio {ratio:.4f}")
    assert p50_b >= 50.0, f"the model runs in {p50_b:.1f} µs; the check needs >= 50 µs"
    assert abs(ratio - 1.0) <= 0.02


def test_two_runs_of_one_configuration_agree_within_5_percent(model: Path, benchmark) -> None:
    timing = TimingConfig(duration_s=3.0, warmup_iterations=50)

    def once() -> dict:
        return run_single_stream(model, SIGNATURE, batch=1, threads=1, timing=timing, variant="mlp")

    first = once()
    second = benchmark.pedantic(once, rounds=1, iterations=1)
    a, b = first["latency_ms"]["p50"], second["latency_ms"]["p50"]
    diff = abs(b - a) / a
    benchmark.extra_info.update(
        first_p50_ms=a,
        second_p50_ms=b,
        relative_difference=diff,
        stable=[first["stability"]["stable"], second["stability"]["stable"]],
    )
    print(f"\nrun 1 p50 {a * 1e3:.2f} µs, run 2 p50 {b * 1e3:.2f} µs, difference {diff:.2%}")
    assert diff <= 0.05
