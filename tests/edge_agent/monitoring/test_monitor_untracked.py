"""The request path queues nothing the garbage collector tracks for a one-input model (bare
arrays instead of dicts and lists, which used to pile up in the collector's older generations),
and the monitor gives the same window from bare arrays as from dicts; its byte-joined batches
equal np.concatenate, falling back to it for anything a join cannot take."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from agent_helpers import config, sample_feeds
from test_monitor_bulk import LABELS, _per_row_window

from edge_agent.monitoring import baseline as baseline_mod
from edge_agent.monitoring.monitor import Monitor, _join_rows
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine


def test_queued_requests_hold_nothing_the_collector_tracks(tmp_path, regression_bundle):
    engine = Engine(config(regression_bundle, tmp_path), model_mod.load(regression_bundle))
    monitor = engine.active.monitor
    monitor.stop()  # keep what is queued where the test can look at it
    try:
        feeds = sample_feeds(regression_bundle, 1)
        for _ in range(200):
            engine.infer({k: v.copy() for k, v in feeds.items()})
        gc.collect()  # untracks the tuples whose contents are all untracked
        queued = list(monitor.pending)
        assert len(queued) == 200
        assert not [item for item in queued if gc.is_tracked(item)]
        monitor.drain()
        _, _, body = monitor.close_window()
        assert body["requests"]["count"] == 200 and body["data_quality"]["rows"] == 200
        assert body["drift"]["features"], "the bare arrays were monitored"
    finally:
        engine.close()


def test_bare_array_items_give_the_per_row_window():
    rng = np.random.default_rng(5)
    signature = {
        "inputs": [{"name": "wide"}],
        "outputs": [{"name": "logits", "role": "logits"}],
    }

    def predict(feeds):
        return {"logits": np.nan_to_num(feeds["wide"][:, :4] * 3).astype(np.float32)}

    reference = {"wide": rng.standard_normal((300, 256)).astype(np.float32)}
    base = baseline_mod.compute(signature, reference, predict(reference))
    monitor = Monitor(base, "classification", LABELS, {"logits": "logits"}, single_input="wide")
    requests = []
    for i in range(240):
        wide = (rng.standard_normal((1, 256)) * (1 + (i > 120))).astype(np.float32)
        if i % 13 == 5:
            wide[0, 7] = np.nan  # a NaN row: summaries take the exact per-row path
        feeds = {"wide": wide}
        outputs = predict(feeds)
        # bare arrays mostly; every fifth request the dict/list form, as other callers queue
        bare = i % 5 != 0
        item = (
            0.0,
            0.001,
            0.002,
            1,
            f"id-{i}",
            wide if bare else feeds,
            outputs["logits"] if bare else [outputs["logits"]],
            ["logits"],
        )
        monitor.pending.append(item)
        requests.append((f"id-{i}", feeds, outputs))
        if i % 70 == 69:
            monitor.drain()
    monitor.drain()
    kept = dict(monitor._predictions)
    _, _, body = monitor.close_window()
    want_drift, want_quality, want_predictions = _per_row_window(base, requests)
    got = {**body["drift"]["features"], **body["drift"]["predictions"]}
    assert {k: v["counts"] for k, v in got.items()} == {
        k: [int(c) for c in v] for k, v in want_drift.items()
    }
    counts = body["data_quality"]["counts"]
    assert {k: counts[k] for k in want_quality} == want_quality
    assert kept == want_predictions


def test_dropped_feeds_are_skipped_among_bare_arrays():
    monitor = Monitor(None, "regression", None, {"y": "raw"}, single_input="x")
    x, y = np.ones((1, 3), np.float32), np.ones((1, 1), np.float32)
    monitor.pending.extend(
        [(0.0, 0.0, 0.001, 1, f"id-{i}", x if i % 2 else None, y, ["y"]) for i in range(6)]
    )
    monitor.drain()
    _, _, body = monitor.close_window()
    assert body["monitor"]["skipped"] == 3 and body["requests"]["count"] == 6


@pytest.mark.parametrize(
    "arrays",
    [
        [np.arange(6, dtype=np.float32).reshape(1, 6) + i for i in range(5)],
        [np.arange(12, dtype=np.int64).reshape(2, 2, 3) * i for i in range(4)],
        [np.array([["a", "bc"]]), np.array([["def", "g"]])],  # widths differ: <U2, <U3
        [np.ones((1, 3)), np.ones((2, 3))],  # row counts differ
        [np.ones((1, 3), np.float32), np.ones((1, 3), np.float64)],  # dtypes differ
        [np.ones((3, 4))[:, ::2][:1], np.ones((1, 2))],  # not contiguous
        [np.array([[1, None]], dtype=object), np.array([[2, 3]], dtype=object)],
        [np.ones((1, 4), np.float32)],
    ],
)
def test_join_rows_equals_concatenate(arrays):
    joined = _join_rows(arrays)
    want = np.concatenate(arrays)
    assert joined.dtype == want.dtype and joined.shape == want.shape
    assert joined.tolist() == want.tolist()


def test_row_summaries_reuse_their_work_buffer():
    """The float64 copy a drain's row summaries work in is kept between drains, not allocated
    afresh (fresh megabytes came as new pages the kernel faulted in for every drain)."""
    import tracemalloc

    from edge_agent.monitoring.monitor import _row_summaries

    block = np.random.default_rng(3).standard_normal((1024, 256)).astype(np.float32)
    want = _row_summaries(block)  # the first drain on this thread makes the buffer
    tracemalloc.start()
    try:
        got = _row_summaries(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < block.nbytes // 4, f"{peak} bytes allocated for a {block.nbytes}-byte block"
    for name in ("mean", "std", "min", "max"):
        assert np.array_equal(got[name], want[name])
    reference = block.astype(np.float64)
    assert np.array_equal(got["mean"], np.nanmean(reference, axis=1))
    assert np.array_equal(got["std"], np.nanstd(reference, axis=1))
