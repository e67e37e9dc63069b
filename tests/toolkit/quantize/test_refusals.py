"""What quantize refuses, with exit code 2 and a reason: tree ensembles, bundles without FP32,
models with nothing to quantize, bad calibration data. Nothing is written on refusal."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.cli import app

runner = CliRunner()


def quantize(*args: str):
    return runner.invoke(app, ["quantize", *map(str, args)])


def assert_untouched(path, before: dict) -> None:
    assert json.loads((path / "manifest.json").read_text()) == before
    assert sorted(p.name for p in path.glob("*.onnx")) == ["fp32.onnx"]


@pytest.mark.parametrize("method", ["dynamic", "static", "fp16", "auto"])
def test_tree_ensemble_is_refused(copy_bundle, tree_bundle, method):
    """An explicit method is refused (exit 2); auto answers that there is nothing to quantize
    (exit 0), without adding a variant either way."""
    path = copy_bundle(tree_bundle)
    before = json.loads((path / "manifest.json").read_text())
    result = quantize(path, "--method", method)
    assert result.exit_code == (0 if method == "auto" else 2), result.output
    if method == "auto":
        assert "nothing to quantize" in result.output
    assert "tree ensemble" in result.output
    assert "TreeEnsemble" in result.output or "ai.onnx.ml" in result.output
    assert_untouched(path, before)


def test_bundle_without_fp32_is_refused(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    assert quantize(path, "--method", "fp16").exit_code == 0
    manifest = manifest_io.read(path)
    del manifest["variants"]["fp32"]
    manifest_io.write(path, manifest)
    (path / "fp32.onnx").unlink()
    result = quantize(path, "--method", "dynamic")
    assert result.exit_code == 2
    assert "no fp32 variant" in result.output and "re-export" in result.output


def test_linear_regressor_has_nothing_to_quantize(copy_bundle, regression_bundle):
    path = copy_bundle(regression_bundle)
    before = json.loads((path / "manifest.json").read_text())
    auto = quantize(path, "--method", "auto")
    assert auto.exit_code == 0 and "no operator that onnxruntime quantizes" in auto.output
    as_json = quantize(path, "--method", "auto", "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["variant"] is None
    dynamic = quantize(path, "--method", "dynamic")
    assert dynamic.exit_code == 2 and "nothing to quantize" in dynamic.output
    assert_untouched(path, before)


def test_option_that_does_not_apply_is_refused(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    result = quantize(path, "--method", "dynamic", "--calibrate", "entropy")
    assert result.exit_code == 2 and "--calibrate" in result.output
    result = quantize(path, "--method", "static", "--calibrate", "median")
    assert result.exit_code == 2 and "minmax" in result.output


class TestCalibrationData:
    def test_wrong_shape(self, copy_bundle, cnn_bundle, tmp_path):
        path = copy_bundle(cnn_bundle)
        bad = tmp_path / "bad.npz"
        np.savez(bad, input=np.zeros((64, 8, 8), np.float32))
        result = quantize(path, "--method", "static", "--calibration", bad)
        assert result.exit_code == 2
        assert "shape (64, 8, 8)" in result.output and "(batch, 1, 8, 8)" in result.output

    def test_too_few_rows(self, copy_bundle, cnn_bundle, tmp_path):
        path = copy_bundle(cnn_bundle)
        few = tmp_path / "few.npz"
        np.savez(few, input=np.zeros((10, 1, 8, 8), np.float32))
        result = quantize(path, "--method", "static", "--calibration", few)
        assert result.exit_code == 2
        assert "10 rows" in result.output and "at least 32" in result.output

    def test_missing_and_unexpected_columns(
        self, copy_bundle, tabular_bundle, tabular_data, tmp_path
    ):
        path = copy_bundle(tabular_bundle)
        frame = pd.read_csv(tabular_data).drop(columns=["mean_radius"])
        bad = tmp_path / "cols.csv"
        frame.to_csv(bad, index=False)
        result = quantize(path, "--method", "static", "--calibration", bad)
        assert result.exit_code == 2
        assert (
            "missing ['mean_radius']" in result.output and "unexpected ['target']" in result.output
        )

    def test_text_in_a_numeric_column(self, copy_bundle, tabular_bundle, tabular_data, tmp_path):
        path = copy_bundle(tabular_bundle)
        frame = pd.read_csv(tabular_data)
        frame["mean_area"] = "big"
        bad = tmp_path / "dtype.csv"
        frame.to_csv(bad, index=False)
        result = quantize(
            path, "--method", "static", "--calibration", bad, "--target-column", "target"
        )
        assert result.exit_code == 2
        assert "'mean_area'" in result.output and "float32" in result.output

    def test_wrong_dtype_tensor(self, copy_bundle, cnn_bundle, tmp_path):
        path = copy_bundle(cnn_bundle)
        bad = tmp_path / "text.npz"
        np.savez(bad, input=np.full((64, 1, 8, 8), "x"))
        result = quantize(path, "--method", "static", "--calibration", bad)
        assert result.exit_code == 2 and "must be float32" in result.output

    def test_good_file_is_used_and_recorded(self, copy_bundle, cnn_bundle, digits_data):
        path = copy_bundle(cnn_bundle)
        result = quantize(
            path,
            "--method",
            "static",
            "--calibration",
            digits_data,
            "--target-column",
            "target",
            "--json",
        )
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)["quantization"]["calibration"]
        assert record["kind"] == "file" and record["rows"] == 512
        assert record["rows_available"] == 1797 and len(record["sha256"]) == 64
        Bundle.open(path).verify()


def test_samples_missing_gives_a_hint(copy_bundle, cnn_bundle):
    path = copy_bundle(cnn_bundle)
    manifest = manifest_io.read(path)
    manifest["files"].pop(manifest["samples"])
    (path / manifest["samples"]).unlink()
    manifest["samples"] = None
    manifest_io.write(path, manifest)
    result = quantize(path, "--method", "static")
    assert result.exit_code == 2 and "--calibration" in result.output
    shutil.rmtree(path)
