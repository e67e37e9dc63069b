"""Which features drift monitoring tracks for a signature, and their per-row values."""

from __future__ import annotations

import numpy as np

from edge_agent.monitoring.features import MAX_ELEMENT_FEATURES, FeatureSpec, specs_for, values_for


def test_small_tables_get_one_feature_per_column():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    specs = specs_for([{"name": "X", "dtype": "float32", "shape": [None, 3]}], {"X": x})
    assert [s.name for s in specs] == ["X[0]", "X[1]", "X[2]"]
    np.testing.assert_array_equal(values_for(specs[2], {"X": x}), x[:, 2])


def test_wide_tensors_get_row_summaries():
    x = np.random.default_rng(0).random((5, MAX_ELEMENT_FEATURES + 1))
    specs = specs_for([{"name": "v", "dtype": "float32", "shape": [None, 65]}], {"v": x})
    assert [s.summary for s in specs] == ["mean", "std", "min", "max"]
    np.testing.assert_allclose(values_for(specs[1], {"v": x}), x.std(axis=1))


def test_summaries_ignore_nan_within_a_row():
    x = np.array([[1.0, np.nan, 3.0] * 30])
    spec = FeatureSpec("v:mean", "numeric", "v", summary="mean")
    assert values_for(spec, {"v": x}).tolist() == [2.0]


def test_string_columns_are_categorical_and_multi_valued_strings_are_skipped():
    tensors = [
        {"name": "city", "dtype": "string", "shape": [None, 1]},
        {"name": "tags", "dtype": "string", "shape": [None, 2]},
    ]
    arrays = {"city": np.array([["a"], ["b"]]), "tags": np.array([["x", "y"], ["z", "w"]])}
    specs = specs_for(tensors, arrays)
    assert [(s.name, s.kind) for s in specs] == [("city", "categorical")]
    assert values_for(specs[0], arrays).tolist() == ["a", "b"]


def test_prediction_specs_by_role():
    outputs = [
        {"name": "label", "dtype": "int64", "shape": [None], "role": "label"},
        {"name": "probabilities", "dtype": "float32", "shape": [None, 3], "role": "probabilities"},
    ]
    arrays = {"label": np.array([0, 2, 1]), "probabilities": np.eye(3, dtype=np.float32)}
    specs = specs_for(outputs, arrays, prediction=True)
    assert [(s.name, s.kind) for s in specs] == [("label", "categorical")]
    # logits without a label output: the argmax class and each logit
    logits = [{"name": "logits", "dtype": "float32", "shape": [None, 3], "role": "logits"}]
    arrays = {"logits": np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]], np.float32)}
    specs = specs_for(logits, arrays, prediction=True)
    assert [s.name for s in specs] == ["logits:argmax", "logits[0]", "logits[1]", "logits[2]"]
    assert values_for(specs[0], arrays).tolist() == ["1", "0"]
    # round trip through the baseline entry form
    entry = {"name": specs[0].name, "kind": specs[0].kind, "source": specs[0].source()}
    assert FeatureSpec.from_baseline(entry) == specs[0]
