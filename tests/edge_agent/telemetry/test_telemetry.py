"""The telemetry contract: topics, histogram maths, splitting, schema agreement."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from edge_agent import telemetry
from edge_agent.monitoring import drift
from edge_agent.schemas import validation_errors


def _msg(body, message_type="metrics", seq=1):
    m = telemetry.make_message(
        message_type,
        thing="dev-1",
        component_version="1.0.0",
        model={"name": "m", "variant": "fp32", "sha256": "a" * 64},
        window=(100.0, 160.0),
        body=body,
    )
    m["seq"] = seq
    return m


def _metrics_body(features=3):
    h = telemetry.Histogram()
    for v in (0.5, 1.0, 2.0):
        h.record(v)
    entry = drift.assess([10, 20, 30], [0.2, 0.3, 0.5])
    return {
        "requests": {"count": 3, "ok": 3, "rows": 3, "errors": {}},
        "latency_ms": telemetry.summarize_histogram(h),
        "throughput": {"requests_per_s": 0.05, "rows_per_s": 0.05},
        "process": {"cpu_percent": 1.0, "cpu_seconds": 0.1, "rss_bytes": 1000},
        "data_quality": {
            "rows": 3,
            "counts": dict.fromkeys(telemetry.QUALITY_KINDS, 0),
            "by_feature": {f"f{i}": {"missing": 1} for i in range(features)},
        },
        "drift": {
            "features": {f"f{i}": {"kind": "numeric", **entry} for i in range(features)},
            "predictions": {},
        },
        "outbox": {"pending": 0, "dropped_total": 0},
    }


def test_topics_round_trip():
    assert telemetry.data_topic("dev-1", "metrics") == "dt/edgekit/dev-1/metrics"
    assert telemetry.command_topic("dev-1", "bench") == "cmd/edgekit/dev-1/bench"
    assert telemetry.parse_topic("dt/edgekit/dev-1/alerts") == ("dt", "dev-1", "alerts")
    assert telemetry.parse_topic("dt/edgekit/dev-1/nope") is None
    with pytest.raises(ValueError):
        telemetry.data_topic("a/b", "metrics")
    with pytest.raises(ValueError):
        telemetry.data_topic("dev", "other")


def test_histogram_percentiles_within_bucket_error():
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=0.0, sigma=1.0, size=5000)
    h = telemetry.Histogram()
    for v in values:
        h.record(float(v))
    for q in (50, 90, 99):
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        est = h.percentile(q)
        assert abs(est - exact) / exact <= telemetry.LATENCY_RELATIVE_ERROR


def test_merge_gives_fleet_percentiles_of_the_union():
    rng = np.random.default_rng(1)
    a_vals, b_vals = rng.uniform(1, 5, 3000), rng.uniform(20, 50, 1000)
    a, b = telemetry.Histogram(), telemetry.Histogram()
    for v in a_vals:
        a.record(float(v))
    for v in b_vals:
        b.record(float(v))
    merged = telemetry.merge_histograms([a.to_dict(), b.to_dict()])
    assert merged["count"] == 4000
    both = np.concatenate([a_vals, b_vals])
    exact = float(np.percentile(both, 90, method="inverted_cdf"))
    assert abs(telemetry.percentile(merged, 90) - exact) / exact <= telemetry.LATENCY_RELATIVE_ERROR
    assert merged["min"] == pytest.approx(both.min())
    assert telemetry.percentile({"count": 0, "buckets": []}, 50) is None


def test_message_matches_schema_and_check():
    msg = _msg(_metrics_body())
    assert telemetry.check(msg) == []
    assert validation_errors(msg, "telemetry") == []
    assert telemetry.decode(telemetry.encode(msg)) == msg
    bad = dict(msg, seq=0)
    assert telemetry.check(bad)
    assert validation_errors(bad, "telemetry")


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"window": {"start": -1e308, "end": 1e308}}, "window start and end must be Unix times"),
        ({"window": {"start": 0.0, "end": float("nan")}}, "window start and end must be Unix"),
        ({"created_at": float("inf")}, "created_at must be a Unix time"),
        ({"seq": 2**70}, "seq must be at most"),
    ],
)
def test_check_refuses_times_no_date_can_show_and_seqs_no_database_holds(change, problem):
    """A window ending at 1e308 was stored and then broke `fleet report` for the whole fleet
    (OverflowError formatting its date); a seq of 2**70 failed its batch (found by
    tryhostile)."""
    msg = dict(_msg(_metrics_body()), **change)
    assert any(problem in p for p in telemetry.check(msg)), telemetry.check(msg)


def test_split_and_join_keep_every_feature_and_stay_under_limit():
    msg = _msg(_metrics_body(features=400))
    limit = 8 * 1024
    parts = telemetry.split(msg, limit)
    assert len(parts) > 1
    assert all(len(telemetry.encode(p)) <= limit for p in parts)
    assert [p["part"]["index"] for p in parts] == list(range(len(parts)))
    random.Random(0).shuffle(parts)
    joined = telemetry.join(parts)
    assert joined["body"] == json.loads(telemetry.encode(msg))["body"]


def test_quality_blocks_merge_to_exact_scores():
    a = {"task": "classification", "labels": 3, "confusion": {"0|0": 2, "1|0": 1}}
    b = {"task": "classification", "labels": 2, "confusion": {"1|1": 2}}
    merged = telemetry.merge_quality(a, b)
    assert merged["scores"]["accuracy"] == pytest.approx(4 / 5)
    r = telemetry.merge_quality(
        {"task": "regression", "labels": 2, "abs_error_sum": 2.0, "sq_error_sum": 2.0},
        {"task": "regression", "labels": 2, "abs_error_sum": 6.0, "sq_error_sum": 18.0},
    )
    assert r["scores"] == {"mae": 2.0, "rmse": pytest.approx(5**0.5)}


def test_drift_small_window_is_too_few_samples_not_drift():
    shares = [0.1] * 10
    small = drift.assess([5, 0, 0, 0, 0, 0, 0, 0, 0, 5], shares)
    assert small["status"] == "too_few_samples"
    rng = np.random.default_rng(2)
    same = np.bincount(rng.integers(0, 10, 2000), minlength=10)
    assert drift.assess(same, shares)["status"] == "ok"
    shifted = np.bincount(np.clip(rng.integers(0, 10, 2000) + 3, 0, 9), minlength=10)
    verdict = drift.assess(shifted, shares)
    assert verdict["status"] == "drift" and verdict["psi"] > 0.25


def test_chi_square_survival_matches_known_values():
    # χ²(9) 99.9th percentile is 27.877; χ²(1) at 3.841 is the 5% point.
    assert drift.chi_square_sf(27.877, 9) == pytest.approx(0.001, rel=1e-3)
    assert drift.chi_square_sf(3.841, 1) == pytest.approx(0.05, rel=1e-3)
    assert drift.chi_square_sf(0.5, 10) == pytest.approx(1.0, abs=1e-5)


def test_small_windows_with_rare_bins_do_not_raise_false_drift():
    """40-row windows drawn from the baseline itself, with 1 % tail bins: χ² on raw bins
    would flag a stray tail row; pooled bins keep false alarms near alpha."""
    rng = np.random.default_rng(7)
    shares = [0.01, 0.01, 0.18, 0.2, 0.2, 0.2, 0.18, 0.01, 0.005, 0.005]
    policy = drift.DriftPolicy(min_samples=40)
    false_alarms = sum(
        drift.assess(rng.multinomial(40, shares).tolist(), shares, policy)["status"] == "drift"
        for _ in range(500)
    )
    assert false_alarms <= 3
    shifted = [0.0, 0.0, 0.02, 0.03, 0.05, 0.1, 0.3, 0.3, 0.1, 0.1]
    detected = sum(
        drift.assess(rng.multinomial(40, shifted).tolist(), shares, policy)["status"] == "drift"
        for _ in range(100)
    )
    assert detected >= 95


def test_pooling_keeps_every_row_and_share():
    counts, pooled = drift.pool_bins([1, 0, 3, 10, 2], [0.01, 0.02, 0.07, 0.8, 0.1], 16)
    assert sum(counts) == 16
    assert sum(pooled) == pytest.approx(1.0)
    assert all(s * 16 >= drift.MIN_EXPECTED for s in pooled)
