"""The Gemm -> MatMul + Add rewrite leaves the float results as they were."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.quantize.gemm import gemm_to_matmul


def test_rewrite_is_exact(mlp_bundle, tmp_path):
    bundle = Bundle.open(mlp_bundle)
    model = onnx.load(str(bundle.variant_path("fp32")))
    before = sum(n.op_type == "Gemm" for n in model.graph.node)
    assert before == 3
    assert gemm_to_matmul(model) == 3
    assert not any(n.op_type == "Gemm" for n in model.graph.node)
    onnx.checker.check_model(model)
    path = tmp_path / "rewritten.onnx"
    onnx.save(model, str(path))
    x = bundle.sample_inputs()["input"]
    ref = ort.InferenceSession(str(bundle.variant_path("fp32"))).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


def test_skipped_nodes_stay_gemm(mlp_bundle):
    model = onnx.load(str(Bundle.open(mlp_bundle).variant_path("fp32")))
    first = next(n.name for n in model.graph.node if n.op_type == "Gemm")
    assert gemm_to_matmul(model, skip_nodes={first}) == 2
    assert [n.name for n in model.graph.node if n.op_type == "Gemm"] == [first]
