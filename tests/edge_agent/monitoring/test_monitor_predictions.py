"""Predictions kept for label joins: the monitor's drain keeps each batch's predictions as a
block and indexes them by inference id only when labels arrive, with the same eviction as
the per-drain dict it replaced (the newest ``feedback_keep`` stay, a quarter of slack), for
single-row and multi-row requests, and with labels joined exactly."""

from __future__ import annotations

import numpy as np

from edge_agent.monitoring.monitor import Monitor

LABELS = ["a", "b", "c"]


def _monitor(keep: int) -> Monitor:
    return Monitor(None, "classification", LABELS, {"probs": "probabilities"}, feedback_keep=keep)


def _feed(monitor: Monitor, iid: str, probs: np.ndarray) -> None:
    monitor.record(0.0, 0.0, 0.0, len(probs), iid, np.zeros((len(probs), 2)), probs, ("probs",))


def test_drains_keep_blocks_and_labels_index_them():
    monitor = _monitor(1000)
    rng = np.random.default_rng(0)
    want = {}
    for block in range(5):
        for i in range(40):
            rows = 1 + (i % 3 == 0) * 2  # every third request has three rows
            probs = rng.random((rows, 3))
            iid = f"r{block}-{i}"
            _feed(monitor, iid, probs)
            picked = [LABELS[j] for j in probs.argmax(axis=1)]
            want[iid] = picked
        monitor.drain()
    assert monitor._kept == {}, "a drain does no per-id work"
    assert len(monitor._blocks) == 5
    # a batch with a multi-row request keeps every request's rows as a list (one row: one item)
    got = {k: ([v] if isinstance(v, str) else list(v)) for k, v in monitor._predictions.items()}
    assert got == want and list(got) == list(want), "same values, oldest first"
    result = monitor.feedback(
        [
            {"inference_id": "r0-1", "label": want["r0-1"][0]},
            {"inference_id": "r4-3", "labels": want["r4-3"]},
            {"inference_id": "r2-0", "labels": ["a"]},  # three rows, one label
            {"inference_id": "nope", "label": "a"},
        ]
    )
    assert result["joined"] == 2 and result["unknown"] == ["nope"]
    assert len(result["problems"]) == 1
    _, _, body = monitor.close_window()
    assert body["quality"]["labels"] == 4
    assert body["quality"]["scores"]["accuracy"] == 1.0


def test_eviction_keeps_the_newest_across_blocks_and_partial_blocks():
    keep = 50
    monitor = _monitor(keep)
    order = []
    for block, size in enumerate([30, 25, 7, 40, 3, 60, 11]):
        for i in range(size):
            iid = f"b{block}-{i}"
            rows = 2 if i % 4 == 1 else 1
            _feed(monitor, iid, np.eye(3)[[i % 3] * rows])
            order.append(iid)
        monitor.drain()
        held = len(monitor._kept) + monitor._block_count
        assert held <= keep + keep // 4, "bounded by feedback_keep (+ a quarter)"
        if block == 3:  # labels arrive between drains: indexed ones are evicted first later
            assert monitor.feedback([{"inference_id": order[-1], "label": "b"}])["joined"] == 1
    kept = monitor._predictions
    assert keep <= len(kept) <= keep + keep // 4
    assert list(kept) == order[-len(kept) :], "exactly the newest, oldest first"
    for iid in list(kept)[:5]:  # the oldest kept ones have their own values after slicing
        i = int(iid.split("-")[1])
        value = kept[iid]
        rows = [value] if isinstance(value, str) else list(value)
        assert rows == [LABELS[i % 3]] * (2 if i % 4 == 1 else 1)


