"""The drift baseline (contract 2) checked against plain numpy and Python counting."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BundleError
from edge_agent.monitoring import baseline
from edge_agent.schemas import validation_errors


def _count_by_hand(values: np.ndarray, edges: list[float]) -> list[int]:
    """Bins (-inf, e0], (e0, e1], ..., (e_last, inf), counted one value at a time."""
    counts = [0] * (len(edges) + 1)
    for v in values:
        if not np.isfinite(v):
            continue
        i = 0
        while i < len(edges) and v > edges[i]:
            i += 1
        counts[i] += 1
    return counts


def test_numeric_summary_matches_numpy():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.gamma(2.0, 3.0, 997), [np.nan, np.nan, np.inf]])
    summary = baseline.numeric_summary(values, bins=10)
    finite = values[np.isfinite(values)]
    assert summary["count"] == 1000
    assert summary["missing_rate"] == pytest.approx(3 / 1000)
    assert summary["mean"] == pytest.approx(finite.mean())
    assert summary["std"] == pytest.approx(finite.std())
    assert summary["min"] == finite.min() and summary["max"] == finite.max()
    # deciles taken at observed values: the k-th edge is the ceil(k * n / 10)-th smallest value
    ordered = np.sort(finite)
    expected_edges = [ordered[int(np.ceil(k * finite.size / 10)) - 1] for k in range(1, 10)]
    np.testing.assert_array_equal(summary["bin_edges"], expected_edges)
    by_hand = _count_by_hand(finite, summary["bin_edges"])
    np.testing.assert_allclose(summary["bin_shares"], np.array(by_hand) / finite.size)
    assert sum(summary["bin_shares"]) == pytest.approx(1.0)
    assert len(summary["bin_shares"]) == len(summary["bin_edges"]) + 1
    # continuous values: each bin holds a tenth, to one value
    np.testing.assert_allclose(summary["bin_shares"], 0.1, atol=1.5 / finite.size)


def test_discrete_values_collapse_duplicate_edges():
    values = np.array([0] * 70 + [1] * 20 + [2] * 10, dtype=float)
    summary = baseline.numeric_summary(values)
    assert summary["bin_edges"] == [0.0, 1.0]  # unique quantiles only
    assert summary["bin_shares"] == pytest.approx([0.7, 0.2, 0.1])


def test_numeric_counts_put_edge_values_in_the_lower_bin_and_skip_nan():
    counts = baseline.numeric_counts(np.array([-5, 1, 1.5, 2, 2.0001, 99, np.nan]), [1.0, 2.0])
    assert counts.tolist() == [2, 2, 2]


def test_all_missing_numeric_feature():
    summary = baseline.numeric_summary(np.array([np.nan, np.nan]))
    assert summary["missing_rate"] == 1.0 and summary["bin_edges"] == []
    assert summary["mean"] is None


def test_categorical_summary_shares_and_missing():
    values = np.array(["a", "b", "a", "", "c", "a", "nan", "b"], dtype=object)
    summary = baseline.categorical_summary(values)
    present = [v for v in values if v not in ("", "nan")]
    expected = {k: n / len(present) for k, n in Counter(present).items()}
    assert summary["categories"] == pytest.approx(expected)
    assert list(summary["categories"]) == ["a", "b", "c"]  # most frequent first
    assert summary["missing_rate"] == pytest.approx(2 / 8)
    assert summary["count"] == 8


def test_many_categories_keep_the_top_ones_and_other():
    values = np.array([f"c{i}" for i in range(60) for _ in range(i + 1)])
    summary = baseline.categorical_summary(values)
    cats = summary["categories"]
    assert len(cats) == baseline.MAX_CATEGORIES + 1 and baseline.OTHER in cats
    assert sum(cats.values()) == pytest.approx(1.0)
    assert "c59" in cats and "c0" not in cats
    counts = baseline.categorical_counts(np.array(["c59", "c0", "zzz"]), list(cats))
    assert counts[list(cats).index("c59")] == 1
    assert counts[list(cats).index(baseline.OTHER)] == 2  # c0 and an unseen value


def test_compute_for_images_uses_per_row_summaries():
    rng = np.random.default_rng(1)
    images = rng.random((50, 1, 8, 8)).astype(np.float32)
    logits = rng.normal(size=(50, 10)).astype(np.float32)
    signature = {
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, 8, 8]}],
        "outputs": [
            {"name": "logits", "dtype": "float32", "shape": ["batch", 10], "role": "logits"}
        ],
    }
    doc = baseline.compute(signature, {"image": images}, {"logits": logits})
    assert validation_errors(doc, "baseline") == []
    features = {f["name"]: f for f in doc["features"]}
    assert list(features) == ["image:mean", "image:std", "image:min", "image:max"]
    flat = images.reshape(50, -1).astype(np.float64)
    assert features["image:mean"]["mean"] == pytest.approx(flat.mean(axis=1).mean())
    assert features["image:max"]["max"] == pytest.approx(flat.max())
    assert features["image:std"]["source"] == {"tensor": "image", "index": None, "summary": "std"}
    preds = {p["name"]: p for p in doc["predictions"]}
    argmax = preds["logits:argmax"]
    assert argmax["kind"] == "categorical"
    expected = Counter(str(i) for i in logits.argmax(axis=1))
    assert argmax["categories"] == pytest.approx({k: n / 50 for k, n in expected.items()})
    assert [n for n in preds if n.startswith("logits[")] == [f"logits[{i}]" for i in range(10)]


def test_compute_for_a_classifier_tracks_the_label_not_the_probabilities():
    signature = {
        "inputs": [
            {"name": "age", "dtype": "float32", "shape": [None, 1]},
            {"name": "city", "dtype": "string", "shape": [None, 1]},
        ],
        "outputs": [
            {"name": "label", "dtype": "string", "shape": [None], "role": "label"},
            {
                "name": "probabilities",
                "dtype": "float32",
                "shape": [None, 2],
                "role": "probabilities",
            },
        ],
    }
    inputs = {
        "age": np.array([[30.0], [np.nan], [50.0], [41.0]], np.float32),
        "city": np.array([["oslo"], [""], ["lima"], ["oslo"]]),
    }
    outputs = {
        "label": np.array(["stay", "churn", "stay", "stay"]),
        "probabilities": np.full((4, 2), 0.5, np.float32),
    }
    doc = baseline.compute(signature, inputs, outputs)
    assert validation_errors(doc, "baseline") == []
    features = {f["name"]: f for f in doc["features"]}
    assert features["age"]["missing_rate"] == 0.25
    assert features["city"]["categories"] == pytest.approx({"oslo": 2 / 3, "lima": 1 / 3})
    assert [p["name"] for p in doc["predictions"]] == ["label"]
    assert doc["predictions"][0]["categories"] == {"stay": 0.75, "churn": 0.25}


def test_write_validates_and_refuses_a_broken_document(tmp_path: Path):
    good = baseline.compute(
        {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 1]}], "outputs": []},
        {"x": np.arange(10, dtype=np.float32).reshape(-1, 1)},
        {},
    )
    baseline.write(tmp_path / "baseline.json", good)
    assert json.loads((tmp_path / "baseline.json").read_text()) == good
    bad = {**good, "rows": 0}
    with pytest.raises(BundleError, match=r"\$\.rows"):
        baseline.write(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()


def test_shared_bundles_have_schema_valid_baselines(tabular_bundle: Path, cnn_bundle: Path):
    for path in (tabular_bundle, cnn_bundle):
        doc = Bundle.open(path).baseline()
        assert validation_errors(doc, "baseline") == []
        for entry in doc["features"] + doc["predictions"]:
            if entry["kind"] == "numeric" and entry["bin_shares"]:
                assert sum(entry["bin_shares"]) == pytest.approx(1.0)
            if entry["kind"] == "categorical" and entry["categories"]:
                assert sum(entry["categories"].values()) == pytest.approx(1.0)
