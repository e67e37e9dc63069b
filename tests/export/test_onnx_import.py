"""An existing .onnx file as a bundle: checked with onnx.checker and strict shape inference,
parity between onnxruntime without and with graph optimisations; broken files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_helpers import run_export, run_onnx
from onnx import TensorProto, helper, numpy_helper

from edge_agent.errors import BadInputError
from edgekit.export.exporters import ExportOptions


def _linear_model(weight_rows: int = 4, declared_in: int = 4) -> onnx.ModelProto:
    """y = relu(x @ W + b): x [batch, 4] -> y [batch, 3]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(weight_rows, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", declared_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(1).normal(size=(250, 4)).astype(np.float32))
    return path


def test_import_an_onnx_file(data: Path, tmp_path: Path):
    source = tmp_path / "model.onnx"
    onnx.save(_linear_model(), source)
    bundle, report = run_export(
        source, data, tmp_path / "b", options=ExportOptions(task="regression")
    )
    assert report["passed"] and report["rows"] == 250
    assert report["reference"] == "onnxruntime (optimisations off)"
    assert bundle.manifest["lineage"]["framework"] == "onnx"
    assert bundle.manifest["lineage"]["source"]["kind"] == "onnx"
    assert bundle.signature["inputs"] == [
        {"name": "x", "dtype": "float32", "shape": ["batch", 4], "role": "features"}
    ]
    assert bundle.variant("fp32")["opset"] == 17
    x = np.load(data)
    w = numpy_helper.to_array(_linear_model().graph.initializer[0])
    b = numpy_helper.to_array(_linear_model().graph.initializer[1])
    np.testing.assert_allclose(
        run_onnx(bundle.variant_path("fp32"), {"x": x})["y"],
        np.maximum(x @ w + b, 0),
        atol=1e-5,
    )


def test_reexport_a_bundles_own_onnx_file(regression_bundle: Path, regression_data: Path, tmp_path):
    bundle, report = run_export(
        regression_bundle / "fp32.onnx", regression_data, tmp_path / "b", target_column="target"
    )
    assert report["passed"]
    assert bundle.signature["inputs"][0]["name"] == "X"


def test_a_graph_the_checker_rejects_is_refused(data: Path, tmp_path: Path):
    model = _linear_model()
    model.graph.node[1].input[0] = "nowhere"  # an input no node produces
    source = tmp_path / "broken.onnx"
    onnx.save(model, source)
    with pytest.raises(BadInputError, match="the ONNX model is invalid"):
        run_export(source, data, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_shapes_that_do_not_fit_are_refused(data: Path, tmp_path: Path):
    source = tmp_path / "shapes.onnx"
    onnx.save(_linear_model(weight_rows=5), source)  # [batch, 4] @ [5, 3]
    with pytest.raises(BadInputError, match="invalid"):
        run_export(source, data, tmp_path / "b")


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", b"\x08\x07garbage" * 9])
def test_a_file_that_is_not_onnx_is_refused(content: bytes, data: Path, tmp_path: Path):
    source = tmp_path / "fake.onnx"
    source.write_bytes(content)
    with pytest.raises(BadInputError, match="not an ONNX model"):
        run_export(source, data, tmp_path / "b")


def test_data_of_the_wrong_width_is_refused(tmp_path: Path):
    source = tmp_path / "model.onnx"
    onnx.save(_linear_model(), source)
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((10, 6), np.float32))
    with pytest.raises(BadInputError, match="row shape \\[6\\]; the model wants \\[4\\]"):
        run_export(source, wide, tmp_path / "b")


def test_external_data_is_refused(data: Path, tmp_path: Path):
    source = tmp_path / "ext.onnx"
    onnx.save(
        _linear_model(),
        source,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    with pytest.raises(BadInputError, match="external data"):
        run_export(source, data, tmp_path / "b")


def _fixed_batch_model(reshape_to_one: bool) -> onnx.ModelProto:
    """x [1, 4] -> y [1, 3], as Keras/tf2onnx exports often fix the batch; with
    ``reshape_to_one`` the graph also bakes the 1 into a Reshape (it cannot take more rows)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")]
    nodes = [helper.make_node("MatMul", ["input_1:0", "W"], ["xw"])]
    if reshape_to_one:
        inits.append(numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "S"))
        nodes.append(helper.make_node("Reshape", ["xw", "S"], ["y:0"]))
    else:
        nodes.append(helper.make_node("Relu", ["xw"], ["y:0"]))
    graph = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y:0", TensorProto.FLOAT, [1, 3])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_a_batch_fixed_at_one_is_made_symbolic_when_the_graph_allows(data: Path, tmp_path: Path):
    source = tmp_path / "fixed.onnx"
    onnx.save(_fixed_batch_model(reshape_to_one=False), source)
    bundle, report = run_export(source, data, tmp_path / "b")
    assert report["passed"] and report["rows"] == 250
    assert bundle.signature["inputs"][0]["shape"] == ["batch", 4]
    assert bundle.signature["outputs"][0]["shape"] == ["batch", 3]
    assert any("batch dimension made symbolic" in n for n in bundle.manifest["lineage"]["notes"])
    x = np.load(data)
    got = run_onnx(bundle.path / "fp32.onnx", {"input_1:0": x})["y:0"]
    assert got.shape == (250, 3)


def test_a_batch_baked_into_the_graph_is_refused_with_the_reason(data: Path, tmp_path: Path):
    source = tmp_path / "baked.onnx"
    onnx.save(_fixed_batch_model(reshape_to_one=True), source)
    with pytest.raises(BadInputError, match="batch dimension is fixed at 1") as info:
        run_export(source, data, tmp_path / "b")
    assert "cannot take more rows" in info.value.message
    assert "dynamic" in (info.value.hint or "")
    assert not (tmp_path / "b").exists()
