"""evaluate and quantize (edgekit.toolkit.quantize.feeds) read a bundle's text columns as text (trysk): a CSV column of codes
such as 06000 became the number 6000 and then the text "6000", an unknown category to the
encoder, so `edgekit evaluate` scored a different model from the one exported, silently
(accuracy 0.926 where scikit-learn scores 0.982 on the same file)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import skops.io as sio
from typer.testing import CliRunner

from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.toolkit.cli import app
from edgekit.toolkit.quantize.feeds import load_feeds
from tests.export.test_sklearn_text_codes import postcode_frame, postcode_model


def test_evaluate_scores_numeric_looking_codes_as_text(tmp_path, monkeypatch):
    train, test = postcode_frame(400, seed=0), postcode_frame(300, seed=1)
    model = postcode_model(train)
    sio.dump(model, tmp_path / "model.skops")
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    export_bundle(
        ExportRequest(
            source=str(tmp_path / "model.skops"),
            data=tmp_path / "train.csv",
            output=tmp_path / "b",
            target_column="y",
        )
    )
    signature = json.loads((tmp_path / "b" / "manifest.json").read_text())["signature"]
    feeds, _target, _sample = load_feeds(signature, tmp_path / "test.csv", "y", "evaluation data")
    assert "06000" in set(feeds["post_code"].ravel())
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(
        app, ["evaluate", "b", "--data", "test.csv", "--target-column", "y", "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    accuracy = report["variants"]["fp32"]["metrics"]["accuracy"]
    as_written = pd.read_csv("test.csv", dtype={"post code": str, "store id": str})
    expected = float(np.mean(model.predict(as_written.drop(columns="y")) == as_written["y"]))
    assert accuracy == expected
