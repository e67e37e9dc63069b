"""`--method auto` picks from measured quality: per-channel weights for attention models, then
the embedding Gather and the most sensitive MatMuls kept in float, each candidate judged by the
evaluate gate on the samples (pooled cosine for an encoder) and timed; the fastest that passes
is kept, and every try is recorded."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle, sensitivity

NO_VNNI_X86 = {
    "platform": {"os": "linux", "architecture": "amd64"},
    "cpu": {"model": "old xeon", "features": {"avx2": True, "avx512_vnni": False}},
}


def test_attention_model_gets_per_channel_even_without_vnni(copy_bundle, encoder_bundle):
    """The old rule gave per-tensor weights with reduce_range here (cosine 0.883 on MiniLM)."""
    path = copy_bundle(encoder_bundle)
    result = quantize_bundle(path, QuantizeRequest(method="auto", hardware=NO_VNNI_X86))
    q = result.entry["quantization"]
    assert q["method"] == "dynamic" and q["config"]["per_channel"] is True
    found = q["auto"]["search"]
    assert found["gate"]["read_from"].startswith("mean pooling of last_hidden_state")
    first = found["tried"][0]
    assert first["label"] == "per-channel weights" and first["passed"]
    assert found["chosen"] == "per-channel weights"
    # another machine's profile: nothing is timed here, and no fusion is kept untimed
    assert "latency_ms" not in first
    assert found["graph_fusion"]["applied"] is False


def test_when_nothing_passes_the_most_accurate_is_kept_and_said(copy_bundle, encoder_bundle):
    path = copy_bundle(encoder_bundle)
    result = quantize_bundle(path, QuantizeRequest(method="auto", max_drop=0.0))
    found = result.entry["quantization"]["auto"]["search"]
    labels = [t["label"] for t in found["tried"]]
    assert labels[0] == "per-channel weights"
    assert "per-channel, embedding Gather in float" in labels
    assert any("most sensitive MatMuls in float" in label for label in labels)
    assert not any(t.get("passed") for t in found["tried"])
    best = max((t for t in found["tried"] if "error" not in t), key=lambda t: t["cosine_mean"])
    assert found["chosen"] == best["label"]
    assert "no candidate passes the gate" in found["why"]
    assert all(t["latency_ms"] > 0 for t in found["tried"] if "error" not in t)  # timed here
    config = result.entry["quantization"]["config"]
    assert any("MatMuls 8-bit blockwise" in label for label in labels)
    assert len(config["nodes_to_exclude"]) == best["excluded_nodes"]
    assert len(config["blockwise_nodes"]) == best["blockwise_nodes"]
    if best["blockwise_nodes"]:
        model = onnx.load(str(Bundle.open(path).variant_path(result.variant)))
        ops = [n.op_type for n in model.graph.node]
        assert ops.count("MatMulNBits") == best["blockwise_nodes"]
    # the file in the bundle is the chosen candidate: its pooled cosine is the recorded one
    assert Bundle.open(path).variant(result.variant)["sha256"]


def test_quantize_refuses_a_negative_max_drop(copy_bundle, encoder_bundle):
    import pytest

    from edge_agent.errors import BadInputError

    with pytest.raises(BadInputError, match="`max_drop`"):  # the CLI maps it to --max-drop
        quantize_bundle(copy_bundle(encoder_bundle), QuantizeRequest(method="auto", max_drop=-1))


def _two_matmuls(path):
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["y1"], name="plain"),
        helper.make_node("Mul", ["x", "spike"], ["xs"], name="spiky_input"),
        helper.make_node("MatMul", ["xs", "w2"], ["y2"], name="outlier"),
    ]
    spike = np.ones(16, np.float32)
    spike[3] = 500.0  # one outlier feature stretches the activation range ...
    w2 = rng.normal(size=(16, 8)).astype(np.float32)
    w2[3] /= 500.0  # ... while the output still rests on the ordinary features
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, ["n", 8]),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["n", 8]),
        ],
        [
            numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "w1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(spike, "spike"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_sensitivity_ranks_the_matmul_with_an_outlier_input_first(tmp_path):
    path = tmp_path / "m.onnx"
    _two_matmuls(path)
    x = np.random.default_rng(1).normal(size=(32, 16)).astype(np.float32)
    ranked = sensitivity.rank(path, {"x": x})
    assert [n for n, _ in ranked] == ["outlier", "plain"]
    assert ranked[0][1] > 5 * ranked[1][1]
