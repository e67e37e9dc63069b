"""Activation smoothing (edgekit.toolkit.quantize.smoothing): a model whose MatMul input has one
outlier feature loses its output under dynamic int8 (one per-tensor activation range), with
per-tensor and per-channel weights alike; smoothing leaves FP32 unchanged, repairs the int8
error, and `--method auto` finds it by measuring, recording what it did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from edge_agent.contracts.bundle import Bundle
from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.export.exporters import ExportOptions
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle, smoothing


def _outlier_model(path: Path) -> None:
    """y = (x * spike) @ W: feature 3 is 500x the others, and W's row 3 is 500x smaller, so the
    output rests on the ordinary features that a shared activation range crushes."""
    rng = np.random.default_rng(0)
    spike = np.ones(16, np.float32)
    spike[3] = 500.0
    w = rng.normal(size=(16, 8)).astype(np.float32)
    w[3] /= 500.0
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "spike"], ["xs"], name="spiky_input"),
            helper.make_node("MatMul", ["xs", "w"], ["y"], name="outlier"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(spike, "spike")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _rel_error(path: Path, ref: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm(_run(path, x) - ref) / np.linalg.norm(ref))


def test_smoothing_keeps_fp32_and_repairs_dynamic_int8(tmp_path: Path) -> None:
    src, smoothed = tmp_path / "m.onnx", tmp_path / "smoothed.onnx"
    _outlier_model(src)
    x = np.random.default_rng(1).normal(size=(64, 16)).astype(np.float32)
    done = smoothing.smooth(src, smoothed, {"x": x}, alpha=0.5)
    assert done["activations_smoothed"] == 1 and done["alpha"] == 0.5
    ref = _run(src, x)
    np.testing.assert_allclose(_run(smoothed, x), ref, rtol=1e-4, atol=1e-4)  # FP32 unchanged
    plain, fixed = tmp_path / "plain-int8.onnx", tmp_path / "smoothed-int8.onnx"
    for a, b in ((src, plain), (smoothed, fixed)):
        quantize_dynamic(a, b, per_channel=True, weight_type=QuantType.QInt8)
    before, after = _rel_error(plain, ref, x), _rel_error(fixed, ref, x)
    assert before > 0.2  # the outlier crushes the ordinary features
    assert after < 0.05 and after < before / 5


def test_smoothing_leaves_a_weight_shared_with_another_node_alone(tmp_path: Path) -> None:
    src, out = tmp_path / "m.onnx", tmp_path / "s.onnx"
    _outlier_model(src)
    model = onnx.load(src)
    model.graph.node.append(helper.make_node("Identity", ["w"], ["w_copy"], name="tied"))
    model.graph.output.append(helper.make_tensor_value_info("w_copy", TensorProto.FLOAT, [16, 8]))
    onnx.save(model, src)
    x = np.random.default_rng(1).normal(size=(8, 16)).astype(np.float32)
    done = smoothing.smooth(src, out, {"x": x}, alpha=0.5)
    assert done["activations_smoothed"] == 0 and done["skipped_shared_weights"] == 1


def test_auto_finds_smoothing_when_per_channel_fails_the_gate(tmp_path: Path) -> None:
    src, data = tmp_path / "m.onnx", tmp_path / "x.npy"
    _outlier_model(src)
    np.save(data, np.random.default_rng(2).normal(size=(128, 16)).astype(np.float32))
    bundle = tmp_path / "bundle"
    export_bundle(
        ExportRequest(
            source=str(src), data=data, output=bundle, options=ExportOptions(task="regression")
        )
    )
    result = quantize_bundle(bundle, QuantizeRequest(method="auto", max_drop=0.005))
    q = result.entry["quantization"]
    found = q["auto"]["search"]
    tried = {t["label"]: t for t in found["tried"]}
    assert tried["per-channel weights"]["passed"] is False  # measured, not assumed
    assert found["chosen"].startswith("per-channel, activations smoothed (alpha")
    assert tried[found["chosen"]]["passed"] and tried[found["chosen"]]["smooth_alpha"] > 0
    assert q["smoothing"]["activations_smoothed"] == 1
    variant = Bundle.open(bundle).variant_path(result.variant)
    assert any(n.name.endswith("_smooth") for n in onnx.load(str(variant)).graph.node)
