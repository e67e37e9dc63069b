"""Static INT8 on a standard scikit-learn MLPClassifier (issue 14): it crashed at the output
Softmax ("Only an existing tensor can be modified"). The output head stays float by itself,
the hidden layers are quantized, and the variant is judged by the gate on its metrics."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import pytest
import skops.io as sio
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.toolkit.cli import app
from edgekit.toolkit.quantize.graph import output_head

runner = CliRunner()


@pytest.fixture(scope="module")
def mlp_bundle(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mlp-static")
    frame = load_wine(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(
            StandardScaler(), MLPClassifier((256, 256), max_iter=60, random_state=0)
        ).fit(x, y)
    sio.dump(model, root / "m.skops")
    frame.to_csv(root / "wine.csv", index=False)
    export_bundle(
        ExportRequest(
            source=str(root / "m.skops"),
            data=root / "wine.csv",
            output=root / "bundle",
            target_column="target",
        )
    )
    return root / "bundle", root / "wine.csv"


def test_output_head_is_what_follows_the_last_matmul(mlp_bundle):
    bundle, _ = mlp_bundle
    model = onnx.load(str(bundle / "fp32.onnx"))
    head = output_head(model)
    ops = {n.name: n.op_type for n in model.graph.node}
    assert any(ops[n] == "Softmax" for n in head)
    assert any(ops[n] == "ArrayFeatureExtractor" for n in head)  # ai.onnx.ml
    assert not any(ops[n] in ("MatMul", "Relu") for n in head)  # hidden layers stay eligible


def test_static_quantizes_the_mlp_and_the_gate_judges_it(mlp_bundle):
    bundle, data = mlp_bundle
    # the bundle is shared by both CPU cases of the probe fixture: the second replaces the first
    result = runner.invoke(
        app, ["quantize", str(bundle), "--method", "static", "--overwrite", "--json"]
    )
    assert result.exit_code == 0, result.output
    q = json.loads(result.output)["quantization"]
    assert any("Softmax" in why for why in q["kept_float"].values())
    assert q["quantized_ops"].get("QuantizeLinear", 0) >= 3  # the MatMuls' activations
    quantized = onnx.load(str(bundle / "int8-static.onnx"))
    matmul_inputs = [n.input[0] for n in quantized.graph.node if n.op_type == "MatMul"]
    dq = {n.output[0] for n in quantized.graph.node if n.op_type == "DequantizeLinear"}
    assert all(i in dq for i in matmul_inputs)  # every hidden layer reads INT8 activations

    evaluation = runner.invoke(
        app,
        ["evaluate", str(bundle), "--data", str(data), "--target-column", "target", "--json"],
    )
    assert evaluation.exit_code in (0, 1), evaluation.output  # pass or fail on metrics
    assert "int8-static" in evaluation.output
