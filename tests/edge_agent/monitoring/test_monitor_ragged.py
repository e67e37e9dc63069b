"""A model with a dynamic sequence axis (token ids, a variable-length signal) gets requests of
different lengths: the monitor groups a drain's requests by shape instead of joining arrays
that cannot be joined (its thread died on the first mixed window and monitoring stopped), and
a request shorter than the export data leaves the later per-position features missing."""

from __future__ import annotations

import numpy as np

from edge_agent.monitoring import baseline as baseline_mod
from edge_agent.monitoring.monitor import Monitor

SIGNATURE = {
    "inputs": [{"name": "input_ids"}, {"name": "attention_mask"}],
    "outputs": [{"name": "logits", "role": "logits"}],
}


def _tokens(rng: np.random.Generator, rows: int, length: int) -> dict[str, np.ndarray]:
    return {
        "input_ids": rng.integers(1, 100, (rows, length)).astype(np.int64),
        "attention_mask": np.ones((rows, length), np.int64),
    }


def _logits(feeds: dict[str, np.ndarray]) -> np.ndarray:
    return (feeds["input_ids"][:, :1] * np.array([[0.01, -0.01, 0.02]])).astype(np.float32)


def test_requests_of_different_lengths_are_monitored_in_one_window():
    rng = np.random.default_rng(0)
    reference = _tokens(rng, 300, 16)
    base = baseline_mod.compute(SIGNATURE, reference, {"logits": _logits(reference)})
    assert any(f["name"] == "input_ids[15]" for f in base["features"])  # per position
    monitor = Monitor(base, "classification", [0, 1, 2], {"logits": "logits"}, ragged=True)
    lengths = [16, 5, 9, 16, 20, 5] * 10
    for i, length in enumerate(lengths):
        feeds = _tokens(rng, 2, length)
        monitor.record(0.0, 0.001, 0.002, 2, f"id-{i}", feeds, [_logits(feeds)], ["logits"])
    monitor.drain()  # raised ValueError (np.concatenate of widths 16 and 5)
    _, _, body = monitor.close_window()
    assert body["requests"]["count"] == len(lengths)
    assert body["data_quality"]["rows"] == 2 * len(lengths)
    drift = body["drift"]["features"]
    assert drift["input_ids[0]"]["n"] == 2 * len(lengths)  # every request has position 0
    # position 15 only from the requests of 16 tokens or more (the 5s and 9s lack it)
    assert drift["input_ids[15]"]["n"] == 2 * sum(n >= 16 for n in lengths)


def test_a_drain_that_fails_is_counted_and_the_monitor_goes_on():
    """Any batch the monitor cannot process (here: mixed lengths without `ragged`) used to
    raise out of drain() and end the monitor thread; it is counted and named in the window."""
    rng = np.random.default_rng(1)
    reference = _tokens(rng, 300, 8)
    base = baseline_mod.compute(SIGNATURE, reference, {"logits": _logits(reference)})
    monitor = Monitor(base, "classification", [0, 1, 2], {"logits": "logits"})
    for i, length in enumerate((8, 3)):
        feeds = _tokens(rng, 1, length)
        monitor.record(0.0, 0.001, 0.002, 1, f"a{i}", feeds, [_logits(feeds)], ["logits"])
    monitor.drain()
    feeds = _tokens(rng, 1, 8)
    monitor.record(0.0, 0.001, 0.002, 1, "b", feeds, [_logits(feeds)], ["logits"])
    monitor.drain()
    _, _, body = monitor.close_window()
    assert body["monitor"]["failed"] == 2 and "ValueError" in body["monitor"]["error"]
    assert body["requests"]["count"] == 3
