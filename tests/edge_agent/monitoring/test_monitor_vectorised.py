"""The drain's vectorised steps give what their one-at-a-time forms give, to the bit: the
three latency histograms from one searchsorted/bincount, and every numeric feature's drift
bins from one finiteness test and one bincount (NaN and ±inf in no bin)."""

from __future__ import annotations

import numpy as np

from edge_agent import telemetry
from edge_agent.monitoring.monitor import Monitor, _Hist, _numeric_counts


def test_histogram_rows_equal_separate_adds():
    rng = np.random.default_rng(3)
    bounds = np.asarray(telemetry.LATENCY_BOUNDS_MS)
    values = np.concatenate(
        [rng.exponential(2.0, (3, 5000)), np.tile(bounds[:50], (3, 1))], axis=1
    )  # values exactly on bucket bounds too
    values[1, 7] = 0.0
    rows = [_Hist() for _ in range(3)]
    _Hist.add_rows(rows, values[:, :2000])
    _Hist.add_rows(rows, values[:, 2000:])
    _Hist.add_rows(rows, values[:, :0])  # an empty drain changes nothing
    for row, got in zip(values, rows, strict=True):
        want = _Hist()
        want.add(row[:2000])
        want.add(row[2000:])
        assert got.counts.tolist() == want.counts.tolist()
        assert (got.sum, got.min, got.max) == (want.sum, want.min, want.max)


def _baseline(rng):
    def numeric(name, tensor, index, edges):
        return {
            "name": name,
            "kind": "numeric",
            "source": {"tensor": tensor, "index": index},
            "bin_edges": edges,
            "bin_shares": [1 / (len(edges) + 1)] * (len(edges) + 1),
            "min": edges[0],
            "max": edges[-1],
        }

    features = [
        numeric(f"x[{i}]", "x", i, sorted(rng.normal(size=6 + i).tolist())) for i in range(4)
    ]
    predictions = [
        {
            "name": "y:argmax",
            "kind": "categorical",
            "source": {"tensor": "y", "summary": "argmax"},
            "categories": {"0": 0.5, "1": 0.3, "2": 0.2},
        },
        numeric("y[1]", "y", 1, [-1.0, 0.0, 0.5, 1.0]),
    ]
    return {"features": features, "predictions": predictions}


def test_numeric_bins_of_all_features_equal_per_feature_counts():
    rng = np.random.default_rng(5)
    base = _baseline(rng)
    monitor = Monitor(base, "classification", None, {"y": "logits"})
    states = monitor._feature_state + monitor._prediction_state
    x = rng.normal(size=(3000, 4))
    x[::7, 1] = np.nan
    x[5, 2], x[9, 2], x[11, 0] = np.inf, -np.inf, np.nan
    x[20, 3] = base["features"][3]["bin_edges"][2]  # exactly on an edge
    y = rng.normal(size=(3000, 3)).astype(np.float32)
    y[3, 1] = np.nan
    values = [x[:, i] for i in range(4)] + [y.argmax(axis=1), y[:, 1]]
    monitor._bin_all(states, values)
    monitor._bin_all(states, [None, x[:10, 1], None, None, None, y[:10, 1]])  # absent features
    for i, state in enumerate(states):
        if state.edges is None:
            continue
        want = _numeric_counts(values[i], state.edges)
        if i in (1, 5):
            want = want + _numeric_counts(values[i][:10], state.edges)
        assert state.counts.tolist() == want.tolist(), state.spec.name
    _, _, body = monitor.close_window()
    got = body["drift"]["features"]["x[2]"]["counts"]
    assert sum(got) == 2998, "the two infinities are in no bin"
    assert not monitor._numeric_counts.any(), "a closed window starts from zero"
