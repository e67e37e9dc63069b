"""The benchmark run over real bundles: variant selection, providers, native baseline,
scenarios, and results stored in the manifest."""

from __future__ import annotations

import pytest

from edge_agent.benchmark import TimingConfig, record_problems
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError
from edgekit.toolkit.bench import providers
from edgekit.toolkit.bench.engine import BenchPlan, run_bench
from edgekit.toolkit.bench.store import csv_text, save_to_manifest
from edgekit.toolkit.bench.sut import IOBindingSUT, OnnxSUT, onnx_sut

FAST = TimingConfig(duration_s=0.09, warmup_iterations=3)


def _with_rejected(copy_bundle, src) -> Bundle:
    path = copy_bundle(src)
    bundle = Bundle.open(path)
    bundle.add_variant(
        "int8-bad", bundle.variant_path("fp32"), {"precision": "int8", "source_variant": "fp32"}
    )
    bundle.variants["int8-bad"].update(rejected=True, reject_reason="accuracy gate: r2 dropped 0.2")
    bundle.save()
    return Bundle.open(path)


def test_rejected_variant_is_skipped_unless_asked(copy_bundle, regression_bundle) -> None:
    bundle = _with_rejected(copy_bundle, regression_bundle)
    run = run_bench(bundle.path, BenchPlan(timing=FAST, native=False))
    assert {r["variant"] for r in run.records} == {"fp32"}
    skip = [s for s in run.skipped if s["what"] == "int8-bad"]
    assert skip and "rejected" in skip[0]["reason"] and "--include-rejected" in skip[0]["reason"]

    run = run_bench(bundle.path, BenchPlan(timing=FAST, native=False, include_rejected=True))
    assert {r["variant"] for r in run.records} == {"fp32", "int8-bad"}

    # naming it is asking for it
    run = run_bench(bundle.path, BenchPlan(variants=["int8-bad"], timing=FAST, native=False))
    assert {r["variant"] for r in run.records} == {"int8-bad"} and not run.skipped


def test_unknown_variant_is_bad_input(regression_bundle) -> None:
    with pytest.raises(BadInputError, match="no variant"):
        run_bench(regression_bundle, BenchPlan(variants=["nope"], timing=FAST))


def test_unknown_and_missing_providers_are_skipped_with_a_reason(regression_bundle) -> None:
    plan = BenchPlan(providers=["cpu", "warpdrive", "cuda"], timing=FAST, native=False)
    run = run_bench(regression_bundle, plan)
    assert [r["provider"] for r in run.records] == ["CPUExecutionProvider"]
    reasons = {s["what"]: s["reason"] for s in run.skipped}
    assert "unknown execution provider" in reasons["warpdrive"]
    assert "not available" in reasons["CUDAExecutionProvider"]
    assert "onnxruntime-gpu" in reasons["CUDAExecutionProvider"]
    with pytest.raises(BadInputError, match="none of the requested"):
        run_bench(regression_bundle, BenchPlan(providers=["cuda"], timing=FAST))


def test_all_providers_skips_the_remote_only_one() -> None:
    wanted, skipped = providers.resolve(["all"])
    assert "CPUExecutionProvider" in wanted and "AzureExecutionProvider" not in wanted
    if "AzureExecutionProvider" in providers.available():
        assert any("remote" in s.reason for s in skipped)


def test_device_memory_providers_use_io_binding() -> None:
    assert (
        onnx_sut("CUDAExecutionProvider", model=None, signature_inputs=[], variant="v").__class__
        is IOBindingSUT
    )
    assert (
        onnx_sut(
            "TensorrtExecutionProvider", model=None, signature_inputs=[], variant="v"
        ).__class__
        is IOBindingSUT
    )
    assert (
        onnx_sut("CPUExecutionProvider", model=None, signature_inputs=[], variant="v").__class__
        is OnnxSUT
    )


