"""Selection rules on synthetic points: ties never go to a kind the profile advises against,
a variant that matches no recipe never outranks an accelerator recipe, and --objective size
picks the smallest variant even where nothing can be measured."""

from __future__ import annotations

from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.targets import get_target
from edgekit.toolkit.tune.explain import Point, fmt_ratio
from edgekit.toolkit.tune.gate import VariantInfo
from edgekit.toolkit.tune.space import Candidate, SessionOptions
from edgekit.toolkit.tune.tuner import TuneRequest, _rank_by_profile, choose, tune

CPU = "CPUExecutionProvider"


def _point(name: str, kind: str, size: int, p50: float) -> Point:
    info = VariantInfo(name, kind, kind, size, "accuracy", 0.9, 0.0)
    metrics = {"latency_ms": {"p50": p50, "p99": p50}, "samples_per_s": 1 / p50}
    return Point(Candidate(name, CPU, SessionOptions()), info, metrics, "this machine")


def test_a_tie_does_not_go_to_an_avoided_kind():
    fp32 = _point("fp32", "fp32", 1000, 1.00)
    fp16 = _point("fp16", "fp16", 500, 0.99)  # 1 % faster: noise, and half the size
    picked, _ = choose([fp32, fp16], "latency", None)
    assert picked is fp16  # without advice the smaller file wins the tie
    picked, _ = choose([fp32, fp16], "latency", None, frozenset({"fp16"}))
    assert picked is fp32
    clear = _point("fp16", "fp16", 500, 0.5)  # twice as fast is no tie
    picked, _ = choose([fp32, clear], "latency", None, frozenset({"fp16"}))
    assert picked is clear


class _FakeBundle:
    def __init__(self, variants: dict) -> None:
        self.variants = variants

    def variant(self, name: str) -> dict:
        return self.variants[name]


def _q(method: str, **config) -> dict:
    return {"precision": "int8", "quantization": {"method": method, "config": config}}


def _infos(bundle: _FakeBundle) -> dict[str, VariantInfo]:
    from edgekit.toolkit.tune.variants import variant_kind

    return {
        n: VariantInfo(n, variant_kind(n, v), n, 100, "accuracy", 0.9, 0.0)
        for n, v in bundle.variants.items()
    }


def test_unmatched_int8_does_not_outrank_the_gpu_recipe():
    # per-tensor U8S8 QDQ matches none of the S8S8 per-channel recipes
    odd = _q("static", format="QDQ", activation_type="uint8", weight_type="int8", per_channel=False)
    bundle = _FakeBundle({"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"}, "q": odd})
    jetson = _rank_by_profile(bundle, get_target("jetson-orin"), _infos(bundle))
    assert [(p.candidate.variant, p.candidate.provider) for p in jetson][:2] == [
        ("fp16", "TensorrtExecutionProvider"),
        ("fp32", "CUDAExecutionProvider"),
    ]
    assert (jetson[-1].candidate.variant, jetson[-1].candidate.provider) == ("q", CPU)
    # on a CPU-only target the same variant still ranks by its kind: int8-static first
    rpi4 = _rank_by_profile(bundle, get_target("rpi4"), _infos(bundle))
    assert rpi4[0].candidate.variant == "q" and rpi4[0].candidate.provider == CPU


def test_size_objective_without_measuring(cnn_bundle, copy_bundle, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = copy_bundle(cnn_bundle)
    b = Bundle.open(path)
    b.variant("fp32")["evaluation"] = {"gate": {"metric": "accuracy", "reference": True}}
    small = tmp_path / "dyn.onnx"
    quantize_dynamic(b.variant_path("fp32"), small, weight_type=QuantType.QInt8)
    b.add_variant(
        "int8-dynamic",
        small,
        {
            "precision": "int8",
            "quantization": {"method": "dynamic", "config": {"weight_type": "int8"}},
            "evaluation": {"gate": {"metric": "accuracy", "value": 0.9, "drop": 0.0}},
        },
    )
    b.save()
    ratio = b.variant("fp32")["bytes"] / b.variant("int8-dynamic")["bytes"]
    assert ratio > 1.5
    remote = "jetson-orin"  # never measurable here (TensorRT); it ranks int8-dynamic last
    first = tune(TuneRequest(path, remote, create_missing=False, write=False))
    assert first.mode == "profile" and first.selected.candidate.variant == "fp32"
    busy = tune(TuneRequest(path, remote, "throughput", create_missing=False, write=False))
    assert busy.selected.candidate == first.selected.candidate
    assert any("throughput needs measurements" in n for n in busy.notes)
    result = tune(TuneRequest(path, remote, objective="size", create_missing=False))
    assert result.mode == "profile"
    assert result.selected.candidate.variant == "int8-dynamic"
    assert f"the smallest variant that passes the gate ({fmt_ratio(ratio)}× smaller" in (
        result.reason
    )
    assert manifest_io.read(path)["selection"][remote]["objective"] == "size"
