"""`edgekit evaluate` end to end: metrics per variant against sklearn on the same predictions,
agreement with FP32, the gate and its manifest record, --require-pass, qdq_loss_debug and
--auto-exclude."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn import metrics as skm
from typer.testing import CliRunner

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.cli import app
from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle
from edgekit.toolkit.quantize.runtime import CHUNK_ROWS

runner = CliRunner()


def evaluate(*args: str):
    return runner.invoke(app, ["evaluate", *map(str, args)])


@pytest.fixture(scope="module")
def tabular_quantized(tmp_path_factory, tabular_bundle):
    """The tabular pipeline with a passing dynamic and a failing static INT8 variant."""
    import shutil

    path = tmp_path_factory.mktemp("eval") / "tabular"
    shutil.copytree(tabular_bundle, path)
    quantize_bundle(path, QuantizeRequest(method="dynamic"))
    quantize_bundle(path, QuantizeRequest(method="static"))
    return path


def test_classification_metrics_per_variant_match_sklearn(copy_bundle, cnn_bundle, digits_data):
    path = copy_bundle(cnn_bundle)
    quantize_bundle(path, QuantizeRequest(method="static", options={"per_channel": True}))
    quantize_bundle(path, QuantizeRequest(method="fp16"))
    result = evaluate(path, "--data", digits_data, "--target-column", "target", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "accuracy" and report["data"]["rows"] == 1797

    data = np.load(digits_data)
    bundle = Bundle.open(path)
    fp32_logits = ort.InferenceSession(str(bundle.variant_path("fp32"))).run(
        None, {"input": data["input"]}
    )[0]
    for name in ("fp32", "int8-static", "fp16"):
        logits = ort.InferenceSession(str(bundle.variant_path(name))).run(
            None, {"input": data["input"]}
        )[0]
        proba = np.exp(logits - logits.max(1, keepdims=True))
        proba /= proba.sum(1, keepdims=True)
        pred = logits.argmax(1)
        m = report["variants"][name]["metrics"]
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(data["target"], pred))
        assert m["f1_macro"] == pytest.approx(skm.f1_score(data["target"], pred, average="macro"))
        assert m["roc_auc_ovr"] == pytest.approx(
            skm.roc_auc_score(data["target"], proba, multi_class="ovr"), rel=1e-6
        )
        assert m["log_loss"] == pytest.approx(skm.log_loss(data["target"], proba), rel=1e-5)
        assert np.array_equal(m["confusion_matrix"], skm.confusion_matrix(data["target"], pred))
        vs = report["variants"][name]["vs_fp32"]
        assert vs["label_agreement"] == pytest.approx(np.mean(pred == fp32_logits.argmax(1)))
        assert set(vs["deltas"]) >= {"accuracy", "f1_macro", "log_loss"}
        entry = bundle.variant(name)["evaluation"]
        assert entry["metrics"]["accuracy"] == m["accuracy"]
        assert entry["data"]["sha256"] and entry["gate"]["metric"] == "accuracy"
    assert report["variants"]["int8-static"]["gate"]["passed"]
    assert report["passed"] == ["int8-static", "fp16"]

    only = evaluate(
        path, "--data", digits_data, "--target-column", "target", "--variant", "fp16", "--json"
    )
    assert set(json.loads(only.stdout)["variants"]) == {"fp32", "fp16"}  # fp32: the reference
    both = evaluate(path, "--data", digits_data, "--target-column", "target",
                    "--variant", "fp16,int8-static", "--json")  # fmt: skip
    assert set(json.loads(both.stdout)["variants"]) == {"fp32", "fp16", "int8-static"}


def test_regression_metrics_and_r2_gate(copy_bundle, mlp_bundle, regression_data):
    path = copy_bundle(mlp_bundle)
    quantize_bundle(path, QuantizeRequest(method="dynamic"))
    result = evaluate(path, "--data", regression_data, "--target-column", "target", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "r2"
    frame = pd.read_csv(regression_data)
    x = frame.drop(columns=["target"]).to_numpy(np.float32)
    bundle = Bundle.open(path)
    for name in ("fp32", "int8-dynamic"):
        # Dynamic quantization scales activations per run, so use the evaluator's chunks.
        session = ort.InferenceSession(str(bundle.variant_path(name)))
        pred = np.concatenate(
            [
                session.run(None, {"input": x[i : i + CHUNK_ROWS]})[0][:, 0]
                for i in range(0, len(x), CHUNK_ROWS)
            ]
        )
        m = report["variants"][name]["metrics"]
        assert m["mae"] == pytest.approx(skm.mean_absolute_error(frame["target"], pred), rel=1e-6)
        assert m["mse"] == pytest.approx(skm.mean_squared_error(frame["target"], pred), rel=1e-6)
        assert m["rmse"] == pytest.approx(np.sqrt(m["mse"]))
        assert m["r2"] == pytest.approx(skm.r2_score(frame["target"], pred), rel=1e-6)
    vs = report["variants"]["int8-dynamic"]["vs_fp32"]
    assert 0 < vs["max_abs_diff"] < 50
    assert vs["deltas"]["r2"] == pytest.approx(
        report["variants"]["int8-dynamic"]["metrics"]["r2"]
        - report["variants"]["fp32"]["metrics"]["r2"]
    )


def test_without_labels_cosine_and_max_diff(copy_bundle, mlp_bundle, regression_data, tmp_path):
    path = copy_bundle(mlp_bundle)
    quantize_bundle(path, QuantizeRequest(method="fp16"))
    unlabelled = tmp_path / "x.npy"
    np.save(unlabelled, pd.read_csv(regression_data).drop(columns=["target"]).to_numpy(np.float32))
    result = evaluate(path, "--data", unlabelled, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "cosine_mean" and not report["data"]["labelled"]
    vs = report["variants"]["fp16"]["vs_fp32"]
    assert report["variants"]["fp16"]["metrics"] == {}
    assert vs["cosine_mean"] > 0.999 and vs["max_abs_diff"] > 0


def test_gate_rejects_and_require_pass(tabular_quantized, tabular_data):
    path = tabular_quantized
    strict = evaluate(
        path,
        "--data",
        tabular_data,
        "--target-column",
        "target",
        "--max-drop",
        "0",
        "--metric",
        "roc_auc",
        "--require-pass",
        "--json",
    )
    report = json.loads(strict.stdout)
    assert report["metric"] == "roc_auc"
    rejected = {n for n, r in report["variants"].items() if n != "fp32" and not r["gate"]["passed"]}
    assert "int8-static" in rejected
    manifest = Bundle.open(path).manifest
    assert manifest["variants"]["int8-static"]["rejected"] is True
    assert manifest["variants"]["int8-static"]["reject_reason"].startswith("accuracy gate: roc_auc")
    if rejected == {"int8-dynamic", "int8-static"}:
        assert strict.exit_code == 1
    else:
        assert strict.exit_code == 0

    # A tolerance that only the dynamic variant meets: static rejected, exit 0 with --require-pass.
    ok = evaluate(
        path,
        "--data",
        tabular_data,
        "--target-column",
        "target",
        "--max-drop",
        "0.02",
        "--require-pass",
    )
    assert ok.exit_code == 0, ok.output
    assert "✗ int8-static: accuracy gate" in ok.output
    tables = [line for line in ok.stdout.split("✗")[0].splitlines() if not line.startswith("  ")]
    assert any("int8-dynamic " in line for line in tables)  # names whole, in 80 columns
    assert not any("…" in line for line in tables)
    assert max(len(line) for line in tables) <= 80
    manifest = Bundle.open(path).manifest
    assert manifest["variants"]["int8-dynamic"]["rejected"] is False
    assert manifest["variants"]["int8-static"]["rejected"] is True
    assert "accuracy" in manifest["variants"]["int8-static"]["reject_reason"]


def test_require_pass_exits_1_when_nothing_passes(copy_bundle, tabular_bundle, tabular_data):
    path = copy_bundle(tabular_bundle)
    quantize_bundle(path, QuantizeRequest(method="static"))
    result = evaluate(path, "--data", tabular_data, "--target-column", "target", "--require-pass")
    assert result.exit_code == 1
    assert "no quantized variant passed" in result.output
    entry = Bundle.open(path).variant("int8-static")
    assert entry["rejected"] and entry["evaluation"]["gate"]["passed"] is False
    # without --require-pass the same outcome is reported but is not a failure
    assert evaluate(path, "--data", tabular_data, "--target-column", "target").exit_code == 0


def test_failed_static_variant_gets_qdq_debug_and_auto_exclude(
    copy_bundle, tabular_bundle, tabular_data
):
    path = copy_bundle(tabular_bundle)
    quantize_bundle(path, QuantizeRequest(method="static"))
    result = evaluate(
        path, "--data", tabular_data, "--target-column", "target", "--auto-exclude", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    static = report["variants"]["int8-static"]
    assert not static["gate"]["passed"]
    debug = static["debug"]
    assert debug["tool"] == "onnxruntime.quantization.qdq_loss_debug"
    assert debug["worst_tensors"] and debug["worst_nodes"]
    sqnr = [t["qdq_sqnr_db"] for t in debug["worst_tensors"] if t["qdq_sqnr_db"] is not None]
    assert sqnr == sorted(sqnr)
    retried = report["retried"]
    assert retried == ["int8-static-excl2"]
    new = report["variants"]["int8-static-excl2"]
    excluded = new["auto_exclude"]["excluded_nodes"]
    assert excluded == [n["node"] for n in debug["worst_nodes"][:2]]
    bundle = Bundle.open(path)
    bundle.verify()
    entry = bundle.variant("int8-static-excl2")
    assert entry["quantization"]["config"]["nodes_to_exclude"] == sorted(excluded)
    assert entry["evaluation"]["gate"]["metric"] == "accuracy"
    # leaving the worst nodes in float recovers accuracy
    assert new["metrics"]["accuracy"] > static["metrics"]["accuracy"]


def test_bad_inputs(copy_bundle, cnn_bundle, digits_data, tmp_path):
    path = copy_bundle(cnn_bundle)
    unknown = evaluate(path, "--data", digits_data, "--target-column", "target", "--metric", "bleu")
    assert unknown.exit_code == 2 and "accuracy" in unknown.output
    forgot = evaluate(path, "--data", digits_data)
    assert forgot.exit_code == 2 and "--target-column target" in forgot.output
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, input=np.zeros((5, 3, 8, 8), np.float32), target=np.zeros(5, np.int64))
    bad_shape = evaluate(path, "--data", wrong, "--target-column", "target")
    assert bad_shape.exit_code == 2 and "shape (5, 3, 8, 8)" in bad_shape.output
    classes = tmp_path / "classes.npz"
    np.savez(classes, input=np.zeros((5, 1, 8, 8), np.float32), target=np.full(5, 42))
    unknown_class = evaluate(path, "--data", classes, "--target-column", "target")
    assert unknown_class.exit_code == 2 and "'42'" in unknown_class.output
    empty = tmp_path / "empty.npz"
    np.savez(empty, input=np.zeros((0, 1, 8, 8), np.float32), target=np.zeros(0, np.int64))
    no_rows = evaluate(path, "--data", empty, "--target-column", "target")
    assert no_rows.exit_code == 2 and "no rows" in no_rows.output
    missing = evaluate(path, "--data", tmp_path / "nope.npz", "--target-column", "target")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert evaluate(tmp_path / "no-bundle", "--data", digits_data).exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("--max-drop", "nan"),
        ("--max-drop", "inf"),
        ("--max-drop", "-0.1"),
        ("--variant", "nope"),
        ("--auto-exclude", "-1"),
    ],
)
def test_bad_options_exit_2_and_leave_the_manifest(copy_bundle, cnn_bundle, digits_data, args):
    path = copy_bundle(cnn_bundle)
    before = (path / "manifest.json").read_bytes()
    res = evaluate(path, "--data", digits_data, "--target-column", "target", *args)
    assert res.exit_code == 2, res.output
    assert args[0] in res.output or "nope" in res.output
    assert (path / "manifest.json").read_bytes() == before
