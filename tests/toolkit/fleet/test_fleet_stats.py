"""Fleet percentiles from merged histograms, and drift summed over windows and devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent import telemetry
from edge_agent.monitoring import drift as drift_stats
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.drift import FLEET, aggregate
from edgekit.toolkit.fleet.ingest import Received
from edgekit.toolkit.fleet.summary import drift_entries, fleet_summary, merged_latency
from tests.toolkit.fleet.fleet_helpers import metrics


def test_fleet_percentiles_from_merged_histograms_within_bucket_error(tmp_path, store_at):
    rng = np.random.default_rng(7)
    c = Collector.open(store_at)
    everything = []
    items = []
    # devices with different speeds, many windows each
    for d, scale in enumerate((0.5, 1.0, 4.0, 20.0)):
        for seq in range(1, 26):
            lat = (rng.lognormal(0, 0.5, 80) * scale).tolist()
            everything.extend(lat)
            items.append(metrics(f"d{d}", seq, rng, latencies=lat))
    c.process([Received(t, p) for t, p in items])
    summary = fleet_summary(c.store)
    fleet = summary["fleet_latency"]["all"]
    assert fleet["count"] == len(everything)
    exact = np.sort(np.asarray(everything))
    err = telemetry.LATENCY_RELATIVE_ERROR
    for q in (50, 90, 99):
        true = exact[max(0, math.ceil(q / 100 * len(exact)) - 1)]
        assert fleet[f"p{q}"] == pytest.approx(true, rel=err), q
    # a naive mean of per-window p99s is not the fleet p99: merging matters here
    naive = np.mean([r["p99"] for r in c.store.query("SELECT p99 FROM metrics")])
    assert abs(naive - fleet["p99"]) / fleet["p99"] > err
    # per device, the same holds
    for d in summary["devices"]:
        assert d["p50_ms"] is not None
    c.close()


def test_merged_latency_of_nothing():
    assert merged_latency([])["p50"] is None


def _baseline(reference):
    return {
        "features": [
            {"name": n, "kind": "numeric", "bin_shares": s, "bin_edges": list(range(len(s) - 1))}
            for n, s in reference.items()
        ],
        "predictions": [],
    }


def test_drift_sums_across_devices_and_finds_what_no_single_window_can(tmp_path, store_at):
    """Each window holds 40 rows (below the agent's 100-row minimum, so every device window says
    too_few_samples); summed over 5 devices x 6 windows the fleet sees the shift in f01."""
    ref = syn.feature_reference(3)
    rng = np.random.default_rng(3)
    c = Collector.open(store_at)
    items = []
    for d in range(5):
        for seq in range(1, 7):
            items.append(metrics(f"d{d}", seq, rng, reference=ref, requests=40, shift={"f01": 0.3}))
    c.process([Received(t, p) for t, p in items])
    entries = drift_entries(c.store)
    assert {e["status"] for e in entries} == {"too_few_samples"}
    baseline = _baseline(ref)
    result = aggregate(entries, lambda _name: baseline)
    fleet = {f.name: f for f in result if f.thing == FLEET}
    per_device = [f for f in result if f.thing == "d0" and f.name == "f01"][0]
    assert fleet["f01"].n == 5 * 6 * 40
    assert fleet["f01"].counts == [
        sum(x) for x in zip(*(e["counts"] for e in entries if e["name"] == "f01"), strict=True)
    ]
    assert per_device.n == 6 * 40
    assert fleet["f01"].status == "drift"
    assert fleet["f00"].status == "ok" and fleet["f02"].status == "ok"
    expected = drift_stats.psi(fleet["f01"].counts, ref["f01"])
    assert fleet["f01"].psi == pytest.approx(expected, abs=1e-6)
    # without a baseline the summary still says something, from the devices' own window PSIs
    no_base = {f.name: f for f in aggregate(entries) if f.thing == FLEET}
    assert no_base["f01"].psi is None and no_base["f01"].window_psi_mean is None  # too few rows
    c.close()


def test_fleet_drift_rule_waits_for_enough_rows_then_fires_once(tmp_path, store_at):
    from edgekit.toolkit.fleet.rules import FLEET_MIN_SAMPLES, FleetRules, RulesConfig

    ref = syn.feature_reference(2)
    rng = np.random.default_rng(5)
    c = Collector.open(store_at)

    class Index:
        def baseline(self, name):
            return _baseline(ref)

    rules = FleetRules(RulesConfig(), Index(), c.store)

    def windows(seq: int, rows: int) -> None:
        c.process(
            [
                Received(
                    *metrics(f"d{d}", seq, rng, reference=ref, requests=rows, shift={"f00": 0.4})
                )
                for d in range(3)
            ]
        )

    windows(1, 100)  # 300 rows: a clear shift, but fewer than a fleet verdict needs
    assert FLEET_MIN_SAMPLES > 3 * 100
    assert rules.periodic(force=True) == []
    windows(2, 100)
    first = rules.periodic(force=True)
    assert [(a["rule"], a["subject"], a["state"]) for a in first] == [
        ("fleet_drift", "f00", "firing")
    ]
    assert rules.periodic(force=True) == []  # still drifting: no new alert
    c.close()