def test_requests_that_asked_for_different_outputs_keep_their_own_predictions():
    """A drain can hold requests that asked for different outputs (KServe's `outputs`): joined by
    name, the `label` rows of some would line up with the ids of others, and the block with
    fewer values than ids made every later feedback fail with a 500 (found by tryhostile)."""
    monitor = Monitor(None, "classification", LABELS, {"label": "label", "probs": "probabilities"})
    both, probs_only, label_only = ("label", "probs"), ("probs",), ("label",)
    x = np.zeros((1, 2))
    monitor.record(0.0, 0.0, 0.0, 1, "r1", x, [np.array(["a"]), np.eye(3)[[0]]], both)
    monitor.record(0.0, 0.0, 0.0, 1, "r2", x, [np.eye(3)[[1]]], probs_only)
    monitor.record(0.0, 0.0, 0.0, 2, "r3", np.zeros((2, 2)), [np.array(["c", "a"])], label_only)
    monitor.record(0.0, 0.0, 0.0, 1, "r4", x, [np.array(["c"]), np.eye(3)[[2]]], both)
    monitor.drain()
    result = monitor.feedback(
        [
            {"inference_id": "r1", "label": "a"},
            {"inference_id": "r2", "label": "b"},
            {"inference_id": "r3", "labels": ["c", "a"]},
            {"inference_id": "r4", "label": "c"},
        ]
    )
    assert result == {"joined": 4, "unknown": [], "problems": []}
    _, _, body = monitor.close_window()
    assert body["quality"]["labels"] == 5
    assert body["quality"]["scores"]["accuracy"] == 1.0, "each label met its own prediction"


def _one(monitor: Monitor, iid: str, label_index: int = 0) -> None:
    _feed(monitor, iid, np.eye(3)[[label_index]])


def test_a_prediction_takes_its_labels_once():
    """A retried or replayed feedback POST counted the same label again (found by tryhostile)."""
    monitor = _monitor(100)
    _one(monitor, "r1")
    assert monitor.feedback([{"inference_id": "r1", "label": "a"}])["joined"] == 1
    again = monitor.feedback([{"inference_id": "r1", "label": "b"}] * 50)
    assert again["joined"] == 0 and again["unknown"] == []
    assert again["problems"][0] == "'r1': already labelled"
    _, _, body = monitor.close_window()
    assert body["quality"]["labels"] == 1
    assert body["quality"]["confusion"] == {"a|a": 1}


def test_feedback_labels_outside_the_models_classes_are_refused():
    """Free-form labels grew the window's confusion counts, sent with every metrics message,
    without bound: 2,000 distinct 1 kB labels made a 2 MB metrics body (found by tryhostile)."""
    monitor = _monitor(10_000)
    for i in range(2000):
        _one(monitor, f"r{i}")
    result = monitor.feedback(
        [{"inference_id": f"r{i}", "label": f"{i}-" + "x" * 1000} for i in range(2000)]
    )
    assert result["joined"] == 0 and len(result["problems"]) == 2000
    assert "is not one of the model's classes (a, b, c)" in result["problems"][0]
    assert len(result["problems"][0]) < 200, "the client's value is cut short"
    _, _, body = monitor.close_window()
    assert not (body["quality"] or {}).get("labels")


def test_without_declared_classes_the_pairs_a_window_counts_are_capped():
    from edge_agent.monitoring.monitor import MAX_CONFUSION_PAIRS

    monitor = Monitor(None, "classification", None, {"probs": "probabilities"})
    n = MAX_CONFUSION_PAIRS + 10
    for i in range(n):
        monitor.record(0.0, 0.0, 0.0, 1, f"r{i}", np.zeros((1, 2)), np.eye(3)[[0]], ("probs",))
    result = monitor.feedback([{"inference_id": f"r{i}", "label": i} for i in range(n)])
    assert result["joined"] == MAX_CONFUSION_PAIRS
    assert "distinct (label, prediction) pairs" in result["problems"][0]
    odd = monitor.feedback([{"inference_id": "x", "label": {"a": 1}}])
    assert odd["unknown"] == ["x"]


def test_regression_labels_must_be_finite_numbers():
    """One "nan" label made the window's MAE and RMSE NaN (found by tryhostile)."""
    monitor = Monitor(None, "regression", None, {"y": "value"})
    for i in range(4):
        monitor.record(0.0, 0.0, 0.0, 1, f"r{i}", np.zeros((1, 2)), np.array([[1.0]]), ("y",))
    result = monitor.feedback(
        [
            {"inference_id": "r0", "label": "nan"},
            {"inference_id": "r1", "label": "inf"},
            {"inference_id": "r2", "label": 1e400},
            {"inference_id": "r3", "label": 3.0},
        ]
    )
    assert result["joined"] == 1 and len(result["problems"]) == 3
    _, _, body = monitor.close_window()
    assert body["quality"]["labels"] == 1
    assert all(np.isfinite(v) for v in body["quality"]["scores"].values())
