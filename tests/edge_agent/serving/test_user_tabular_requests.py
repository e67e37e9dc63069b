"""A new user's tabular classifier on the agent (trysk): text labels, text and numeric columns
with missing values, column names with spaces, dots and slashes.

Each test failed before its fix:
- `edge-agent batch` saved text labels as an object array, which np.savez pickles: reading the
  output needed `np.load(..., allow_pickle=True)`; and `-o preds` wrote preds.npz while the
  command said it wrote `preds`;
- JSON has no NaN, so a standard client (httpx, JSON.stringify) sends a missing number as
  null, which the agent refused ("must hold numbers") although the model imputes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from agent_helpers import config
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from edge_agent import cli
from edge_agent.agent import Agent
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.validation import RequestError
from edge_agent.telemetry.transports.inprocess import Bus, InProcessTransport
from edgekit.export.builder import ExportRequest, export_bundle

NUMERIC = ["age (years)", "income.k$", "km/day"]
TEXT = ["home city", "plan type"]


def _frame(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age (years)": rng.normal(40, 10, rows),
            "income.k$": rng.lognormal(3, 0.5, rows),
            "km/day": rng.uniform(0, 50, rows),
            "home city": rng.choice(["Paris", "Lyon", "Nice"], rows).astype(object),
            "plan type": rng.choice(["basic", "pro"], rows).astype(object),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "age (years)"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "home city"] = np.nan
    score = (frame["income.k$"] - 20) / 10 + (frame["plan type"] == "pro") - 0.5
    frame["y"] = np.where(score > 0, "churn", "stay")
    return frame


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("churn")
    frame = _frame()
    x, y = frame.drop(columns="y"), frame["y"]
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                TEXT,
            ),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(x, y)
    sio.dump(model, root / "churn.skops")
    frame.to_csv(root / "train.csv", index=False)
    export_bundle(
        ExportRequest(
            source=str(root / "churn.skops"),
            data=root / "train.csv",
            output=root / "bundle",
            target_column="y",
        )
    )
    return model, root / "bundle", x


def test_batch_text_labels_load_without_pickle(churn, tmp_path, monkeypatch, capsys):
    model, bundle, x = churn
    shutil.copytree(bundle, tmp_path / "b")
    x.iloc[:50].to_csv(tmp_path / "rows.csv", index=False)
    monkeypatch.chdir(tmp_path)

    code = cli.main(
        ["batch", "--bundle", "b", "--input", "rows.csv", "-o", "preds", "--no-progress"]
    )

    assert code == 0
    assert "→ preds.npz;" in capsys.readouterr().out  # the file it wrote, not the bare -o
    with np.load(tmp_path / "preds.npz") as out:  # allow_pickle=False, numpy's default
        labels = out["label"]
        assert labels.dtype.kind == "U"
        assert list(labels) == list(model.predict(x.iloc[:50]))


def _body(rows: list[list[object]]) -> dict[str, object]:
    inputs = []
    for j, name in enumerate([*NUMERIC, *TEXT]):
        values = [r[j] for r in rows]
        datatype = "BYTES" if name in TEXT else "FP32"
        inputs.append({"name": name, "shape": [len(rows), 1], "datatype": datatype, "data": values})
    return {"id": "r1", "inputs": inputs}


def test_json_null_is_a_missing_number(churn, tmp_path):
    model, bundle, _x = churn
    engine = Engine(config(bundle, tmp_path), model_mod.load(bundle))
    try:
        validator = engine.active.validator
        rows: list[list[object]] = [
            [None, 31.0, 12.0, "Lyon", "pro"],
            [52.0, 9.0, 3.0, "", "basic"],
        ]
        feeds, _wanted, _rid = validator.parse_kserve(_body(rows))
        _iid, names, outs = engine.infer(feeds)
        got = dict(zip(names, outs, strict=True))
        native = pd.DataFrame(
            [[np.nan if v is None else v for v in r] for r in rows], columns=[*NUMERIC, *TEXT]
        ).replace({"": np.nan})
        assert list(got["label"]) == list(model.predict(native))
        np.testing.assert_allclose(got["probabilities"], model.predict_proba(native), atol=1e-5)

        text_null = _body(rows)
        text_null["inputs"][3]["data"] = [None, "Lyon"]  # type: ignore[index]
        with pytest.raises(RequestError, match="'home_city' \\(BYTES\\) must hold strings"):
            validator.parse_kserve(text_null)
        word = _body(rows)
        word["inputs"][0]["data"] = ["n/a", 1.0]  # type: ignore[index]
        with pytest.raises(RequestError, match="must hold numbers$"):
            validator.parse_kserve(word)
    finally:
        engine.close()
    strict = Engine(config(bundle, tmp_path, reject_nan=True), model_mod.load(bundle))
    try:  # a device that refuses missing numbers refuses null as it refuses NaN
        with pytest.raises(RequestError, match="contains NaN"):
            strict.infer_json(_body(rows))
    finally:
        strict.close()


def test_json_null_over_rest(churn, tmp_path):
    """The same through the REST endpoint with httpx's own JSON encoder (strict: no NaN)."""
    _model, bundle, _x = churn
    agent = Agent(config(bundle, tmp_path, port=0), InProcessTransport(bus=Bus())).start()
    try:
        url = f"{agent.rest.url}/v2/models/{agent.engine.model.name}/infer"
        body = _body([[None, 31.0, 12.0, "Lyon", "pro"]])
        reply = httpx.post(url, json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outputs"][0]["data"][0] in ("churn", "stay")
    finally:
        agent.stop(flush_timeout=1)


def test_batch_csv_reads_cells_as_pandas_does(tmp_path, monkeypatch):
    """True/False, pandas' missing markers (NA, null, ...) and codes such as 06000: the same
    CSV that export and evaluate read gives the same predictions on the device. Before, a
    bool column stopped the batch ("could not convert string to float: 'True'") and "NA"
    was not a missing value."""
    from tests.export.test_sklearn_text_codes import postcode_frame, postcode_model

    train, test = postcode_frame(400, seed=0), postcode_frame(120, seed=2)
    model = postcode_model(train)
    sio.dump(model, tmp_path / "model.skops")
    train.to_csv(tmp_path / "train.csv", index=False)
    export_bundle(
        ExportRequest(
            source=str(tmp_path / "model.skops"),
            data=tmp_path / "train.csv",
            output=tmp_path / "b",
            target_column="y",
        )
    )
    test.loc[::7, "m2"] = np.nan
    test.drop(columns="y").to_csv(tmp_path / "rows.csv", index=False, na_rep="NA")
    monkeypatch.chdir(tmp_path)

    assert (
        cli.main(["batch", "--bundle", "b", "--input", "rows.csv", "-o", "p", "--no-progress"]) == 0
    )

    # sklearn on the file as written: codes as text, NA as missing
    frame = pd.read_csv("rows.csv", dtype={"post code": str, "store id": str})
    expected = model.predict(frame.fillna({"m2": 0.0}))  # LogisticRegression needs numbers
    with np.load("p.npz") as out:
        got = out["label"]
    rows = frame["m2"].notna().to_numpy()
    assert list(got[rows]) == list(expected[rows])
    assert frame["has lift"].dtype == bool and frame["store id"].isna().any()