def test_native_sklearn_baseline_and_manifest_storage(copy_bundle, regression_bundle) -> None:
    path = copy_bundle(regression_bundle)
    run = run_bench(path, BenchPlan(timing=FAST, threads=[1], batches=[1, 4], trust_code=True))
    systems = {(r["system"], r["batch"]) for r in run.records}
    assert systems == {
        ("onnxruntime", 1),
        ("onnxruntime", 4),
        ("native:sklearn", 1),
        ("native:sklearn", 4),
    }
    for r in run.records:
        assert record_problems(r) == []
        if r["system"] == "onnxruntime":
            assert r["vs_native"]["p50_speedup"] > 0
    assert run.environment["onnxruntime"] and run.environment["cpu_model"]
    assert "avx2" in run.environment["isa"] or run.environment["isa"] is not None

    assert save_to_manifest(run, "local") == ["fp32"]
    stored = Bundle.open(path).variants["fp32"]["benchmarks"]["local"]
    assert [r["batch"] for r in stored["scenarios"]["single-stream"]] == [1, 4]
    env = stored["environment"]
    for key in (
        "cpu_model",
        "isa",
        "usable_cores",
        "memory_bytes",
        "os",
        "python",
        "onnxruntime",
        "providers",
    ):
        assert env[key], key
    # a second run with other threads merges instead of replacing
    run2 = run_bench(path, BenchPlan(timing=FAST, threads=[2], batches=[1], native=False))
    save_to_manifest(run2, "local")
    manifest = Bundle.open(path).manifest
    configs = {
        (r["threads"], r["batch"])
        for r in manifest["variants"]["fp32"]["benchmarks"]["local"]["scenarios"]["single-stream"]
    }
    assert configs == {(1, 1), (1, 4), (2, 1)}
    assert manifest["history"][-1]["stage"] == "bench"
    assert csv_text(run.records).count("\n") == 5  # header + 4 rows


def test_native_torch_baseline_runs_eagerly(cnn_bundle) -> None:
    run = run_bench(cnn_bundle, BenchPlan(timing=FAST, batches=[2], trust_code=True))
    native = [r for r in run.records if r["system"] == "native:torch"]
    assert native, run.skipped
    assert "inference_mode" in native[0]["providers_in_use"][0]


def test_onnx_source_has_no_native_baseline(copy_bundle, regression_bundle) -> None:
    path = copy_bundle(regression_bundle)
    bundle = Bundle.open(path)
    bundle.manifest["lineage"]["framework"] = "onnx"
    bundle.save()
    run = run_bench(path, BenchPlan(timing=FAST))
    assert all(r["system"] == "onnxruntime" for r in run.records)
    assert any(
        s["what"] == "native baseline" and "already an ONNX" in s["reason"] for s in run.skipped
    )


def test_multi_stream_offline_and_server_scenarios(regression_bundle) -> None:
    ms = run_bench(regression_bundle, BenchPlan(scenario="multi-stream", timing=FAST, native=False))
    (r,) = ms.records
    assert r["batch"] == 8 and r["headline"]["name"] == "p99 latency"
    assert r["throughput"]["samples_per_s"] == pytest.approx(8 * r["throughput"]["queries_per_s"])

    off = run_bench(
        regression_bundle, BenchPlan(scenario="offline", batches=[1, 16], timing=FAST, native=False)
    )
    assert [r["batch"] for r in off.records] == [1, 16]
    best = [r for r in off.records if r["scenario_result"]["is_best"]]
    assert len(best) == 1
    assert best[0]["throughput"]["samples_per_s"] == max(
        r["throughput"]["samples_per_s"] for r in off.records
    )
    assert best[0]["headline"]["unit"] == "samples/s"

    srv = run_bench(
        regression_bundle,
        BenchPlan(
            scenario="server", qps=300, workers=2, timing=TimingConfig(duration_s=0.3), native=False
        ),
    )
    (s,) = srv.records
    assert s["scenario_result"]["target_qps"] == 300 and s["scenario_result"]["issued"] > 0

    with pytest.raises(BadInputError, match="needs a load"):
        BenchPlan(scenario="server")


def test_io_binding_path_runs_and_times_copies_apart(regression_bundle) -> None:
    """The GPU path (inputs bound before timing, outputs left bound, copies timed apart) on
    CPU memory: the same onnxruntime calls, so it runs here."""
    import numpy as np

    bundle = Bundle.open(regression_bundle)
    sut = IOBindingSUT(
        model=bundle.variant_path("fp32"),
        signature_inputs=bundle.signature["inputs"],
        variant="fp32",
        samples=bundle.sample_inputs(),
        sets=3,
    ).open()
    sets = sut.input_sets(4)
    assert len(sets) == 3
    for query in sets.feeds:
        sut.run(query)
        bound = query.binding.copy_outputs_to_cpu()[0]
        direct = sut.session.run(None, query.host_feed)[0]
        np.testing.assert_allclose(bound, direct, rtol=1e-6)
    copies = sut.copies(sets, repeats=5)
    assert copies["host_to_device_ms"]["count"] == 5 and copies["device_to_host_ms"]["p50"] >= 0
    assert copies["input_bytes"] == sum(a.nbytes for a in sets.feeds[0].host_feed.values())
