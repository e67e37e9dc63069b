"""Outlier detectors a new user brings (trysk): IsolationForest's converter refuses the newest
ai.onnx.ml opset that skl2onnx picks on its own and asks for `target_opset`, which edgekit does
not expose; export failed with exit 2 and that message. It now retries at ai.onnx.ml 3 (what
`--opset` pins) and checks both outputs: the -1/1 label and decision_function's scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io as sio
from export_helpers import run_export, run_onnx
from sklearn.datasets import load_diabetes
from sklearn.ensemble import IsolationForest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[IsolationForest, Path, Path]:
    folder = tmp_path_factory.mktemp("iforest")
    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns="target")
    model = IsolationForest(n_estimators=30, random_state=0).fit(x)
    sio.dump(model, folder / "iso.skops")
    frame.to_csv(folder / "train.csv", index=False)
    return model, folder / "iso.skops", folder / "train.csv"


def test_isolation_forest_exports_with_both_outputs_checked(forest, tmp_path: Path):
    model, source, data = forest
    bundle, report = run_export(source, data, tmp_path / "b", target_column="target")

    assert report["passed"]
    assert set(report["outputs"]) == {"label", "scores"}  # the scores are judged too
    opsets = {o.domain: o.version for o in onnx.load(bundle.variant_path("fp32")).opset_import}
    assert opsets["ai.onnx.ml"] == 3
    x = pd.read_csv(data).drop(columns="target")
    out = run_onnx(bundle.variant_path("fp32"), {"X": x.to_numpy(np.float32)})
    assert (out["label"].ravel() == model.predict(x)).mean() == 1.0
    np.testing.assert_allclose(out["scores"].ravel(), model.decision_function(x), atol=1e-5)


def test_isolation_forest_export_cli(forest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _model, source, data = forest
    (tmp_path / "iso.skops").write_bytes(source.read_bytes())
    (tmp_path / "train.csv").write_bytes(data.read_bytes())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["export", "iso.skops", "--data", "train.csv", "--target-column", "target", "-o", "b"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "manifest.json").is_file()
