"""Ordinary scikit-learn models as a new user brings them (issue 14): the data set's own
column names, a scaler before a forest, and parity judged per output kind.

Each test failed before the fix: the wine columns broke export's own parity run ("Required
inputs missing"), the scaled forests failed the gate (probabilities 0.033 apart on wine,
values 6.37 apart on diabetes), and a probability of 1e-12 against 0 was a 3e10 relative error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io as sio
from export_helpers import run_export, run_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_digits, load_wine
from sklearn.ensemble import (
    BaggingClassifier,
    BaggingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from edge_agent.errors import CheckFailedError
from edgekit.export import parity
from edgekit.export.tolerances import Tolerance

SLASHED = "od280/od315_of_diluted_wines"


def _save(model, frame: pd.DataFrame, tmp_path: Path) -> tuple[Path, Path]:
    source, data = tmp_path / "model.skops", tmp_path / "data.csv"
    sio.dump(model, source)
    frame.to_csv(data, index=False)
    return source, data


def wine_frame() -> pd.DataFrame:
    """The wine data exactly as scikit-learn names it (a '/' in one column)."""
    return load_wine(as_frame=True).frame


def test_column_names_that_onnx_renames_are_mapped(tmp_path: Path):
    frame = wine_frame()
    x, y = frame.drop(columns="target"), frame["target"]
    pre = ColumnTransformer([("num", StandardScaler(), list(x.columns))])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(x, y)
    source, data = _save(model, frame, tmp_path)

    bundle, report = run_export(source, data, tmp_path / "b", target_column="target")

    assert report["passed"] and report["outputs"]["label"]["label_agreement"] == 1.0
    inputs = {i["name"]: i for i in bundle.signature["inputs"]}
    renamed = inputs["od280_od315_of_diluted_wines"]
    assert renamed["column"] == SLASHED
    assert all("column" not in i for n, i in inputs.items() if n != renamed["name"])
    assert [c["name"] for c in bundle.signature["columns"]] == list(x.columns)
    samples = bundle.load_samples()
    assert "od280_od315_of_diluted_wines" in samples  # stored under the ONNX name
    # the baseline tracks the feature under the user's name, reading the ONNX tensor
    features = {f["name"]: f for f in bundle.baseline()["features"]}
    assert features[SLASHED]["source"]["tensor"] == "od280_od315_of_diluted_wines"

    # the readers: evaluate (and quantize's calibration) from the CSV, bench's native model
    from edgekit.toolkit.bench.native import load_native
    from edgekit.toolkit.evaluate.runner import EvaluateRequest, evaluate_bundle

    result = evaluate_bundle(bundle.path, EvaluateRequest(data=data, target_column="target"))
    assert result["variants"]["fp32"]["metrics"]["accuracy"] == float(
        (model.predict(x) == y).mean()
    )
    native = load_native(bundle)
    got = native.call(native.adapt({k: v[:5] for k, v in samples.items()}))
    np.testing.assert_allclose(got, model.predict_proba(x.iloc[:5]), atol=1e-5)


@pytest.mark.parametrize(
    ("case", "make", "load"),
    [
        ("wine", lambda: RandomForestClassifier(30, random_state=0), load_wine),
        ("digits", lambda: RandomForestClassifier(30, random_state=0), load_digits),
        ("diabetes", lambda: RandomForestRegressor(30, random_state=0), load_diabetes),
        # bagging over trees: each bagged tree casts its own input (these failed parity before)
        ("wine-bagging", lambda: BaggingClassifier(n_estimators=10, random_state=0), load_wine),
        (
            "diabetes-bagging",
            lambda: BaggingRegressor(n_estimators=10, random_state=0),
            load_diabetes,
        ),
    ],
)
def test_scaler_before_forest_has_exact_parity(case, make, load, tmp_path: Path):
    frame = load(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = make_pipeline(StandardScaler(), make()).fit(x, y)
    source, data = _save(model, frame, tmp_path)

    bundle, report = run_export(source, data, tmp_path / "b", target_column="target")

    assert report["passed"]
    graph = onnx.load(str(bundle.variant_path("fp32"))).graph
    ops = [n.op_type for n in graph.node]
    tree = next(i for i, op in enumerate(ops) if op.startswith("TreeEnsemble"))
    assert ops[tree - 1] == "Cast"  # to float32 right before the trees, as scikit-learn
    assert bundle.signature["inputs"][0]["dtype"] == "float64"
    onnx_out = run_onnx(bundle.variant_path("fp32"), {"X": x.to_numpy(np.float64)})
    if case.startswith("diabetes"):
        value = report["outputs"]["variable"]
        assert value["mismatch_rate"] == 0.0 and value["max_diff_of_scale"] < 1e-6
        np.testing.assert_allclose(onnx_out["variable"].ravel(), model.predict(x), rtol=1e-5)
    else:
        assert report["outputs"]["label"]["label_agreement"] == 1.0
        probs = report["outputs"]["probabilities"]
        assert probs["mismatch_rate"] == 0.0 and probs["max_abs_diff"] < 1e-6
        assert np.array_equal(onnx_out["label"], model.predict(x))
    assert any("float64" in n for n in bundle.manifest["lineage"]["notes"])


def test_steps_without_a_float64_converter_name_the_cause(tmp_path: Path):
    """skl2onnx's Imputer has no float64 kernel: the steps fall back to float32 and, when the
    forest then disagrees, the gate says why and what to do."""
    frame = load_diabetes(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = make_pipeline(
        SimpleImputer(), StandardScaler(), RandomForestRegressor(30, random_state=0)
    ).fit(x, y)
    source, data = _save(model, frame, tmp_path)

    with pytest.raises(CheckFailedError) as caught:
        run_export(source, data, tmp_path / "b", target_column="target")

    assert "float64 in scikit-learn" in caught.value.hint
    assert "drop the scaler" in caught.value.hint
    assert not (tmp_path / "b").exists()


def test_parity_judges_each_output_kind():
    """Probabilities on an absolute scale: 1e-12 against 0 is no failure (it was a 3e10
    relative error); values scaled by their range; labels by agreement."""
    tol = Tolerance(atol=1e-4, rtol=1e-4, max_mismatch_rate=0.0, min_label_agreement=1.0)
    outputs = [
        {"name": "label", "role": "label", "dtype": "int64"},
        {"name": "probabilities", "role": "probabilities", "dtype": "float32"},
    ]
    native = {"label": np.array([0, 1]), "probabilities": np.array([[1e-12, 1.0], [0.5, 0.5]])}
    onnx_out = {"label": np.array([0, 1]), "probabilities": np.array([[0.0, 1.0], [0.5, 0.5]])}
    report = parity.compare(outputs, native, onnx_out, tol)
    assert report["passed"] and report["outputs"]["probabilities"]["scale"] == 1.0

    onnx_out["probabilities"] = np.array([[0.0, 1.0], [0.6, 0.4]])
    report = parity.compare(outputs, native, onnx_out, tol)
    assert not report["passed"]
    assert "of its [0, 1] range" in parity.failure_summary(report)

    values = [{"name": "variable", "role": "value", "dtype": "float32"}]
    ref = np.array([[0.0], [1e-9], [300.0]])
    near_zero = parity.compare(values, {"variable": ref}, {"variable": ref + 1e-3}, tol)
    assert near_zero["passed"]  # 1e-3 on a range of 300: within 1e-4 + 1e-4·300
    far = parity.compare(values, {"variable": ref}, {"variable": ref + 0.1}, tol)
    assert not far["passed"] and far["outputs"]["variable"]["scale"] == 300.0

    onnx_out["label"] = np.array([0, 0])
    onnx_out["probabilities"] = native["probabilities"]
    assert not parity.compare(outputs, native, onnx_out, tol)["passed"]


def test_hist_gradient_boosting_failure_names_float64_thresholds(tmp_path: Path):
    """HistGradientBoosting keeps float64 thresholds that onnxruntime cannot: when a scaled one
    fails the gate, the hint says so and what to do."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame = load_diabetes(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = make_pipeline(
        StandardScaler(), HistGradientBoostingRegressor(max_iter=50, random_state=0)
    ).fit(x, y)
    source, data = _save(model, frame, tmp_path)
    with pytest.raises(CheckFailedError) as caught:
        run_export(source, data, tmp_path / "b", target_column="target")
    assert "float64 thresholds" in caught.value.hint and "--atol" in caught.value.hint
