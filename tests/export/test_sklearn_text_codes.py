"""Text columns whose values look like numbers (trysk): postcodes 06000, 75001, ... one-hot
encoded. pandas reads such a CSV column as integers (06000 becomes 6000), so export handed
skl2onnx a numeric column and failed with exit 2 ("Category '06000' is not an int64") and a
hint about registering a converter. The columns the model's encoders were fitted on as text
are now read again from the CSV as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from typer.testing import CliRunner

from edge_agent.contracts.bundle import Bundle
from edgekit.export.exporters.sklearn_exporter import text_columns
from edgekit.toolkit.cli import app

CODES = ["75001", "69002", "06000", "59000"]


def postcode_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "post code": rng.choice(CODES, rows).astype(object),
            "store id": rng.choice(["007", "012", "3"], rows).astype(object),
            "m2": rng.normal(60, 20, rows),
            "has lift": rng.choice([True, False], rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "store id"] = np.nan
    frame["y"] = np.where((frame["post code"] == "06000") | (frame["m2"] > 75), "dear", "cheap")
    return frame


def postcode_model(frame: pd.DataFrame) -> Pipeline:
    text = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="none"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    pre = ColumnTransformer(
        [
            ("codes", OneHotEncoder(handle_unknown="ignore"), ["post code"]),
            ("store", text, ["store id"]),
            ("rest", "passthrough", ["m2", "has lift"]),
        ]
    )
    x, y = frame.drop(columns="y"), frame["y"]
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(x, y)


@pytest.fixture(scope="module")
def postcodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path]:
    folder = tmp_path_factory.mktemp("postcodes")
    frame = postcode_frame()
    model = postcode_model(frame)
    sio.dump(model, folder / "model.skops")
    frame.to_csv(folder / "train.csv", index=False)
    return model, folder


def test_text_columns_are_the_ones_encoders_were_fitted_on(postcodes):
    model, _folder = postcodes
    assert text_columns(model) == ["post code", "store id"]


def test_export_reads_numeric_looking_codes_as_written(postcodes, tmp_path, monkeypatch):
    model, folder = postcodes
    for name in ("model.skops", "train.csv"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    assert pd.read_csv(tmp_path / "train.csv")["post code"].dtype.kind == "i"  # the trap
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(
        app, ["export", "model.skops", "--data", "train.csv", "--target-column", "y", "-o", "b"]
    )

    assert result.exit_code == 0, result.output
    bundle = Bundle.open(tmp_path / "b")
    kinds = {c["name"]: c["kind"] for c in bundle.signature["columns"]}
    assert kinds["post code"] == kinds["store id"] == "categorical"
    assert bundle.manifest["variants"]["fp32"]["parity"]["outputs"]["label"][
        "label_agreement"
    ] == pytest.approx(1.0)
    samples = bundle.load_samples()
    stored = {str(v) for v in np.asarray(samples["post_code"]).ravel()}
    assert "06000" in stored and "6000" not in stored
