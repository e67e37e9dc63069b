"""The monitor's bulk path (the engine appends a tuple per request; the drain computes row
summaries, drift bins, data quality and predictions for the whole block with numpy) gives the
same window, to the number, as computing each request on its own the old per-row way
(``values_for`` + ``numeric_counts``/``categorical_counts`` per request)."""

from __future__ import annotations

import numpy as np

from edge_agent.monitoring import baseline as baseline_mod
from edge_agent.monitoring.baseline import categorical_counts, numeric_counts
from edge_agent.monitoring.features import FeatureSpec, values_for
from edge_agent.monitoring.monitor import Monitor

LABELS = ["ant", "bee", "cat", "dog"]


def _per_row_window(baseline, requests):
    """Counts, quality and predictions summed request by request (no batching at all)."""
    drift = {}
    quality = {"missing": 0, "non_finite": 0, "out_of_range": 0}
    predictions = {}
    for iid, feeds, outputs in requests:
        for group, arrays in (("features", feeds), ("predictions", outputs)):
            for entry in baseline[group]:
                spec = FeatureSpec.from_baseline(entry)
                values = values_for(spec, arrays)
                if entry["kind"] == "numeric":
                    counts = numeric_counts(values, entry["bin_edges"])
                    if group == "features":
                        v = np.asarray(values, dtype=np.float64)
                        finite = v[np.isfinite(v)]
                        quality["missing"] += int(np.isnan(v).sum())
                        quality["non_finite"] += int(np.isinf(v).sum())
                        low, high = entry.get("min"), entry.get("max")
                        quality["out_of_range"] += int(((finite < low) | (finite > high)).sum())
                else:
                    counts = categorical_counts(values, list(entry["categories"]))
                old = drift.setdefault(spec.name, np.zeros(len(counts)))
                drift[spec.name] = old + counts
        predictions[iid] = LABELS[int(outputs["logits"][0].argmax())]
    return drift, quality, predictions


def test_bulk_drain_equals_the_per_row_path():
    rng = np.random.default_rng(11)
    signature = {
        "inputs": [{"name": "wide"}, {"name": "tab"}],
        "outputs": [{"name": "logits", "role": "logits"}],
    }

    def predict(feeds):
        wide = feeds["wide"]
        return {"logits": np.nan_to_num(wide[:, :4] * 3 + feeds["tab"][:, :1]).astype(np.float32)}

    reference = {
        "wide": rng.standard_normal((300, 256)).astype(np.float32),
        "tab": rng.standard_normal((300, 6)).astype(np.float32),
    }
    base = baseline_mod.compute(signature, reference, predict(reference))
    monitor = Monitor(base, "classification", LABELS, {"logits": "logits"})
    monitor.drain_batch = 50  # the engine's fast path below and record() past it both run
    requests = []
    for i in range(333):  # batch 1, as the in-process hot path sends them
        feeds = {
            "wide": (rng.standard_normal((1, 256)) * (1 + (i > 150))).astype(np.float32),
            "tab": rng.standard_normal((1, 6)).astype(np.float32) * 2,
        }
        if i % 17 == 3:
            feeds["tab"][0, 2] = np.nan
        if i % 29 == 7:
            feeds["tab"][0, 4] = np.inf
        outputs = predict(feeds)
        iid = f"id-{i}"
        item = (0.0, 0.001, 0.003, 1, iid, feeds, [outputs["logits"]], ["logits"])
        if len(monitor.pending) < monitor.drain_batch:
            monitor.pending.append(item)  # what Engine.infer does
        else:
            monitor.record(*item)
        requests.append((iid, feeds, outputs))
        if i % 97 == 96:
            monitor.drain()  # blocks of several sizes
    monitor.drain()
    predictions_kept = dict(monitor._predictions)
    _, _, body = monitor.close_window()

    want_drift, want_quality, want_predictions = _per_row_window(base, requests)
    got = {**body["drift"]["features"], **body["drift"]["predictions"]}
    assert {k: v["counts"] for k, v in got.items()} == {
        k: [int(c) for c in v] for k, v in want_drift.items()
    }
    assert {"wide:mean", "wide:std", "wide:min", "wide:max", "tab[2]", "logits:argmax"} <= set(got)
    counts = body["data_quality"]["counts"]
    assert {k: counts[k] for k in want_quality} == want_quality
    assert want_quality["missing"] > 0 and want_quality["non_finite"] > 0
    assert body["data_quality"]["rows"] == 333
    assert body["requests"]["count"] == 333 and body["requests"]["rows"] == 333
    assert body["latency_ms"]["count"] == 333
    assert predictions_kept == want_predictions
