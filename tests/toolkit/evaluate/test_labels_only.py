"""A classifier that gives labels but no scores (LinearSVC, Perceptron, SVC without
probability=True) is evaluated on its labels (issue 14's corpus: `evaluate` refused them)."""

from __future__ import annotations

import json
from pathlib import Path

import skops.io as sio
from sklearn.datasets import load_wine
from sklearn.linear_model import Perceptron
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from edgekit.export.builder import ExportRequest, export_bundle
from edgekit.toolkit.cli import app


def test_classifier_without_scores_is_scored_on_its_labels(tmp_path: Path):
    frame = load_wine(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    model = make_pipeline(StandardScaler(), Perceptron(random_state=0)).fit(x, y)
    sio.dump(model, tmp_path / "m.skops")
    frame.to_csv(tmp_path / "wine.csv", index=False)
    export_bundle(
        ExportRequest(
            source=str(tmp_path / "m.skops"),
            data=tmp_path / "wine.csv",
            output=tmp_path / "b",
            target_column="target",
        )
    )
    result = CliRunner().invoke(
        app,
        ["evaluate", str(tmp_path / "b"), "--data", str(tmp_path / "wine.csv")]
        + ["--target-column", "target", "--json"],
    )
    assert result.exit_code == 0, result.output
    fp32 = json.loads(result.output)["variants"]["fp32"]
    assert fp32["metrics"]["accuracy"] == float((model.predict(x) == y).mean())
    assert "labels only" in json.dumps(fp32)
