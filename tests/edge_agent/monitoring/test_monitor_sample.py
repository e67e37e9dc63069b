"""Drift bins and data quality read a bounded uniform sample of a window's rows
(``Monitor(sample_rows=...)``, the agent's ``monitor_sample_rows``): past the cap the monitor's
feature work per window grows like cap * log(rows / cap), not like rows; every request is still
counted (requests, latency, predictions kept for labels); the sample is spread over the whole
window; and PSI on the sample stays within its sampling error of the full window's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.config import AgentConfig
from edge_agent.errors import BadInputError
from edge_agent.monitoring import baseline as baseline_mod
from edge_agent.monitoring import monitor as monitor_mod
from edge_agent.monitoring.monitor import Monitor

LABELS = list(range(10))
DRAIN = 1024
WEIGHTS = np.random.default_rng(5).standard_normal((256, 10)).astype(np.float32) / 16


def _predict(x: np.ndarray) -> np.ndarray:
    return x @ WEIGHTS


def _baseline() -> dict:
    """An MLP-like model: one 256-wide input (row summaries), ten logits (argmax + elements)."""
    x = np.random.default_rng(0).standard_normal((2000, 256)).astype(np.float32)
    signature = {"inputs": [{"name": "x"}], "outputs": [{"name": "logits", "role": "logits"}]}
    return baseline_mod.compute(signature, {"x": x}, {"logits": _predict(x)})


def _monitor(sample_rows: int) -> Monitor:
    return Monitor(
        _baseline(),
        "classification",
        LABELS,
        {"logits": "logits"},
        single_input="x",
        sample_rows=sample_rows,
        seed=3,
    )


def _serve(monitor: Monitor, x: np.ndarray, start: int = 0) -> None:
    """Batch-1 requests queued as the engine queues them (bare arrays), drained in blocks."""
    for lo in range(0, len(x), DRAIN):
        for i in range(lo, min(lo + DRAIN, len(x))):
            row = x[i : i + 1]
            item = (0.0, 0.001, 0.002, 1, f"id-{start + i}", row, _predict(row), ("logits",))
            monitor.pending.append(item)
        monitor.drain()


@pytest.fixture
def touched(monkeypatch):
    """Rows whose input features the monitor computed (the real function, counted)."""
    count = [0]
    real = monitor_mod._batch_values

    def counting(features, arrays):
        if arrays and features and features[0].spec.tensor == "x":
            count[0] += next(iter(arrays.values())).shape[0]
        return real(features, arrays)

    monkeypatch.setattr(monitor_mod, "_batch_values", counting)
    return count


def test_feature_work_stops_growing_with_the_rows_past_the_cap(touched):
    cap = 500
    monitor = _monitor(cap)
    x = np.random.default_rng(1).standard_normal((40 * DRAIN, 256)).astype(np.float32)
    _serve(monitor, x[: 10 * DRAIN])
    first = touched[0]
    _serve(monitor, x[10 * DRAIN :], start=10 * DRAIN)
    later = touched[0] - first
    # 30,720 more rows; a bottom-k sample admits about cap * ln(40 / 10) of them (a little
    # more: its threshold is refreshed each time an eighth over the cap is held)
    assert later < 1.5 * cap * math.log(40 / 10) < 0.05 * 30 * DRAIN
    feedback = monitor.feedback(
        [{"inference_id": "id-0", "label": 0}, {"inference_id": f"id-{40 * DRAIN - 1}", "label": 1}]
    )
    assert feedback["joined"] == 2  # every request's prediction is kept, sampled or not
    _, _, body = monitor.close_window()
    assert body["requests"]["count"] == body["requests"]["rows"] == 40 * DRAIN
    assert body["latency_ms"]["count"] == 40 * DRAIN
    assert body["monitor"]["sampled_rows"] == body["data_quality"]["rows"] == cap
    for part in ("features", "predictions"):
        for name, entry in body["drift"][part].items():
            assert entry["n"] == cap, name
            assert entry["status"] == "ok", (name, entry)
    # the next window samples afresh
    _serve(monitor, x[:300])
    _, _, body = monitor.close_window()
    assert body["monitor"]["sampled_rows"] == body["data_quality"]["rows"] == 300


def test_every_row_without_a_cap(touched):
    monitor = _monitor(0)
    x = np.random.default_rng(1).standard_normal((8 * DRAIN, 256)).astype(np.float32)
    _serve(monitor, x)
    assert touched[0] == 8 * DRAIN
    _, _, body = monitor.close_window()
    assert body["data_quality"]["rows"] == 8 * DRAIN
    assert body["monitor"]["sampled_rows"] is None


def test_the_sample_is_spread_over_the_whole_window():
    """First half in range, second half far out of range: the sample holds about half of each
    (a sample of the first rows would find no out-of-range rows, one of the last only those)."""
    cap = 2000
    monitor = _monitor(cap)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20 * DRAIN, 256)).astype(np.float32)
    x[10 * DRAIN :] += 10
    _serve(monitor, x)
    _, _, body = monitor.close_window()
    out = body["data_quality"]["by_feature"]["x:mean"]["out_of_range"]
    # binomial-like spread sqrt(cap / 4) = 22 rows; 6 of them allowed
    assert abs(out - cap / 2) < 6 * math.sqrt(cap / 4)


@pytest.mark.parametrize("shift", [0.0, 0.04])
def test_psi_on_the_sample_is_within_its_sampling_error_of_the_full_window(shift):
    cap = 2000
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((30 * DRAIN, 256)) * (1 + shift) + shift).astype(np.float32)
    full, sampled = _monitor(0), _monitor(cap)
    _serve(full, x)
    _serve(sampled, x)
    body_full, body_sampled = full.close_window()[2], sampled.close_window()[2]
    for part in ("features", "predictions"):
        for name, whole in body_full["drift"][part].items():
            part_entry = body_sampled["drift"][part][name]
            assert part_entry["n"] == cap
            if whole["psi"] is None:
                continue
            # PSI ~ chi2 / n: sampling adds ~(bins - 1) / n on average, and for a real shift a
            # standard error of about sqrt(4 * psi / n); allowed: that bias twice + 4 errors
            bins = len(whole["counts"])
            allowed = 2 * (bins - 1) / cap + 4 * math.sqrt(4 * whole["psi"] / cap)
            assert abs(part_entry["psi"] - whole["psi"]) <= allowed, (name, part_entry, whole)
            if whole["psi"] > 0.2 or (whole["status"] == "ok" and whole["psi"] < 0.05):
                assert part_entry["status"] == whole["status"], (name, part_entry, whole)
    if shift:
        assert body_full["drift"]["features"]["x:std"]["status"] == "drift"


def test_the_cap_must_leave_room_for_the_drift_minimum():
    with pytest.raises(BadInputError, match="monitor_sample_rows"):
        AgentConfig(monitor_sample_rows=50, drift_min_samples=100).check()
    AgentConfig(monitor_sample_rows=0).check()
    AgentConfig(monitor_sample_rows=100, drift_min_samples=100).check()
