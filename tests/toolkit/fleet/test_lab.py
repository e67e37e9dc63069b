"""Lab against device: a device bench reply slower than the bundle's lab record for the device's
target raises `lab_regression`; a healthy device does not. Both records come from the real
harness (edge_agent.benchmark); the slow device is the same record with its latencies scaled."""

from __future__ import annotations

import copy

import pytest

from edge_agent.benchmark import TimingConfig, run_single_stream
from edge_agent.bundle import Bundle
from tests.toolkit.fleet.fleet_helpers import encoded
from toolkit.fleet import synthetic as syn
from toolkit.fleet.collector import Collector
from toolkit.fleet.ingest import Received
from toolkit.fleet.lab import BundleIndex, compare, match_lab
from toolkit.fleet.rules import RulesConfig
from toolkit.fleet.summary import fleet_summary

TARGET = "x86-avx2-gateway"


@pytest.fixture
def lab_bundle(regression_bundle, copy_bundle):
    path = copy_bundle(regression_bundle, "lab")
    bundle = Bundle.open(path)
    record = run_single_stream(
        bundle.variant_path("fp32"),
        bundle.signature["inputs"],
        threads=1,
        timing=TimingConfig(iterations=300, warmup_iterations=20),
        variant="fp32",
    )
    bundle.variants["fp32"]["benchmarks"] = {
        TARGET: {"scenarios": {"single-stream": [record]}, "environment": {}}
    }
    bundle.save()
    return path, record


def _scaled(record, factor):
    rec = copy.deepcopy(record)
    for k, v in rec["latency_ms"].items():
        if isinstance(v, float):
            rec["latency_ms"][k] = v * factor
    return rec


def test_compare_matches_same_configuration(lab_bundle):
    path, record = lab_bundle
    bundle = Bundle.open(path)
    other_threads = {**record, "threads": 4, "latency_ms": {**record["latency_ms"], "p50": 99.0}}
    assert match_lab({"threads": 1, "batch": 1}, [other_threads, record]) is record
    assert match_lab({"batch": 8}, [record]) is None  # no lab run at that batch size
    cmp = compare("d", TARGET, "fp32", _scaled(record, 1.5), bundle, threshold=0.25)
    assert cmp is not None and cmp.slower and cmp.ratio == pytest.approx(1.5, rel=1e-6)
    assert not compare("d", TARGET, "fp32", _scaled(record, 1.1), bundle, threshold=0.25).slower
    assert compare("d", "rpi4", "fp32", record, bundle) is None  # no lab result for rpi4


def test_slow_device_raises_lab_regression_alert(lab_bundle, tmp_path):
    path, record = lab_bundle
    name = Bundle.open(path).manifest["name"]
    c = Collector.open(tmp_path / "fleet.db", bundles=[path])
    items = []
    for thing, factor in (("healthy", 1.05), ("throttled", 3.0)):
        items.append(encoded("hello", thing, 1, syn.hello_body(target=TARGET, name=name)))
        bench = {
            "request_id": "r1",
            "results": {"fp32": _scaled(record, factor)},
            "error": None,
            "budget_s": 5,
        }
        items.append(encoded("bench", thing, 2, bench, model_name=name))
    c.process([Received(t, p) for t, p in items])
    alerts = c.store.query("SELECT * FROM alerts WHERE rule = 'lab_regression'")
    assert [a["thing"] for a in alerts] == ["throttled"]
    assert alerts[0]["value"] == pytest.approx(3.0, rel=1e-3)
    assert alerts[0]["severity"] == "critical"  # 3x is beyond twice the allowed 1.25x
    summary = fleet_summary(c.store, BundleIndex([path]), RulesConfig())
    rows = {r["thing"]: r for r in summary["lab_vs_device"]}
    assert rows["throttled"]["slower"] and not rows["healthy"]["slower"]
    assert rows["healthy"]["lab_ms"] == pytest.approx(record["latency_ms"]["p50"])
    c.close()


def test_device_without_target_is_noted_not_guessed(lab_bundle, tmp_path):
    path, record = lab_bundle
    name = Bundle.open(path).manifest["name"]
    c = Collector.open(tmp_path / "fleet.db", bundles=[path])
    bench = {"results": {"fp32": _scaled(record, 3.0)}}
    c.process(
        [
            Received(*encoded("hello", "anon", 1, syn.hello_body(target=None, name=name))),
            Received(*encoded("bench", "anon", 2, bench, model_name=name)),
        ]
    )
    assert c.store.scalar("SELECT COUNT(*) FROM alerts") == 0
    assert any("no target" in n for n in c.rules.notes)
    # a `targets` map in the rules names the device type
    config = RulesConfig.from_dict({"targets": {"an*": TARGET}})
    summary = fleet_summary(c.store, BundleIndex([path]), config)
    assert summary["lab_vs_device"][0]["slower"]
    c.close()
