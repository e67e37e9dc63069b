"""`--method auto`: the choice follows the model's operators and the hardware profile."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError
from edge_agent.hardware import probe
from edgekit.toolkit.quantize import QuantizeRequest, auto, graph, quantize_bundle

VNNI_X86 = {
    "platform": {"os": "linux", "architecture": "amd64"},
    "cpu": {"model": "test", "features": {"avx2": True, "avx512f": True, "avx512_vnni": True}},
}
NO_VNNI_X86 = {
    "platform": {"os": "linux", "architecture": "amd64"},
    "cpu": {
        "model": "old xeon",
        "features": {"avx2": True, "avx512f": False, "avx512_vnni": False},
    },
}
ARM = {
    "platform": {"os": "linux", "architecture": "aarch64"},
    "cpu": {"model": "cortex-a72", "features": {"neon": True}},
}


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(
        np.random.default_rng(0).normal(size=shape).astype(np.float32), name
    )


def conv_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    g = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 8, 8])],
        [_w("w1", 8, 3, 3, 3), _w("w2", 4, 8, 3, 3)],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def attention_model(mask_value: float = float(np.finfo(np.float32).min)) -> onnx.ModelProto:
    """q = x·Wq, k = x·Wk, softmax(q·kᵀ + mask)·x: two MatMuls of activations and a Softmax."""
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="q"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
        helper.make_node("Mul", ["m", "minval"], ["madd"], name="mask"),
        helper.make_node("Add", ["s", "madd"], ["sm"], name="masked"),
        helper.make_node("Softmax", ["sm"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "x"], ["y"], name="context"),
    ]
    g = helper.make_graph(
        nodes,
        "attn",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6, 16]),
            helper.make_tensor_value_info("m", TensorProto.FLOAT, ["n", 1, 6]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6, 16])],
        [
            _w("wq", 16, 16),
            _w("wk", 16, 16),
            numpy_helper.from_array(np.array(mask_value, np.float32), "minval"),
        ],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def dense_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        [_w("w1", 16, 8), _w("b1", 16), _w("w2", 2, 16), _w("b2", 2)],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_model_gets_static_qdq_per_channel_s8s8_with_vnni():
    choice = auto.choose(graph.analyse(conv_model()), VNNI_X86)
    assert choice.method == "static"
    assert choice.options == {
        "format": "qdq",
        "calibrate": "minmax",
        "per_channel": True,
        "activation_type": "int8",
        "weight_type": "int8",
    }
    assert any("convolutional" in r for r in choice.reasons)
    assert any("S8S8" in r for r in choice.reasons)


def test_attention_model_gets_dynamic_and_the_mask_is_noticed():
    info = graph.analyse(attention_model())
    assert info.kind == "attention"
    assert info.extreme_constants == ["mask"]
    choice = auto.choose(info, VNNI_X86)
    assert choice.method == "dynamic"
    assert "reduce_range" not in choice.options
    assert any("additive masks" in r for r in choice.reasons)


def test_dense_model_gets_dynamic():
    choice = auto.choose(graph.analyse(dense_model()), VNNI_X86)
    assert choice.method == "dynamic" and graph.analyse(dense_model()).kind == "dense"


def test_no_vnni_x86_uses_reduce_range_and_unsigned_activations():
    conv = auto.choose(graph.analyse(conv_model()), NO_VNNI_X86)
    assert conv.method == "static"
    assert conv.options["reduce_range"] is True
    assert conv.options["activation_type"] == "uint8" and conv.options["weight_type"] == "int8"
    assert any("without VNNI" in r for r in conv.reasons)
    dense = auto.choose(graph.analyse(dense_model()), NO_VNNI_X86)
    assert dense.method == "dynamic" and dense.options == {"reduce_range": True}
    assert conv.hardware["vnni"] is False and conv.hardware["x86"] is True


def test_arm_uses_signed_types_without_reduce_range():
    choice = auto.choose(graph.analyse(conv_model()), ARM)
    assert choice.options["activation_type"] == "int8"
    assert "reduce_range" not in choice.options


def test_conv_model_with_a_float_min_mask_avoids_static():
    model = copy.deepcopy(conv_model())
    model.graph.initializer.append(
        numpy_helper.from_array(np.array(-np.inf, np.float32), "neg_inf")
    )
    model.graph.node.append(helper.make_node("Max", ["y", "neg_inf"], ["y2"], name="clamp"))
    model.graph.output[0].name = "y2"
    choice = auto.choose(graph.analyse(model), VNNI_X86)
    assert choice.method == "dynamic"
    assert any("crush" in r for r in choice.reasons)


def test_tree_and_empty_models_are_refused():
    info = graph.GraphInfo()
    info.ops.update({"TreeEnsembleClassifier": 1})
    with pytest.raises(BadInputError, match="tree ensemble"):
        auto.choose(info, VNNI_X86)
    info = graph.GraphInfo()
    info.ops.update({"LinearRegressor": 1})
    with pytest.raises(BadInputError, match="no operator"):
        auto.choose(info, VNNI_X86)


def test_the_local_probe_is_a_valid_profile():
    choice = auto.choose(graph.analyse(conv_model()), probe())
    assert choice.hardware["architecture"] == probe()["platform"]["architecture"]


def test_auto_on_bundles_records_its_reasoning(copy_bundle, cnn_bundle, mlp_bundle):
    cnn = quantize_bundle(
        copy_bundle(cnn_bundle, "cnn"), QuantizeRequest(method="auto", hardware=NO_VNNI_X86)
    )
    q = cnn.entry["quantization"]
    assert q["method"] == "static" and q["requested"] == "auto"
    assert q["config"]["per_channel"] and q["config"]["reduce_range"]
    assert q["config"]["activation_type"] == "uint8"
    assert q["auto"]["hardware"]["vnni"] is False and q["auto"]["reasons"]

    mlp_path = copy_bundle(mlp_bundle, "mlp")
    offered = mlp_path.parent / "calib.npz"
    np.savez(offered, **Bundle.open(mlp_path).sample_inputs())
    mlp = quantize_bundle(
        mlp_path,
        QuantizeRequest(
            method="auto", hardware=VNNI_X86, options={"per_channel": True}, calibration=offered
        ),
    )
    q = mlp.entry["quantization"]
    assert q["method"] == "dynamic" and q["config"]["per_channel"] is True
    assert q["auto"]["overridden_by_user"] == {"per_channel": True}
    # a calibration file offered to auto is not an error when auto needs none
    assert q["calibration"] is None and "unused" in q["auto"]["reasons"][-1]
