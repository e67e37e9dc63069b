"""Lab against device: a device bench reply slower than the bundle's lab record for the device's
target raises `lab_regression`; a healthy device does not. Both records come from the real
harness (edge_agent.benchmark); the slow device is the same record with its latencies scaled."""

from __future__ import annotations

import copy

import pytest

from edge_agent.benchmark import TimingConfig, run_single_stream
from edge_agent.contracts.bench import stored_records
from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received
from edgekit.toolkit.fleet.lab import BundleIndex, compare, lab_records, match_lab
from edgekit.toolkit.fleet.rules import RulesConfig
from edgekit.toolkit.fleet.summary import fleet_summary
from tests.toolkit.fleet.fleet_helpers import encoded

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


def test_slow_device_raises_lab_regression_alert(lab_bundle, tmp_path, store_at):
    path, record = lab_bundle
    name = Bundle.open(path).manifest["name"]
    c = Collector.open(store_at, bundles=[path])
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
    assert rows["healthy"]["lab_ms"] == pytest.approx(record["latency_ms"]["mean"])
    # after the fact, the same rule raises the same alert, word for word
    assert [a["message"] for a in summary["lab_alerts"]] == [a["message"] for a in alerts]
    c.close()


def test_device_without_target_is_noted_not_guessed(lab_bundle, tmp_path, store_at):
    path, record = lab_bundle
    name = Bundle.open(path).manifest["name"]
    c = Collector.open(store_at, bundles=[path])
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


def test_tune_reads_device_bench_results_per_target(lab_bundle, tmp_path, store_at):
    """`edgekit tune --from-fleet DB`: tune's reader gets the latest device records per target."""
    from edgekit.toolkit.fleet.tune_source import bench_by_target, bench_records
    from edgekit.toolkit.targets import get_target
    from edgekit.toolkit.tune.device import fleet_records

    path, record = lab_bundle
    name = Bundle.open(path).manifest["name"]
    db = store_at
    c = Collector.open(db)
    items = [
        encoded("hello", "gw-1", 1, syn.hello_body(target=TARGET, name=name)),
        encoded("bench", "gw-1", 2, {"results": {"fp32": _scaled(record, 2.0)}}, model_name=name),
        encoded("bench", "gw-1", 3, {"results": {"fp32": record}}, model_name=name),  # latest
        encoded("hello", "pi-1", 1, syn.hello_body(target="rpi4", name=name)),
        encoded("bench", "pi-1", 2, {"results": {"fp32": {"error": "no memory"}}}, model_name=name),
    ]
    c.process([Received(t, p) for t, p in items])
    c.close()
    records = bench_records(db, TARGET)
    assert len(records) == 1
    assert records[0]["variant"] == "fp32" and records[0]["environment"]["thing"] == "gw-1"
    assert records[0]["latency_ms"]["p50"] == pytest.approx(record["latency_ms"]["p50"])
    assert bench_records(db, "rpi4") == []  # its only result is an error
    assert set(bench_by_target(db)) == {TARGET}
    via_tune = fleet_records(db, get_target(TARGET))
    assert [r["thing"] for r in via_tune] == ["gw-1"]


def test_report_marks_the_lab_alarm_in_the_terminal_like_the_live_rule(lab_bundle, tmp_path):
    """`fleet report --rules` runs the collector's own rule after the fact: the terminal shows
    the alert the live collector raised, word for word, not only a flag in JSON and HTML."""
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    path, record = lab_bundle
    name = Bundle.open(path).manifest["name"]
    db = tmp_path / "fleet.db"
    live = Collector.open(db, bundles=[path])
    items = []
    for thing, factor in (("healthy", 1.0), ("slowed", 2.0)):
        items.append(encoded("hello", thing, 1, syn.hello_body(target=TARGET, name=name)))
        bench = {"results": {"fp32": _scaled(record, factor)}}
        items.append(encoded("bench", thing, 2, bench, model_name=name))
    live.process([Received(t, p) for t, p in items])
    raised = [a["message"] for a in live.store.query("SELECT message FROM alerts")]
    live.close()
    assert len(raised) == 1 and "slowed" in raised[0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("lab_regression: {threshold: 0.25}\n")
    res = CliRunner().invoke(
        app, ["fleet", "report", "--db", str(db), "--bundle", str(path), "--rules", str(rules)]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())  # rich wraps long lines
    assert "⚠ lab_regression" in text and " ".join(raised[0].split()) in text
    assert "healthy: fp32" not in text


def test_lab_reads_the_bench_entry_through_the_one_reader(lab_bundle):
    """lab_records is edge_agent.contracts.bench.stored_records on the variant's target entry:
    each record comes with the entry's environment, as tune's device figures read it."""
    path, record = lab_bundle
    bundle = Bundle.open(path)
    bundle.variants["fp32"]["benchmarks"][TARGET]["environment"] = {"lab": "here"}
    entry = bundle.variants["fp32"]["benchmarks"][TARGET]
    got = lab_records(bundle, "fp32", TARGET)
    assert got == stored_records(entry)
    assert [r["environment"] for r in got] == [{"lab": "here"}]
    assert got[0]["latency_ms"] == record["latency_ms"]
    assert lab_records(bundle, "fp32", "rpi4") == []
