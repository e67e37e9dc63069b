"""The measurement core: statistics, stability, inputs and the timed loop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge_agent.benchmark import (
    StabilityConfig,
    TimingConfig,
    feeds_for,
    is_stable,
    latency_stats,
    measure,
    percentile,
    record_problems,
    run_single_stream,
)
from edge_agent.contracts.bundle import Bundle


def test_percentiles_of_known_latencies() -> None:
    # 1..1000 ms shuffled: nearest rank gives exactly p% of the way up
    lat_s = np.random.default_rng(1).permutation(np.arange(1, 1001)) / 1e3
    s = latency_stats(lat_s)
    assert s["count"] == 1000
    assert s["min"] == pytest.approx(1.0)
    assert s["max"] == pytest.approx(1000.0)
    assert s["mean"] == pytest.approx(500.5)
    assert s["p50"] == pytest.approx(500.0)
    assert s["p90"] == pytest.approx(900.0)
    assert s["p95"] == pytest.approx(950.0)
    assert s["p99"] == pytest.approx(990.0)
    assert s["p99.9"] == pytest.approx(999.0)


def test_percentile_is_a_measured_value_and_rejects_bad_input() -> None:
    values = np.array([1.0, 2.0, 10.0])
    assert percentile(values, 50) == 2.0
    assert percentile(values, 99.9) == 10.0
    assert percentile(values, 1) == 1.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 0)
    with pytest.raises(ValueError):
        latency_stats([])


def _w(throughput: float, p50: float) -> dict:
    return {"throughput": throughput, "p50_ms": p50}


def test_stability_needs_the_last_three_windows_within_tolerance() -> None:
    cfg = StabilityConfig(tolerance=0.10)
    assert not is_stable([_w(100, 1.0), _w(100, 1.0)], cfg)  # too few windows
    assert is_stable([_w(50, 3.0), _w(100, 1.0), _w(105, 1.05), _w(109, 1.0)], cfg)
    assert not is_stable([_w(100, 1.0), _w(100, 1.0), _w(115, 1.0)], cfg)  # throughput 15 %
    assert not is_stable([_w(100, 1.0), _w(100, 1.2), _w(100, 1.0)], cfg)  # latency 20 %
    assert is_stable([_w(100, 1.0), _w(100, 1.2), _w(100, 1.0)], StabilityConfig(tolerance=0.25))


def test_measure_reports_an_unstable_run_as_unstable() -> None:
    # every window is slower than the last: never three alike
    state = {"n": 0}

    def drifting(_feed: object) -> None:
        state["n"] += 1
        end = time.perf_counter() + 1e-5 * (1.0 + state["n"] / 30.0)
        while time.perf_counter() < end:
            pass

    timing = TimingConfig(
        duration_s=0.06,
        warmup_iterations=0,
        stability=StabilityConfig(tolerance=0.01, max_windows=5),
    )
    m = measure(drifting, [None], timing)
    assert not m.stable
    assert len(m.windows) == 5  # gave up at the limit
    assert m.counted_windows == 3


def test_measure_counts_exact_iterations_and_rotates_inputs() -> None:
    seen: list[int] = []
    m = measure(seen.append, [0, 1, 2], TimingConfig(iterations=30, warmup_iterations=4))
    assert len(m.latencies_s) == 30
    assert len(seen) == 34  # warm-up included
    assert seen[4:10] == [0, 1, 2, 0, 1, 2]  # timed calls rotate through every set
    assert m.total_calls == 30 and len(m.windows) == 3


def test_timing_config_refuses_both_duration_and_iterations() -> None:
    with pytest.raises(ValueError, match="not both"):
        TimingConfig(duration_s=1, iterations=10)


def test_generated_inputs_follow_the_signature_and_the_seed() -> None:
    sig = [
        {"name": "x", "dtype": "float32", "shape": ["batch", 3]},
        {"name": "ids", "dtype": "int64", "shape": [None, 2]},
        {"name": "t", "dtype": "string", "shape": [None, 1]},
    ]
    a = feeds_for(sig, 4, sets=3, seed=7)
    b = feeds_for(sig, 4, sets=3, seed=7)
    assert a.source == "generated" and len(a) == 3
    assert a.feeds[0]["x"].shape == (4, 3) and a.feeds[0]["x"].dtype == np.float32
    assert a.feeds[0]["ids"].dtype == np.int64 and a.feeds[0]["t"].shape == (4, 1)
    np.testing.assert_array_equal(a.feeds[2]["x"], b.feeds[2]["x"])
    assert not np.array_equal(a.feeds[0]["x"], a.feeds[1]["x"])  # sets differ
    with pytest.raises(ValueError, match="fixed first dimension"):
        feeds_for([{"name": "x", "dtype": "float32", "shape": [1, 3]}], 8)


def test_inputs_from_samples_rotate_rows_and_wrap(cnn_bundle) -> None:
    bundle = Bundle.open(cnn_bundle)
    samples = bundle.sample_inputs()
    sets = feeds_for(bundle.signature["inputs"], 2, samples=samples, sets=4, seed=0)
    assert sets.source == "samples" and len(sets) == 4
    assert sets.feeds[0]["input"].shape == (2, 1, 8, 8)
    assert not np.array_equal(sets.feeds[0]["input"], sets.feeds[1]["input"])
    rows = len(samples["input"])
    big = feeds_for(bundle.signature["inputs"], rows + 5, samples=samples, sets=4)
    assert big.feeds[0]["input"].shape[0] == rows + 5 and big.notes


def test_single_stream_record_is_complete_and_valid(cnn_bundle) -> None:
    bundle = Bundle.open(cnn_bundle)
    record = run_single_stream(
        bundle.variant_path("fp32"),
        bundle.signature["inputs"],
        samples=bundle.sample_inputs(),
        batch=4,
        timing=TimingConfig(duration_s=0.15),
        variant="fp32",
    )
    assert record_problems(record) == []
    lat = record["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert record["throughput"]["samples_per_s"] == pytest.approx(
        4 * record["throughput"]["queries_per_s"]
    )
    assert record["session"]["create_ms"] > 0 and record["session"]["cold_first_ms"] > 0
    res = record["resources"]
    assert res["peak_rss_bytes"] > 0
    if res["peak_rss_source"] == "VmHWM":  # Linux: the peak was reset for this configuration
        assert 0 <= res["peak_rss_increase_bytes"] <= res["peak_rss_bytes"]
        assert res["peak_rss_bytes"] >= res["rss_before_bytes"]
    assert res["cpu_percent"] > 0
    assert record["headline"]["name"] == "p90 latency"
    assert record["inputs"]["source"] == "samples"
    assert sum(record["histogram"]["counts"]) == lat["count"]


def test_the_core_imports_nothing_from_the_workstation() -> None:
    import subprocess
    import sys

    code = (
        "import sys, edge_agent.benchmark as b, edge_agent.benchmark.runner;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('edgekit','pandas','torch','sklearn')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration_s": float("nan")},
        {"duration_s": float("inf")},
        {"duration_s": 0.0},
        {"iterations": 0},
        {"warmup_iterations": -1},
        {"warmup_s": float("nan")},
    ],
)
def test_timing_config_refuses_non_finite_and_non_positive_values(kwargs) -> None:
    with pytest.raises(ValueError):
        TimingConfig(**kwargs)


def test_stability_config_refuses_nan_tolerance() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        StabilityConfig(tolerance=float("nan"))
