"""The metrics are sklearn.metrics' on known predictions, and predictions are read correctly
from probabilities, logits and values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from edge_agent.errors import BadInputError
from edgekit.toolkit.evaluate import gate
from edgekit.toolkit.scoring import metrics as M
from edgekit.toolkit.scoring import predictions as P


def test_binary_metrics_match_sklearn():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    proba1 = np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.6, 0.7, 0.2])
    proba = np.stack([1 - proba1, proba1], axis=1)
    pred = (proba1 > 0.5).astype(int)
    got = M.classification(y, pred, proba, ["no", "yes"])
    assert got["accuracy"] == pytest.approx(0.625)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba1))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["confusion_matrix"] == [[2, 1], [2, 3]]
    assert got["confusion_labels"] == ["no", "yes"]


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    logits = rng.normal(size=(60, 3)) + np.eye(3)[y] * 1.5
    proba = P.softmax(logits)
    pred = proba.argmax(1)
    got = M.classification(y, pred, proba, [0, 1, 2])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for avg in ("macro", "weighted"):
        assert got[f"f1_{avg}"] == pytest.approx(skm.f1_score(y, pred, average=avg))
        assert got[f"precision_{avg}"] == pytest.approx(skm.precision_score(y, pred, average=avg))
        assert got[f"recall_{avg}"] == pytest.approx(skm.recall_score(y, pred, average=avg))
    assert got["roc_auc_ovr"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert np.array_equal(got["confusion_matrix"], skm.confusion_matrix(y, pred))


def test_auc_is_none_with_a_reason_when_a_class_is_missing():
    y = np.array([0, 1, 0, 1])
    proba = np.full((4, 3), 1 / 3)
    got = M.classification(y, proba.argmax(1), proba, [0, 1, 2])
    assert got["roc_auc_ovr"] is None and "roc_auc_ovr" in got["notes"][0]


def test_regression_metrics_match_sklearn():
    y = np.array([3.0, -0.5, 2.0, 7.0])
    pred = np.array([2.5, 0.0, 2.0, 8.0])
    got = M.regression(y, pred)
    assert got == pytest.approx(
        {
            "mae": skm.mean_absolute_error(y, pred),
            "mse": skm.mean_squared_error(y, pred),
            "rmse": np.sqrt(skm.mean_squared_error(y, pred)),
            "r2": skm.r2_score(y, pred),
        }
    )


def test_versus_reference_cosine_and_max_diff():
    ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    got = np.array([[1.0, 0.0], [1.0, 1.0]])
    r = M.versus_reference(ref, got)
    assert r["cosine_min"] == pytest.approx(np.sqrt(0.5))
    assert r["cosine_mean"] == pytest.approx((1 + np.sqrt(0.5)) / 2)
    assert r["max_abs_diff"] == 1.0
    assert M.versus_reference(ref, ref)["cosine_mean"] == pytest.approx(1.0)


def test_logits_are_read_through_softmax_and_probabilities_as_given():
    sig_logits = {"outputs": [{"name": "logits", "role": "logits"}], "labels": [0, 1, 2]}
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    pred = P.read(sig_logits, "classification", {"logits": logits})
    assert np.allclose(pred.proba, np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    assert pred.classes.tolist() == [0, 2] and "softmax" in pred.source

    sig_proba = {
        "outputs": [
            {"name": "label", "role": "label"},
            {"name": "probabilities", "role": "probabilities"},
        ],
        "labels": ["a", "b"],
    }
    proba = np.array([[0.2, 0.8], [0.9, 0.1]], np.float32)
    pred = P.read(
        sig_proba, "classification", {"label": np.array(["b", "a"]), "probabilities": proba}
    )
    assert pred.classes.tolist() == [1, 0] and np.allclose(pred.proba, proba)


def test_targets_map_by_label_or_by_index():
    assert P.target_indices(np.array(["b", "a"]), ["a", "b"]).tolist() == [1, 0]
    assert P.target_indices(np.array([1, 0]), ["cat", "dog"]).tolist() == [1, 0]
    assert P.target_indices(np.array([1.0, 0.0]), [0, 1]).tolist() == [1, 0]
    with pytest.raises(BadInputError, match="classes"):
        P.target_indices(np.array(["zebra"]), ["cat", "dog"])


def test_drop_respects_the_metric_direction():
    assert M.drop("accuracy", 0.90, 0.95) == pytest.approx(0.05)
    assert M.drop("mae", 12.0, 10.0) == pytest.approx(2.0)
    assert M.drop("r2", 0.6, 0.5) == pytest.approx(-0.1)
    j = gate.judge("mae", 12.0, 10.0, 1.0, "v")
    assert not j["passed"] and "mae" in j["reason"] and j["reason"].startswith("accuracy gate")
    assert gate.judge("accuracy", 0.945, 0.95, 0.01, "v")["passed"]
    assert not gate.judge("accuracy", float("nan"), 0.95, 0.01, "v")["passed"]
