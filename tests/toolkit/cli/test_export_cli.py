"""`edgekit export` through the command line: results, exit codes and messages.

Most cases run in-process with typer's CliRunner; a few run the installed `edgekit` script
as a subprocess to prove the same holds for a real invocation.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LinearRegression, LogisticRegression
from typer.testing import CliRunner

from edgekit.toolkit.cli import app

ROOT = Path(__file__).parents[3]
EDGEKIT = Path(sys.executable).parent / "edgekit"
FACTORIES = ROOT / "tests" / "factories.py"
runner = CliRunner()


def edgekit(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A skops classifier, a pickled copy, a KernelRidge, and the wine CSV they fit."""
    from sklearn.datasets import load_wine

    folder = tmp_path_factory.mktemp("wine")
    frame = load_wine(as_frame=True).frame
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = LogisticRegression(max_iter=5000).fit(x, y)
    paths = {
        "csv": folder / "wine.csv",
        "skops": folder / "model.skops",
        "joblib": folder / "model.joblib",
        "kernel_ridge": folder / "kr.skops",
    }
    frame.to_csv(paths["csv"], index=False)
    sio.dump(model, paths["skops"])
    joblib.dump(model, paths["joblib"])
    sio.dump(KernelRidge().fit(x, y), paths["kernel_ridge"])
    return paths


def test_export_json(wine, tmp_path: Path):
    out = tmp_path / "bundle"
    result = edgekit(
        "export", wine["skops"], "--data", wine["csv"], "--target-column", "target",
        "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["task"] == "classification" and doc["variant"] == "fp32"
    assert doc["parity"]["passed"] and doc["parity"]["rows"] == 178
    assert doc["parity"]["outputs"]["label"]["label_agreement"] == 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert doc["sha256"] == manifest["variants"]["fp32"]["sha256"]
    assert manifest["lineage"]["command"].startswith("edgekit export")


def test_export_prints_the_parity_table(wine, tmp_path: Path):
    result = edgekit(
        "export", wine["skops"], "--data", wine["csv"], "--target-column", "target",
        "-o", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "parity on 178 rows" in result.stdout
    assert "probabilities" in result.stdout and "pass" in result.stdout
    assert "bundle" in result.stdout and "classification" in result.stdout


def test_pickle_needs_trust_pickle(wine, tmp_path: Path):
    args = ["export", wine["joblib"], "--data", wine["csv"], "--target-column", "target"]
    refused = edgekit(*args, "-o", tmp_path / "a")
    assert refused.exit_code == 2
    assert "runs any code" in refused.stderr and "--trust-pickle" in refused.stderr
    assert not (tmp_path / "a").exists()
    trusted = edgekit(*args, "-o", tmp_path / "b", "--trust-pickle")
    assert trusted.exit_code == 0, trusted.output
    assert (
        json.loads((tmp_path / "b" / "manifest.json").read_text())["lineage"]["source"]["kind"]
        == "pickle"
    )


def test_trust_pickle_help_says_why():
    result = edgekit("export", "--help")
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stdout).split())  # unwrap the help panel
    assert "--trust-pickle" in text and "Unpickling runs any code in the file" in text


