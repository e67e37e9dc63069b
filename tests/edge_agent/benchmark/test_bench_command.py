"""The agent's bench command: every candidate gets a share of the budget (none skipped because
the first overran its slice), and each record names the settings it was measured with and where
they came from, so tune never has to guess them."""

from __future__ import annotations

from edge_agent.benchmark.command import run_bench
from edge_agent.contracts.bundle import Bundle
from edge_agent.hardware import usable_cpus
from tests.toolkit.tune.test_tune_bundles import _add_variant


def test_every_candidate_is_measured_with_recorded_settings(regression_bundle, copy_bundle):
    path = copy_bundle(regression_bundle)
    _add_variant(path, "candidate")
    bundle = Bundle.open(path)
    body = run_bench(bundle, {"budget_s": 3}, {"intra_op_num_threads": 1})
    assert body["error"] is None
    assert sorted(body["results"]) == ["candidate", "fp32"]
    for rec in body["results"].values():
        assert rec["latency_ms"]["p50"] > 0, rec  # measured, not "time budget used up"
        assert rec["threads"] == 1 and rec["session_options"]["intra_op_num_threads"] == 1
        assert rec["settings_from"] == "deployed selection"


def test_settings_when_nothing_is_deployed_or_asked(regression_bundle):
    bundle = Bundle.open(regression_bundle)
    rec = run_bench(bundle, {"budget_s": 1, "variants": ["fp32"]})["results"]["fp32"]
    assert rec["threads"] == usable_cpus() and rec["settings_from"].startswith("usable CPUs")
    asked = run_bench(bundle, {"budget_s": 1, "variants": ["fp32"], "threads": 1}, {})
    assert asked["results"]["fp32"]["settings_from"] == "command"


def test_unknown_variant_is_an_error_naming_the_shipped_ones(regression_bundle):
    body = run_bench(Bundle.open(regression_bundle), {"variants": ["int8-dynamic"]})
    assert "int8-dynamic" in body["error"] and "fp32" in body["error"]
    assert body["results"] == {}


def test_a_command_the_device_cannot_afford_is_an_error_not_a_run(regression_bundle):
    """A `bench` command with batch 10**8 tiled the samples into 10**8 rows on the device (the
    agent's memory), 10**5 threads asked onnxruntime for them, a NaN budget measured nothing
    and answered as if it had, and `variants: [{}]` failed with no reply (found by
    tryhostile)."""
    bundle = Bundle.open(regression_bundle)
    for bad in (
        {"batch": 10**8},
        {"batch": 0},
        {"threads": 10**5},
        {"threads": -1},
        {"budget_s": "nan"},
        {"budget_s": -5},
    ):
        body = run_bench(bundle, bad)
        assert "must be within" in body["error"] and body["results"] == {}, bad
    odd = run_bench(bundle, {"variants": [{}]})
    assert odd["error"] == "variants must be a list of variant names"
