"""Pipelines with a ColumnTransformer on mixed numeric and text data, from CSV and Parquet.

The hard part is a missing text value: scikit-learn sees NaN, a string tensor cannot hold NaN,
so the ONNX side gets "" (recorded in the signature). The exported model must treat "" exactly
as the native model treats NaN, whether the text column is imputed or one-hot encoded with
NaN as a category of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from export_helpers import mixed_frame, run_export, run_onnx
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from edge_agent.errors import BadInputError
from edgekit.export.exporters.sklearn_exporter import MISSING_TEXT, adapt_missing_text

NUMERIC = ["age", "income"]
TEXT = ["city", "plan"]


def _numeric():
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


TEXT_BRANCHES = {
    # NaN imputed with the most frequent value, then one-hot
    "impute_most_frequent": lambda: Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    ),
    # NaN imputed with a constant category
    "impute_constant": lambda: Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="unknown")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    ),
    # no imputer: NaN is a category of its own for the encoder
    "nan_category": lambda: OneHotEncoder(handle_unknown="ignore"),
}


def pipeline(text_branch: str, final=None) -> Pipeline:
    pre = ColumnTransformer(
        [("num", _numeric(), NUMERIC), ("text", TEXT_BRANCHES[text_branch](), TEXT)]
    )
    return Pipeline(
        [("pre", pre), ("model", LogisticRegression(max_iter=500) if final is None else final)]
    )


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _onnx_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """What a device sends: one column per input, "" for a missing text value."""
    feeds = {c: frame[[c]].to_numpy(np.float32) for c in NUMERIC}
    for c in TEXT:
        feeds[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str).to_numpy()
        feeds[c] = feeds[c].reshape(-1, 1)
    return feeds


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("branch", sorted(TEXT_BRANCHES))
def test_column_transformer_pipeline_with_missing_text(branch: str, fmt: str, tmp_path: Path):
    frame = mixed_frame()
    x, y = frame.drop(columns=["target"]), frame["target"]
    assert x["city"].isna().sum() > 10 and x["age"].isna().sum() > 10
    model = pipeline(branch).fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    data = _write(frame, tmp_path / f"data.{fmt}")

    bundle, report = run_export(tmp_path / "m.skops", data, tmp_path / "b", target_column="target")

    assert report["passed"] and report["rows"] == len(frame)
    sig = bundle.signature
    assert [i["name"] for i in sig["inputs"]] == NUMERIC + TEXT
    dtypes = {i["name"]: i["dtype"] for i in sig["inputs"]}
    assert dtypes == {"age": "float32", "income": "float32", "city": "string", "plan": "string"}
    columns = {c["name"]: c for c in sig["columns"]}
    assert columns["city"]["kind"] == "categorical" and columns["city"]["missing"] == MISSING_TEXT
    assert "missing" not in columns["age"]
    assert sig["labels"] == ["churn", "stay"]

    # independent check against scikit-learn on the very rows with NaN
    out = run_onnx(bundle.variant_path("fp32"), _onnx_feeds(x))
    np.testing.assert_array_equal(out["label"], model.predict(x))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), atol=1e-4, rtol=1e-4)
    missing_rows = x["city"].isna().to_numpy()
    np.testing.assert_allclose(
        out["probabilities"][missing_rows],
        model.predict_proba(x[missing_rows]),
        atol=1e-4,
        rtol=1e-4,
    )
    # text categories go into the drift baseline with their missing rate
    features = {f["name"]: f for f in bundle.baseline()["features"]}
    assert features["city"]["kind"] == "categorical"
    assert features["city"]["missing_rate"] == pytest.approx(missing_rows.mean())
    assert set(features["city"]["categories"]) == {"lyon", "oslo", "lima", "pune"}


def test_onnx_treats_an_unseen_category_like_scikit_learn(tmp_path: Path):
    frame = mixed_frame()
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = pipeline("impute_most_frequent").fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    bundle, _ = run_export(
        tmp_path / "m.skops",
        _write(frame, tmp_path / "d.csv"),
        tmp_path / "b",
        target_column="target",
    )
    new = x.head(5).copy()
    new["city"] = "tokyo"  # never seen: handle_unknown="ignore" gives all-zero one-hot
    out = run_onnx(bundle.variant_path("fp32"), _onnx_feeds(new))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(new), atol=1e-4)


def test_tree_regressor_pipeline_from_parquet(tmp_path: Path):
    frame = mixed_frame(seed=3)
    frame["target"] = frame["age"].fillna(40) * 2 + (frame["plan"] == "pro") * 10
    x, y = frame.drop(columns=["target"]), frame["target"]
    final = HistGradientBoostingRegressor(max_iter=20, random_state=0)
    model = pipeline("impute_constant", final).fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    bundle, report = run_export(
        tmp_path / "m.skops",
        _write(frame, tmp_path / "d.parquet"),
        tmp_path / "b",
        target_column="target",
    )
    assert bundle.task == "regression" and report["passed"]
    out = run_onnx(bundle.variant_path("fp32"), _onnx_feeds(x))
    value = next(iter(out.values())).reshape(-1).astype(np.float64)
    native = model.predict(x)
    # float32 thresholds: a row within rounding of a split may land in another leaf, so a
    # tree is judged by the share of rows out of tolerance, which must match the report
    outside = np.abs(value - native) > 1e-3 + 1e-3 * np.abs(native)
    assert outside.mean() <= 0.01
    recorded = next(iter(report["outputs"].values()))
    assert recorded["mismatch_rate"] == pytest.approx(outside.mean())
    assert np.median(np.abs(value - native)) < 1e-4


def test_random_forest_pipeline_parity_by_label_agreement(tmp_path: Path):
    frame = mixed_frame(seed=5)
    x, y = frame.drop(columns=["target"]), frame["target"]
    final = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)
    model = pipeline("nan_category", final).fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    _, report = run_export(
        tmp_path / "m.skops",
        _write(frame, tmp_path / "d.csv"),
        tmp_path / "b",
        target_column="target",
    )
    assert report["outputs"]["label"]["label_agreement"] >= 0.99
    assert report["tolerance"]["max_mismatch_rate"] == 0.01  # tree family


def test_adaptation_leaves_the_original_model_untouched():
    frame = mixed_frame()
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = pipeline("nan_category").fit(x, y)
    before = model.predict_proba(x)
    adapted, notes = adapt_missing_text(model)
    assert adapted is not model and notes
    encoder = model.named_steps["pre"].named_transformers_["text"]
    assert any(isinstance(v, float) and np.isnan(v) for v in encoder.categories_[0])
    np.testing.assert_array_equal(model.predict_proba(x), before)
    # an encoder that never saw NaN (and no text imputer) is converted as it is
    plain = pipeline("nan_category").fit(x.fillna({"city": "lyon", "plan": "free"}), y)
    assert adapt_missing_text(plain) == (plain, [])


def test_columns_that_do_not_match_the_model_are_refused(tmp_path: Path):
    frame = mixed_frame()
    data = _write(frame, tmp_path / "d.csv")
    unnamed = LogisticRegression().fit(frame[NUMERIC].fillna(0).to_numpy(), frame["target"])
    sio.dump(unnamed, tmp_path / "m.skops")
    with pytest.raises(BadInputError, match="expects 2 features and the data has 4 columns"):
        run_export(tmp_path / "m.skops", data, tmp_path / "b", target_column="target")
    named = LogisticRegression().fit(frame[NUMERIC].fillna(0), frame["target"])
    sio.dump(named, tmp_path / "n.skops")
    with pytest.raises(BadInputError, match=r"unexpected \['city', 'plan'\]"):
        run_export(tmp_path / "n.skops", data, tmp_path / "b", target_column="target")
    assert not (tmp_path / "b").exists()


def test_text_columns_without_a_column_transformer_are_refused(tmp_path: Path):
    frame = mixed_frame()[NUMERIC + ["city", "target"]].dropna()
    coded = frame.assign(city=frame["city"].astype("category").cat.codes)
    model = LogisticRegression().fit(coded.drop(columns=["target"]), coded["target"])
    sio.dump(model, tmp_path / "m.skops")
    with pytest.raises(BadInputError, match=r"columns \['city'\] hold text") as info:
        run_export(
            tmp_path / "m.skops",
            _write(frame, tmp_path / "d.csv"),
            tmp_path / "b",
            target_column="target",
        )
    assert "ColumnTransformer" in info.value.hint
