"""Parity for every scikit-learn estimator family the issue names, exported from a skops file.

Each case fits the estimator on a bundled data set, exports it through the real path and then,
independently of edgekit's own parity code, runs the bundle's ONNX file in onnxruntime and
compares it with scikit-learn to the family's stated tolerance. The manifest's parity record
must say the same thing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from export_helpers import run_export, run_onnx
from sklearn import ensemble, linear_model, neighbors, neural_network, svm, tree
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgekit.export.exporters.sklearn_exporter import family_of, final_estimator
from edgekit.export.tolerances import for_family


def scaled(model):
    return make_pipeline(StandardScaler(), model)


# id -> (estimator factory, data set). Classifiers on wine (3 classes, 178 rows: parity uses
# all of them) or breast cancer (binary, 569 rows); regressors on diabetes (442 rows).
CASES = {
    "logistic_regression": (lambda: scaled(linear_model.LogisticRegression(max_iter=500)), "wine"),
    "linear_regression": (linear_model.LinearRegression, "diabetes"),
    "ridge": (lambda: linear_model.Ridge(alpha=0.5), "diabetes"),
    "svc_proba": (lambda: scaled(svm.SVC(probability=True, random_state=0)), "wine"),
    "svc_scores": (lambda: scaled(svm.SVC()), "cancer"),
    "linear_svc": (lambda: scaled(svm.LinearSVC()), "cancer"),
    "svr": (lambda: scaled(svm.SVR(C=50)), "diabetes"),
    "knn_classifier": (lambda: scaled(neighbors.KNeighborsClassifier()), "wine"),
    "knn_regressor": (neighbors.KNeighborsRegressor, "diabetes"),
    "decision_tree_classifier": (
        lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=0),
        "cancer",
    ),
    "decision_tree_regressor": (
        lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=0),
        "diabetes",
    ),
    "random_forest_classifier": (
        lambda: ensemble.RandomForestClassifier(10, max_depth=8, random_state=0),
        "cancer",
    ),
    "random_forest_regressor": (
        lambda: ensemble.RandomForestRegressor(10, max_depth=8, random_state=0),
        "diabetes",
    ),
    "gradient_boosting_classifier": (
        lambda: ensemble.GradientBoostingClassifier(n_estimators=10, random_state=0),
        "wine",
    ),
    "gradient_boosting_regressor": (
        lambda: ensemble.GradientBoostingRegressor(n_estimators=20, random_state=0),
        "diabetes",
    ),
    "hist_gradient_boosting_classifier": (
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=15, random_state=0),
        "cancer",
    ),
    "hist_gradient_boosting_regressor": (
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=15, random_state=0),
        "diabetes",
    ),
    "mlp_classifier": (
        lambda: scaled(
            neural_network.MLPClassifier(hidden_layer_sizes=(16,), max_iter=400, random_state=0)
        ),
        "wine",
    ),
    "mlp_regressor": (
        lambda: scaled(
            neural_network.MLPRegressor(
                hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=400, random_state=0
            )
        ),
        "diabetes",
    ),
}

ISSUE_ESTIMATORS = {
    "LogisticRegression",
    "LinearRegression",
    "Ridge",
    "SVC",
    "SVR",
    "KNeighborsClassifier",
    "KNeighborsRegressor",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "MLPClassifier",
    "MLPRegressor",
}


def test_every_issue_estimator_has_a_parity_case():
    covered = {type(final_estimator(make())).__name__ for make, _ in CASES.values()}
    assert covered >= ISSUE_ESTIMATORS, ISSUE_ESTIMATORS - covered


def _rows_out_of_tolerance(
    ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, probabilities: bool
) -> float:
    """Rows with a difference beyond atol + rtol·(the output's range; 1 for probabilities)."""
    ref = ref.reshape(len(ref), -1).astype(np.float64)
    got = got.reshape(len(got), -1).astype(np.float64)
    scale = 1.0 if probabilities else float(np.ptp(ref)) or float(np.abs(ref).max()) or 1.0
    return float(np.any(np.abs(ref - got) > atol + rtol * scale, axis=1).mean())


@pytest.fixture(scope="module")
def frames(wine_frame, cancer_frame, diabetes_frame):
    return {"wine": wine_frame, "cancer": cancer_frame, "diabetes": diabetes_frame}


@pytest.mark.parametrize("case", sorted(CASES))
def test_estimator_parity(case: str, frames, csv_of, tmp_path: Path):
    make, data_name = CASES[case]
    frame = frames[data_name]
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = make().fit(x, y)
    source = tmp_path / "model.skops"
    sio.dump(model, source)

    bundle, report = run_export(
        source, csv_of(data_name), tmp_path / "bundle", target_column="target"
    )

    family = family_of(model)
    tol = for_family(family)
    manifest = bundle.manifest
    parity = manifest["variants"]["fp32"]["parity"]
    assert parity == report and parity["passed"] is True
    assert parity["rows"] == len(frame)  # fewer than 2,000 rows: parity ran on all of them
    assert parity["tolerance"] == tol.as_dict()
    bundle.verify()

    # independent check: onnxruntime on the bundle's file against scikit-learn itself
    x_dtype = manifest["signature"]["inputs"][0]["dtype"]  # float64 before a cast to trees
    onnx_out = run_onnx(bundle.variant_path("fp32"), {"X": x.to_numpy(x_dtype)})
    outputs = {o["name"]: o for o in manifest["signature"]["outputs"]}
    if hasattr(model, "classes_"):
        assert manifest["task"] == "classification"
        assert manifest["signature"]["labels"] == [int(c) for c in model.classes_]
        agreement = float(np.mean(onnx_out["label"] == model.predict(x)))
        assert agreement >= tol.min_label_agreement
        assert parity["outputs"]["label"]["label_agreement"] == pytest.approx(agreement)
        if hasattr(model, "predict_proba"):
            native, name = model.predict_proba(x), "probabilities"
        else:  # no predict_proba: decision scores, laid out as skl2onnx does for binary
            d, name = model.decision_function(x), "scores"
            layouts = {
                "svc_scores": np.stack([d, -d], axis=1),  # libsvm sign convention
                "linear_svc": d.reshape(-1, 1),
            }
            native = layouts[case] if d.ndim == 1 else d
            assert outputs["scores"]["shape"] == [outputs["scores"]["shape"][0], native.shape[1]]
        assert outputs[name]["role"] == ("probabilities" if name == "probabilities" else "raw")
    else:
        assert manifest["task"] == "regression"
        assert manifest["signature"]["labels"] is None
        name = manifest["signature"]["outputs"][0]["name"]
        native = model.predict(x)
    got = onnx_out[name]
    assert got.shape[0] == len(x)
    out_of_tol = _rows_out_of_tolerance(native, got, tol.atol, tol.rtol, name == "probabilities")
    assert out_of_tol <= tol.max_mismatch_rate, (case, out_of_tol)
    recorded = parity["outputs"][name]
    assert recorded["passed"] and recorded["mismatch_rate"] == pytest.approx(out_of_tol)
    worst = float(np.max(np.abs(native.reshape(got.shape) - got)))
    assert recorded["max_abs_diff"] == pytest.approx(worst, abs=1e-6)
    assert manifest["lineage"]["framework"] == "sklearn"
    assert manifest["lineage"]["source"]["kind"] == "skops"


def test_string_class_labels(wine_frame, tmp_path: Path):
    """Text classes come out of ONNX as strings and go into the manifest as strings."""
    frame = wine_frame.copy()
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    data = tmp_path / "wine_text.csv"
    frame.to_csv(data, index=False)
    model = scaled(linear_model.LogisticRegression(max_iter=500))
    model.fit(frame.drop(columns=["target"]), frame["target"])
    sio.dump(model, tmp_path / "m.skops")

    bundle, report = run_export(tmp_path / "m.skops", data, tmp_path / "b", target_column="target")
    assert bundle.signature["labels"] == ["barbera", "barolo", "grignolino"]
    label = next(o for o in bundle.signature["outputs"] if o["role"] == "label")
    assert label["dtype"] == "string"
    assert report["outputs"]["label"]["label_agreement"] == 1.0
    samples = bundle.load_samples()
    assert samples["__target__"].dtype.kind == "U"  # stored without pickle
    assert set(samples["__expected__/label"]) <= set(bundle.signature["labels"])


@pytest.mark.parametrize("kind", ["float", "bool"])
def test_float_and_bool_class_labels_agree_with_int64_onnx_labels(
    kind: str, cancer_frame, tmp_path: Path
):
    """skl2onnx emits float and bool classes as int64; parity must not call 1.0 != 1 a miss."""
    frame = cancer_frame.copy()
    frame["target"] = frame["target"].astype(float if kind == "float" else bool)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    model = scaled(linear_model.LogisticRegression(max_iter=500))
    model.fit(frame.drop(columns=["target"]), frame["target"])
    sio.dump(model, tmp_path / "m.skops")

    bundle, report = run_export(tmp_path / "m.skops", data, tmp_path / "b", target_column="target")
    assert report["outputs"]["label"]["label_agreement"] == 1.0
    assert bundle.signature["labels"] == [0, 1]