def test_unconvertible_estimator_is_named_with_a_hint(wine, tmp_path: Path):
    result = edgekit(
        "export", wine["kernel_ridge"], "--data", wine["csv"], "--target-column", "target",
        "-o", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cannot convert KernelRidge to ONNX" in result.stderr
    assert "update_registered_converter" in result.stderr
    assert not (tmp_path / "b").exists()


def test_columns_that_do_not_match(wine, tmp_path: Path):
    frame = pd.read_csv(wine["csv"]).rename(columns={"alcohol": "alc"})
    frame.to_csv(tmp_path / "renamed.csv", index=False)
    result = edgekit(
        "export", wine["skops"], "--data", tmp_path / "renamed.csv", "--target-column", "target",
        "-o", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "missing ['alcohol']" in result.stderr and "unexpected ['alc']" in result.stderr
    # forgetting --target-column leaves the label among the features
    result = edgekit("export", wine["skops"], "--data", wine["csv"], "-o", tmp_path / "c")
    assert result.exit_code == 2 and "unexpected ['target']" in result.stderr
    assert "--target-column" in result.stderr


@pytest.mark.parametrize(
    "source, message",
    [
        ("no_such_package.models:build", "cannot import module 'no_such_package.models'"),
        ("edgekit.toolkit.demo.models:no_such_function", "has no function 'no_such_function'"),
        ("nowhere/models.py:build", "factory file nowhere/models.py does not exist"),
    ],
)
def test_a_factory_that_does_not_exist(source: str, message: str, wine, tmp_path: Path):
    result = edgekit("export", source, "--data", wine["csv"], "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("model.skops", b"just text", "is not a skops file"),
        ("model.pt2", b"just text", "is not a saved ExportedProgram"),
        ("model.onnx", b"just text", "is not an ONNX model"),
    ],
)
def test_a_model_file_that_is_not_what_its_extension_says(
    name: str, content: bytes, message: str, wine, tmp_path: Path
):
    (tmp_path / name).write_bytes(content)
    result = edgekit("export", tmp_path / name, "--data", wine["csv"], "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("name", ["data.parquet", "data.npy", "data.npz"])
def test_a_data_file_that_is_not_what_its_extension_says(name: str, wine, tmp_path: Path):
    (tmp_path / name).write_bytes(wine["csv"].read_bytes())  # a CSV in disguise
    result = edgekit("export", wine["skops"], "--data", tmp_path / name, "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert f"is not a {Path(name).suffix[1:].upper()} file" in result.stderr


def test_missing_data_file(wine, tmp_path: Path):
    result = edgekit("export", wine["skops"], "--data", tmp_path / "nope.csv", "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert "nope.csv does not exist" in result.stderr


def test_bad_options(wine, tmp_path: Path):
    base = ["export", wine["skops"], "--data", wine["csv"], "-o", tmp_path / "b"]
    result = edgekit(*base, "--dynamic-axes", "input2=height")
    assert result.exit_code == 2 and "INPUT:AXIS=NAME" in result.stderr
    result = edgekit(*base, "--task", "ranking")
    assert result.exit_code == 2 and "--task 'ranking'" in result.stderr


def test_dynamic_axes_of_several_inputs_in_one_option():
    """`tokens:1=seq,mask:1=seq` names two inputs (it read `mask:1` as a bad axis number)."""
    from edgekit.toolkit.cli.export_cmd import parse_dynamic_axes

    both = {"tokens": {1: "sequence"}, "mask": {1: "sequence"}}
    assert parse_dynamic_axes(["tokens:1=sequence,mask:1=sequence"]) == both
    assert parse_dynamic_axes(["tokens:1=sequence", "mask:1=sequence"]) == both
    assert parse_dynamic_axes(["image:2=height,3=width"]) == {"image": {2: "height", 3: "width"}}


def test_existing_output_needs_overwrite(wine, tmp_path: Path):
    args = ["export", wine["skops"], "--data", wine["csv"], "--target-column", "target"]
    assert edgekit(*args, "-o", tmp_path / "b").exit_code == 0
    again = edgekit(*args, "-o", tmp_path / "b")
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert edgekit(*args, "-o", tmp_path / "b", "--overwrite").exit_code == 0


def test_error_as_json(wine, tmp_path: Path):
    result = edgekit(
        "export", wine["joblib"], "--data", wine["csv"], "-o", tmp_path / "b", "--json"
    )
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "--trust-pickle" in doc["hint"]


@pytest.fixture(scope="module")
def timestamps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A linear model on raw Unix timestamps: exact in float64, off by up to a minute in the
    float32 ONNX model. An honest parity failure."""
    folder = tmp_path_factory.mktemp("timestamps")
    rng = np.random.default_rng(0)
    t = 1.7e9 + rng.uniform(0, 3600, 300)
    frame = pd.DataFrame({"timestamp": t, "load": rng.normal(size=300)})
    frame["minutes"] = (t - 1.7e9) / 60 + frame["load"]
    frame.to_csv(folder / "events.csv", index=False)
    model = LinearRegression().fit(frame[["timestamp", "load"]], frame["minutes"])
    sio.dump(model, folder / "lr.skops")
    return {"csv": folder / "events.csv", "model": folder / "lr.skops"}


def test_parity_failure_exits_1_with_a_table_and_no_bundle(timestamps, tmp_path: Path):
    result = edgekit(
        "export", timestamps["model"], "--data", timestamps["csv"], "--target-column", "minutes",
        "-o", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "parity on 300 rows" in result.stdout and "FAIL" in result.stdout
    assert "variable" in result.stdout
    assert "ONNX outputs differ from the native model" in result.stderr
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == []
    as_json = edgekit(
        "export", timestamps["model"], "--data", timestamps["csv"], "--target-column", "minutes",
        "-o", tmp_path / "b", "--json",
    )  # fmt: skip
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False and doc["details"]["outputs"]["variable"]["passed"] is False


def test_atol_override_is_recorded(timestamps, tmp_path: Path):
    result = edgekit(
        "export", timestamps["model"], "--data", timestamps["csv"], "--target-column", "minutes",
        "-o", tmp_path / "b", "--atol", "500", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parity"]["tolerance"]["atol"] == 500.0


# -- the installed script, as a user runs it -------------------------------------------------


def run_script(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(EDGEKIT), *map(str, args)], capture_output=True, text=True, timeout=180, cwd=ROOT
    )


def test_script_parity_failure_and_pickle_refusal(timestamps, wine, tmp_path: Path):
    failed = run_script(
        "export", timestamps["model"], "--data", timestamps["csv"], "--target-column", "minutes",
        "-o", tmp_path / "b",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "FAIL" in failed.stdout and "Traceback" not in failed.stderr
    assert not (tmp_path / "b").exists()
    refused = run_script("export", wine["joblib"], "--data", wine["csv"], "-o", tmp_path / "c")
    assert refused.returncode == 2 and "--trust-pickle" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_script_exports_a_factory_with_json_on_clean_stdout(regression_data: Path, tmp_path: Path):
    done = run_script(
        "export", f"{FACTORIES}:diabetes_ridge", "--data", regression_data,
        "--target-column", "target", "-o", tmp_path / "b", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # nothing but JSON on stdout
    assert doc["task"] == "regression" and (tmp_path / "b" / "fp32.onnx").is_file()
    command = json.loads((tmp_path / "b" / "manifest.json").read_text())["lineage"]["command"]
    assert command.startswith("edgekit export ") and "--target-column target" in command


# -- torch through the command line ------------------------------------------------------------

TORCH_MODELS = ROOT / "tests" / "export" / "torch_models.py"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "images.npz"
    rng = np.random.default_rng(0)
    np.savez(path, image=rng.random((20, 1, 8, 8), dtype=np.float32), target=np.arange(20) % 3)
    return path


def test_torch_options_through_the_cli(images: Path, tmp_path: Path):
    import torch

    weights = tmp_path / "w.pt"
    spec = importlib.util.spec_from_file_location("cli_torch_models", TORCH_MODELS)
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    torch.save(models.pool_net().state_dict(), weights)
    result = edgekit(
        "export", f"{TORCH_MODELS}:pool_net", "--weights", weights, "--data", images,
        "--target-column", "target", "--dynamic-axes", "image:2=height,3=width",
        "--opset", "18", "--task", "classification", "--labels", "cat,dog,bird",
        "-o", tmp_path / "b", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["parity"]["passed"]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["signature"]["inputs"][0]["shape"] == ["batch", 1, "height", "width"]
    assert manifest["signature"]["labels"] == ["cat", "dog", "bird"]
    assert manifest["variants"]["fp32"]["opset"] == 18


def test_torch_data_dependent_branch(tmp_path: Path):
    x = np.random.default_rng(5).normal(-1.0, 1.0, size=(300, 4)).astype(np.float32)
    x[:2] = 5.0
    np.save(tmp_path / "sign.npy", x)
    source = f"{TORCH_MODELS}:sign_flip"
    dynamo = edgekit("export", source, "--data", tmp_path / "sign.npy", "-o", tmp_path / "a")
    assert dynamo.exit_code == 2 and "--legacy-exporter" in dynamo.stderr
    legacy = edgekit(
        "export", source, "--data", tmp_path / "sign.npy", "-o", tmp_path / "b",
        "--legacy-exporter",
    )  # fmt: skip
    assert legacy.exit_code == 1
    assert "FAIL" in legacy.stdout and "output" in legacy.stdout
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
