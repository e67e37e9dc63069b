"""What a new user's ordinary scikit-learn models met at export (trysk), each failing before:

- a HistGradientBoosting saved with skops and `categorical_features="from_dtype"` holds a
  functools.partial, which edgekit's skops check refused as "outside scikit-learn" although
  skops lists the function inside a partial as a type of its own (still checked);
- HistGradientBoosting with categorical splits converted (skl2onnx takes them for thresholds)
  and failed parity with a hint about float32 rounding and --atol: now refused up front, exit 2,
  naming the way out;
- data the model cannot predict on (NaN for a KNN without an imputer) ended in a traceback
  with exit 1: now exit 2 with scikit-learn's message.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.export.sources import load_source
from edgekit.toolkit.cli import app


def _export(folder: Path, model: str, data: str, target: str = "y"):
    return CliRunner().invoke(
        app, ["export", model, "--data", data, "--target-column", target, "-o", "b"]
    )


def _shop_frame(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"shop": rng.integers(0, 4, rows), "v": rng.normal(size=rows)})
    frame["y"] = ((frame["shop"] == 2) | (frame["v"] > 1)).astype(int)
    return frame


def test_skops_partial_is_trusted_but_what_it_wraps_is_checked(tmp_path: Path):
    frame = _shop_frame()
    frame["shop"] = frame["shop"].astype(str).astype("category")
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=5)
    sio.dump(model.fit(frame.drop(columns="y"), frame["y"]), tmp_path / "hgb.skops")
    assert "functools.partial" in sio.get_untrusted_types(file=tmp_path / "hgb.skops")
    assert load_source(str(tmp_path / "hgb.skops")).obj.is_categorical_.any()

    danger = FunctionTransformer(func=functools.partial(os.system, "echo owned"))
    sio.dump(danger, tmp_path / "danger.skops")
    with pytest.raises(BadInputError, match=r"system"):
        load_source(str(tmp_path / "danger.skops"))


def test_categorical_splits_are_refused_before_converting(tmp_path, monkeypatch):
    frame = _shop_frame()
    model = HistGradientBoostingClassifier(categorical_features=["shop"], max_iter=20)
    sio.dump(model.fit(frame.drop(columns="y"), frame["y"]), tmp_path / "hgb.skops")
    frame.to_csv(tmp_path / "shops.csv", index=False)
    monkeypatch.chdir(tmp_path)

    result = _export(tmp_path, "hgb.skops", "shops.csv")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "categorical_features" in text and "OrdinalEncoder" in text
    assert not (tmp_path / "b").exists()


def test_data_the_model_cannot_predict_on_is_exit_2(tmp_path, monkeypatch):
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    model = KNeighborsRegressor().fit(frame.drop(columns="y"), frame["y"])
    sio.dump(model, tmp_path / "knn.skops")
    frame.loc[::5, "bmi"] = np.nan
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    monkeypatch.chdir(tmp_path)

    result = _export(tmp_path, "knn.skops", "gaps.csv")

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert "KNeighborsRegressor fails to predict on gaps.csv" in text and "NaN" in text
    assert "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_a_step_skl2onnx_refuses_is_named_with_a_way_out(tmp_path, monkeypatch):
    """FunctionTransformer(np.log1p) before a Ridge: the message named only the Ridge and
    gave no hint."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    x = frame.drop(columns="y") - frame.drop(columns="y").min() + 0.1
    model = make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(x, frame["y"])
    sio.dump(model, tmp_path / "log.skops")
    x.assign(y=frame["y"]).to_csv(tmp_path / "pos.csv", index=False)
    monkeypatch.chdir(tmp_path)

    result = _export(tmp_path, "log.skops", "pos.csv")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "Pipeline ending in Ridge" in text and "FunctionTransformer" in text
    assert "hint: skl2onnx converts the estimator but not this configuration" in text


def test_a_target_column_the_data_lacks_is_named(tmp_path, monkeypatch):
    """`--target-column Y` where the label is `y`: the error listed `y` as unexpected and
    said to drop the label with --target-column, which the user had done."""
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    model = KNeighborsRegressor().fit(frame.drop(columns="y"), frame["y"])
    sio.dump(model, tmp_path / "knn.skops")
    frame.to_csv(tmp_path / "train.csv", index=False)
    monkeypatch.chdir(tmp_path)

    result = _export(tmp_path, "knn.skops", "train.csv", target="Y")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "unexpected ['y']" in text
    assert "--target-column 'Y' is not a column of train.csv" in text
