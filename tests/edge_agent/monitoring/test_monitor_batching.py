"""The monitor's bookkeeping off the request path: it drains in large batches (woken early when
DRAIN_BATCH requests are queued), keeps batch-1 predictions compactly, evicts the oldest in bulk,
and feedback still joins labels to single-row and multi-row requests alike."""

from __future__ import annotations

import time

import numpy as np
import pytest
from agent_helpers import config, sample_feeds

from edge_agent.contracts.bundle import Bundle
from edge_agent.monitoring import monitor as monitor_mod
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine


@pytest.fixture
def engine(tmp_path, cnn_bundle):
    made = Engine(config(cnn_bundle, tmp_path, feedback_keep=40), model_mod.load(cnn_bundle))
    yield made
    made.close()


def test_feedback_joins_single_and_multi_row_requests(engine, cnn_bundle):
    samples = Bundle.open(cnn_bundle).load_samples()
    x, truth = samples["input"], samples["__target__"].tolist()
    single = [engine.infer({"input": x[i : i + 1]}) for i in range(10)]
    multi, _, multi_out = engine.infer({"input": x[10:15]})
    items = [{"inference_id": iid, "label": truth[i]} for i, (iid, _, _) in enumerate(single)]
    items.append({"inference_id": multi, "labels": truth[10:15]})
    result = engine.feedback({"labels": items})
    assert result == {"joined": 11, "unknown": [], "problems": []}
    wrong = engine.feedback({"inference_id": single[0][0], "labels": [1, 2]})
    assert wrong["problems"], "a single-row prediction takes one label"
    _, _, body = engine.active.monitor.close_window()
    predicted = [int(out[0].argmax()) for _, _, out in single] + multi_out[0].argmax(1).tolist()
    expected = float(np.mean(np.asarray(predicted) == np.asarray(truth[:15])))
    assert body["quality"]["labels"] == 15
    assert body["quality"]["scores"]["accuracy"] == pytest.approx(expected)


def test_oldest_predictions_are_evicted_in_bulk(engine, cnn_bundle):
    feeds = sample_feeds(cnn_bundle, 1)
    ids = [engine.infer(feeds)[0] for _ in range(120)]
    engine.active.monitor.drain()
    kept = engine.active.monitor._predictions
    assert 40 <= len(kept) <= 50, "bounded by feedback_keep (+ a quarter before a bulk evict)"
    assert list(kept)[-1] == ids[-1] and ids[0] not in kept, "the newest stay"
    result = engine.feedback({"inference_id": ids[-1], "label": 3})
    assert result["joined"] == 1


def test_a_full_batch_wakes_the_monitor_before_its_interval(engine, cnn_bundle, monkeypatch):
    monkeypatch.setattr(monitor_mod, "DRAIN_BATCH", 64)
    monkeypatch.setattr(monitor_mod, "DRAIN_INTERVAL_S", 3600.0)
    monitor = engine.active.monitor
    monitor.stop()  # restart its thread so it waits with the long interval
    monitor._stop.clear()
    monitor.start()
    feeds = sample_feeds(cnn_bundle, 1)
    for _ in range(70):
        engine.infer(feeds)
    deadline = time.monotonic() + 20
    while monitor._window.requests < 64 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert monitor._window.requests >= 64, "drained long before the hour-long interval"
    assert len(monitor._pending) <= 70 - 64
