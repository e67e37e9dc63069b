"""An ONNX classifier converted by skl2onnx with its defaults ends in ZipMap (probabilities as a
sequence of maps, not a tensor): imported, it serves plain probability tensors under the same
output name, with the labels the ZipMap held, for integer and string classes alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_helpers import run_export, run_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from edgekit.export.zipmap import remove_zipmaps

skl2onnx = pytest.importorskip("skl2onnx")

NAMES = np.array(["setosa", "versicolor", "virginica"])


def _iris(tmp_path: Path, classes: np.ndarray) -> tuple[np.ndarray, Path]:
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    frame = pd.DataFrame(x, columns=["sepal length", "sepal width", "petal length", "petal width"])
    frame["species"] = classes[y]
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    return x, path


@pytest.mark.parametrize(
    ("estimator", "classes"),
    [
        (LogisticRegression(max_iter=500), np.arange(3)),
        (DecisionTreeClassifier(max_depth=3, random_state=0), NAMES),
    ],
    ids=["int-classes", "string-classes"],
)
def test_a_zipmap_classifier_imports_with_probability_tensors(tmp_path, estimator, classes):
    x, data = _iris(tmp_path, classes)
    y = classes[load_iris().target]
    model = estimator.fit(x, y)
    onx = skl2onnx.to_onnx(model, x[:1])  # zipmap=True: skl2onnx's default
    assert [n.op_type for n in onx.graph.node][-1] == "ZipMap"
    source = tmp_path / "model.onnx"
    source.write_bytes(onx.SerializeToString())

    bundle, report = run_export(source, data, tmp_path / "b", target_column="species")
    assert report["passed"]
    assert bundle.task == "classification"
    assert bundle.labels == list(classes.tolist())
    roles = {o["name"]: o["role"] for o in bundle.signature["outputs"]}
    assert roles == {"output_label": "label", "output_probability": "probabilities"}
    got = run_onnx(bundle.path / "fp32.onnx", {"X": x})
    np.testing.assert_allclose(got["output_probability"], model.predict_proba(x), atol=1e-5)
    assert got["output_label"].tolist() == model.predict(x).tolist()


def test_a_model_without_zipmap_is_left_alone():
    x, y = load_iris(return_X_y=True)
    onx = skl2onnx.to_onnx(
        LogisticRegression(max_iter=500).fit(x.astype(np.float32), y),
        x[:1].astype(np.float32),
        options={"zipmap": False},
    )
    before = onx.SerializeToString()
    assert not remove_zipmaps(onx).changed
    assert onx.SerializeToString() == before


def test_a_sequence_output_is_refused_by_name(tmp_path):
    from onnx import TensorProto, helper

    from edge_agent.errors import BadInputError
    from edgekit.export.onnx_types import tensor_spec

    seq = helper.make_tensor_sequence_value_info("rows", TensorProto.FLOAT, None)
    with pytest.raises(BadInputError, match="'rows' is a sequence, not a tensor") as info:
        tensor_spec(seq)
    assert "zipmap" in (info.value.hint or "")
