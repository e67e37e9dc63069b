"""The agent takes the user's column names where ONNX renamed them (issue 14): skl2onnx turns
`od280/od315_of_diluted_wines` into `od280_od315_of_diluted_wines`, and a device client, a
batch file or a KServe request naming the column as the data set does must still work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from agent_helpers import config
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from edge_agent.serving import batch
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.validation import (
    Limits,
    RequestError,
    TensorSpec,
    Validator,
    input_aliases,
)
from edgekit.export.builder import ExportRequest, export_bundle

SLASHED = "od280/od315_of_diluted_wines"
ONNX_NAME = "od280_od315_of_diluted_wines"


@pytest.fixture(scope="module")
def wine(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("wine-aliases")
    frame = load_wine(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    pre = ColumnTransformer([("num", StandardScaler(), list(x.columns))])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(x, y)
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
    return root / "bundle", x


def _validator() -> Validator:
    spec = TensorSpec(ONNX_NAME, "FP32", np.dtype(np.float32), (None, 1))
    other = TensorSpec("hue", "FP32", np.dtype(np.float32), (None, 1))
    signature = {
        "inputs": [{"name": ONNX_NAME, "column": SLASHED}, {"name": "hue"}],
    }
    return Validator([spec, other], [], Limits(), aliases=input_aliases(signature))


def test_validator_maps_user_names_onto_onnx_names():
    v = _validator()
    col = np.ones((2, 1), np.float32)
    feeds, rows = v.check({SLASHED: col, "hue": col})
    assert set(feeds) == {ONNX_NAME, "hue"} and rows == 2
    feeds, _ = v.check({ONNX_NAME: col, "hue": col})  # the ONNX names still work
    assert set(feeds) == {ONNX_NAME, "hue"}
    with pytest.raises(RequestError, match="given twice"):
        v.check({SLASHED: col, ONNX_NAME: col, "hue": col})
    with pytest.raises(RequestError, match=f"missing input\\(s\\) '{SLASHED}'"):
        v.check({"hue": col})
    body = {
        "inputs": [
            {"name": SLASHED, "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
            {"name": "hue", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
        ]
    }
    feeds, _, _ = v.parse_kserve(body)
    assert set(feeds) == {ONNX_NAME, "hue"}


def test_engine_and_batch_take_the_data_sets_names(wine, tmp_path: Path):
    bundle, x = wine
    engine = Engine(config(bundle, tmp_path), model_mod.load(bundle))
    try:
        rows = x.iloc[:5]
        feeds = {c: rows[[c]].to_numpy(np.float32) for c in x.columns}  # user names
        _, names, arrays = engine.infer(feeds)
        by_onnx = {c.replace("/", "_"): v for c, v in feeds.items()}
        _, _, expected = engine.infer(by_onnx)
        assert np.array_equal(arrays[0], expected[0])
        body = {
            "inputs": [
                {"name": c, "shape": [5, 1], "datatype": "FP32", "data": rows[c].tolist()}
                for c in x.columns
            ]
        }
        response = engine.infer_json(body)
        label = next(o for o in response["outputs"] if o["name"] == "label")
        assert label["data"] == expected[names.index("label")].ravel().tolist()

        csv_in = tmp_path / "rows.csv"
        rows.to_csv(csv_in, index=False)  # header with the '/' column
        summary = batch.transform(engine, csv_in, tmp_path / "out.npz", show_progress=False)
        assert summary["rows"] == 5 and summary["errors"] == 0
    finally:
        engine.close()
