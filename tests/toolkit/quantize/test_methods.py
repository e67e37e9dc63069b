"""Each method on a CNN, a torch MLP and a scikit-learn tabular pipeline: the new variant is in
the manifest with its settings, verifies, loads in onnxruntime and was compared with FP32."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle
from tests.probe_cpu import hardware_defaults

# the precision expected with full-range signed INT8; an explicit static run on an x86 CPU without
# VNNI takes uint8 activations from the probe unless the case sets them (see _expected_precision)
CASES = [
    ("cnn_bundle", "dynamic", {}, "int8-dynamic", "int8"),
    ("cnn_bundle", "static", {"per_channel": True}, "int8-static", "int8"),
    (
        "cnn_bundle",
        "static",
        {"format": "qoperator", "calibrate": "percentile"},
        "int8-static-qop",
        "int8",
    ),
    ("cnn_bundle", "fp16", {}, "fp16", "fp16"),
    ("mlp_bundle", "dynamic", {}, "int8-dynamic", "int8"),
    ("mlp_bundle", "static", {"calibrate": "entropy"}, "int8-static", "int8"),
    ("mlp_bundle", "fp16", {}, "fp16", "fp16"),
    ("tabular_bundle", "dynamic", {}, "int8-dynamic", "int8"),
    (
        "tabular_bundle",
        "static",
        {"activation_type": "uint8", "weight_type": "uint8"},
        "int8-static",
        "uint8",
    ),
    ("tabular_bundle", "fp16", {}, "fp16", "fp16"),
]


def _expected_precision(method: str, options: dict, precision: str) -> str:
    """What the manifest must say on this CPU: the probe's hardware defaults fill in the types
    the case left out, and unequal activation and weight types are 'mixed'."""
    if method != "static":
        return precision
    types = {**hardware_defaults(method), **options}
    act, weights = types.get("activation_type", "int8"), types.get("weight_type", "int8")
    return weights if act == weights else "mixed"


@pytest.mark.parametrize(("fixture", "method", "options", "name", "precision"), CASES)
def test_method_adds_a_checked_variant(
    request, copy_bundle, fixture, method, options, name, precision
):
    path = copy_bundle(request.getfixturevalue(fixture))
    result = quantize_bundle(path, QuantizeRequest(method=method, options=options))
    assert result.variant == name

    bundle = Bundle.open(path)  # the manifest validates against its schema
    bundle.verify()
    entry = bundle.variant(name)
    assert entry["precision"] == _expected_precision(method, options, precision)
    for key, value in hardware_defaults(method).items():
        if key not in options and method != "fp16":
            assert entry["quantization"]["config"][key] == value  # the probe's defaults
    assert entry["source_variant"] == "fp32"
    q = entry["quantization"]
    assert q["method"] == method
    for key, value in options.items():
        assert q["config"][key] == value
    model = onnx.load(str(bundle.variant_path(name)))
    ops = {n.op_type for n in model.graph.node}
    if method == "fp16":
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        # float32 in and out, so callers feed the same arrays as to FP32
        assert [i.type.tensor_type.elem_type for i in model.graph.input] == [
            i.type.tensor_type.elem_type
            for i in onnx.load(str(bundle.variant_path("fp32"))).graph.input
        ]
    elif method == "dynamic":
        assert "DynamicQuantizeLinear" in ops
        assert q["preprocess"]["applied"]
    else:
        expected = "QLinearConv" if options.get("format") == "qoperator" else "QuantizeLinear"
        assert expected in ops
        assert q["calibration"]["kind"] == "samples"
        assert q["calibration"]["rows"] >= 32

    parity = entry["parity"]
    assert parity["passed"] and parity["reference"] == "fp32" and parity["rows"] > 0
    session = ort.InferenceSession(
        str(bundle.variant_path(name)), providers=["CPUExecutionProvider"]
    )
    assert {o.name for o in session.get_outputs()} == {
        o["name"] for o in bundle.signature["outputs"]
    }
    if fixture != "tabular_bundle" and method != "fp16":
        assert q["size_ratio"] < 0.6  # INT8 weights are a quarter of FP32, plus scales
    if fixture == "cnn_bundle":
        assert parity["label_agreement"] >= 0.9
    assert bundle.manifest["history"][-1]["stage"] == "quantize"


def test_torch_dynamo_export_skips_symbolic_shape_inference(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    result = quantize_bundle(path, QuantizeRequest(method="dynamic"))
    pre = result.entry["quantization"]["preprocess"]
    assert pre["applied"] and pre["options"] == {"skip_symbolic_shape": True}
    assert "dynamo" in pre["attempts"][0]["skipped"]


def test_torch_linear_layers_are_quantized_by_dynamic(copy_bundle, mlp_bundle):
    """The exporter writes Linear as Gemm, which the dynamic quantizer cannot handle."""
    result = quantize_bundle(copy_bundle(mlp_bundle), QuantizeRequest(method="dynamic"))
    q = result.entry["quantization"]
    assert q["gemm_rewritten"]["count"] == 3
    assert (
        q["quantized_ops"].get("MatMulInteger", 0)
        + q["quantized_ops"].get("DynamicQuantizeMatMul", 0)
        >= 3
    )


def test_excluded_nodes_and_op_types_stay_float(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    fp32 = onnx.load(str(Bundle.open(path).variant_path("fp32")))
    result = quantize_bundle(
        path, QuantizeRequest(method="static", options={"op_types_to_exclude": ["Gemm"]})
    )
    model = onnx.load(str(Bundle.open(path).variant_path(result.variant)))
    assert sum(n.op_type == "Gemm" for n in model.graph.node) == sum(
        n.op_type == "Gemm" for n in fp32.graph.node
    )
    assert result.entry["quantization"]["config"]["op_types_to_exclude"] == ["Gemm"]


def test_existing_name_needs_replace(copy_bundle, cnn_bundle):
    from edge_agent.errors import BundleError

    path = copy_bundle(cnn_bundle)
    quantize_bundle(path, QuantizeRequest(method="fp16"))
    with pytest.raises(BundleError, match="already has a variant"):
        quantize_bundle(path, QuantizeRequest(method="fp16"))
    quantize_bundle(path, QuantizeRequest(method="fp16", replace=True))
    Bundle.open(path).verify()
