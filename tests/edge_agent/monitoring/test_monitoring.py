"""Per-window monitoring: drift detected on a shifted stream and not on an unshifted one of the
same size, small windows reported as too few samples, data quality counters, label feedback,
alerts in M of N windows, data capture."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agent_helpers import config, sample_feeds

from edge_agent import telemetry
from edge_agent.monitoring.alerts import AlertEngine
from edge_agent.serving import model as model_mod
from edge_agent.serving.engine import Engine
from edge_agent.serving.validation import RequestError


@pytest.fixture
def engine_for(tmp_path):
    made = []

    def make(bundle, **changes):
        engine = Engine(config(bundle, tmp_path, **changes), model_mod.load(bundle))
        made.append(engine)
        return engine

    yield make
    for e in made:
        e.close()


def _stream(engine, feeds, rows, batch, shift=None):
    rng = np.random.default_rng(0)
    n = len(next(iter(feeds.values())))
    for _start in range(0, rows, batch):
        idx = rng.integers(0, n, batch)
        part = {k: v[idx].copy() for k, v in feeds.items()}
        if shift:
            shift(part)
        engine.infer(part)


def test_drift_on_shifted_stream_only(engine_for, regression_bundle):
    feeds = sample_feeds(regression_bundle)
    engine = engine_for(regression_bundle)
    _stream(engine, feeds, 400, 8)
    _, _, calm = engine.active.monitor.close_window()
    statuses = {e["status"] for e in calm["drift"]["features"].values()}
    assert statuses == {"ok"}, calm["drift"]["features"]

    def shift(part):
        part["X"][:, 2] += 0.08  # bmi moves by ~1.7 std

    _stream(engine, feeds, 400, 8, shift)
    _, _, shifted = engine.active.monitor.close_window()
    drifted = {n for n, e in shifted["drift"]["features"].items() if e["status"] == "drift"}
    assert "X[2]" in drifted and len(drifted) <= 2
    assert shifted["drift"]["features"]["X[2]"]["n"] == 400
    # bmi carries much of the ridge model's weight, so its predictions drift too
    assert [e["status"] for e in shifted["drift"]["predictions"].values()] == ["drift"]
    assert [e["status"] for e in calm["drift"]["predictions"].values()] == ["ok"]


def test_small_window_is_too_few_samples(engine_for, regression_bundle):
    engine = engine_for(regression_bundle)
    feeds = sample_feeds(regression_bundle)
    part = {"X": feeds["X"][:10] + 1.0}  # wildly shifted, but only 10 rows
    engine.infer(part)
    _, _, body = engine.active.monitor.close_window()
    assert {e["status"] for e in body["drift"]["features"].values()} == {"too_few_samples"}


def test_data_quality_counters(engine_for, tabular_bundle):
    engine = engine_for(tabular_bundle)
    feeds = sample_feeds(tabular_bundle, 4)
    feeds["mean_radius"] = np.array([[np.nan], [1e6], [10.0], [12.0]], np.float32)
    feeds["size_band"] = np.array([["never-seen"], [""], [feeds["size_band"][2, 0]], ["x"]])
    engine.infer(feeds)
    _, _, body = engine.active.monitor.close_window()
    dq = body["data_quality"]
    assert dq["rows"] == 4
    assert dq["by_feature"]["mean_radius"] == {"missing": 1, "out_of_range": 1}
    assert dq["by_feature"]["size_band"]["unknown_category"] == 2
    assert dq["by_feature"]["size_band"]["missing"] == 1


def test_wrong_type_and_errors_are_counted(engine_for, cnn_bundle):
    engine = engine_for(cnn_bundle)
    with pytest.raises(RequestError):
        engine.infer_json(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 1, 8, 8],
                        "datatype": "BYTES",
                        "data": ["a"] * 64,
                    }
                ]
            }
        )
    engine.infer(sample_feeds(cnn_bundle, 1))
    _, _, body = engine.active.monitor.close_window()
    assert body["requests"]["count"] == 2 and body["requests"]["ok"] == 1
    assert body["requests"]["errors"] == {"bad_request": 1}
    assert body["data_quality"]["counts"]["wrong_type"] == 1
    assert body["latency_ms"]["count"] == 1 and body["latency_ms"]["p50"] > 0
    assert body["compute_ms"]["count"] == 1 and body["queue_ms"]["count"] == 1


def test_feedback_classification_and_regression(engine_for, cnn_bundle, regression_bundle):
    engine = engine_for(cnn_bundle)
    from edge_agent.contracts.bundle import Bundle

    samples = Bundle.open(cnn_bundle).load_samples()
    iid, _, outs = engine.infer({"input": samples["input"][:20]})
    truth = samples["__target__"][:20].tolist()
    result = engine.feedback({"inference_id": iid, "labels": truth})
    assert result["joined"] == 1
    assert engine.feedback({"labels": [{"inference_id": "nope", "label": 1}]})["unknown"] == [
        "nope"
    ]
    _, _, body = engine.active.monitor.close_window()
    expected = float((outs[0].argmax(1) == np.asarray(truth)).mean())
    assert body["quality"]["scores"]["accuracy"] == pytest.approx(expected)
    assert body["quality"]["labels"] == 20

    reg = engine_for(regression_bundle)
    feeds = sample_feeds(regression_bundle, 5)
    iid, _, outs = reg.infer(feeds)
    reg.feedback({"inference_id": iid, "labels": (outs[0][:, 0] + 2.0).tolist()})
    _, _, body = reg.active.monitor.close_window()
    assert body["quality"]["scores"]["mae"] == pytest.approx(2.0, rel=1e-4)
    assert body["quality"]["scores"]["rmse"] == pytest.approx(2.0, rel=1e-4)


def test_metrics_body_fits_the_contract(engine_for, tabular_bundle):
    from edge_agent.schemas import validation_errors

    engine = engine_for(tabular_bundle)
    engine.infer(sample_feeds(tabular_bundle, 30))
    start, end, body = engine.active.monitor.close_window()
    body["outbox"] = {"pending": 0, "dropped_total": 0}
    msg = telemetry.make_message(
        "metrics",
        thing="t",
        component_version="1",
        model=engine.model.describe(),
        window=(start, end),
        body=body,
    )
    msg["seq"] = 1
    assert validation_errors(msg, "telemetry") == []
    assert len(telemetry.encode(msg)) < telemetry.MAX_MESSAGE_BYTES


def test_alerts_fire_in_m_of_n_and_resolve(tmp_path, regression_bundle):
    cfg = config(regression_bundle, tmp_path, alert_m=2, alert_n=3, error_rate_threshold=0.1)
    engine = AlertEngine(cfg.updated({"alert_hook": {"topic": "retrain/requests"}}))
    bad = {"requests": {"count": 10, "errors": {"bad_request": 5}}}
    good = {"requests": {"count": 10, "errors": {}}}
    assert engine.evaluate(bad, 1) == []
    fired = engine.evaluate(bad, 2)
    assert [a["rule"] for a in fired] == ["error_rate"] and fired[0]["state"] == "firing"
    assert fired[0]["hook"] == {"topic": "retrain/requests"} and fired[0]["held"]["hits"] == 2
    assert engine.evaluate(good, 3) == []  # still 2 of the last 3
    resolved = engine.evaluate(good, 4)
    assert [a["state"] for a in resolved] == ["resolved"]


def test_capture_is_bounded_and_rotates(engine_for, cnn_bundle, tmp_path):
    folder = tmp_path / "capture"
    engine = engine_for(
        cnn_bundle,
        capture_dir=str(folder),
        capture_fraction=1.0,
        capture_max_bytes=4000,
        capture_files=3,
    )
    for _ in range(30):
        engine.infer(sample_feeds(cnn_bundle, 1))
    engine.active.monitor.close_window()
    files = sorted(folder.glob("capture-*.jsonl"))
    assert 1 < len(files) <= 3
    assert all(f.stat().st_size <= 4000 for f in files)
    record = json.loads(files[0].read_text().splitlines()[0])
    assert set(record) == {"inference_id", "time", "inputs", "outputs"}


def _reference_window(baseline, feeds, outputs):
    """What the monitor must report, the slow and obvious way: values_for per feature and
    the baseline module's own counting functions on the whole stream at once."""
    from edge_agent.monitoring.baseline import categorical_counts, numeric_counts
    from edge_agent.monitoring.features import FeatureSpec, values_for

    def counts(entries, arrays):
        out = {}
        for entry in entries:
            spec = FeatureSpec.from_baseline(entry)
            values = values_for(spec, arrays)
            if entry["kind"] == "numeric":
                out[spec.name] = numeric_counts(values, entry["bin_edges"]).tolist()
            else:
                out[spec.name] = categorical_counts(values, list(entry["categories"])).tolist()
        return out

    return counts(baseline["features"], feeds), counts(baseline["predictions"], outputs)


def test_batched_monitor_matches_reference_binning():
    """The monitor thread works on whole batches (shared row summaries, counted categories);
    its counts must equal per-feature ``values_for`` + ``numeric_counts``/
    ``categorical_counts``, with NaN, inf and unseen categories in the stream."""
    from edge_agent.monitoring import baseline as baseline_mod
    from edge_agent.monitoring.monitor import Monitor

    rng = np.random.default_rng(7)
    signature = {
        "inputs": [{"name": "img"}, {"name": "tab"}, {"name": "cat"}],
        "outputs": [{"name": "logits", "role": "logits"}],
    }

    def sample(n, shift=0.0):
        return {
            "img": rng.standard_normal((n, 3, 40)).astype(np.float32) + shift,  # summaries
            "tab": rng.standard_normal((n, 3)).astype(np.float32) + shift,  # per element
            "cat": rng.choice(["a", "b", "c"], (n, 1)),
        }

    def predict(feeds):
        img = feeds["img"].reshape(len(feeds["img"]), -1)
        return {"logits": np.nan_to_num(img[:, :5] + feeds["tab"].sum(1, keepdims=True))}

    reference = sample(400)
    base = baseline_mod.compute(signature, reference, predict(reference))
    monitor = Monitor(base, "classification", None, {"logits": "logits"})
    seen_feeds, seen_outputs = [], []
    for i in range(60):
        feeds = sample(1 if i % 3 else 4, shift=0.3 * (i > 30))
        if i in (3, 10):
            feeds["img"][0, 1, 2] = np.nan  # the first batch falls back to values_for
        if i % 11 == 0:
            feeds["tab"][0, 1] = np.inf
            feeds["cat"][0, 0] = "never-seen"
        if i % 13 == 5:
            feeds["tab"][0, 2] = np.nan  # a missing value
        outputs = predict(feeds)
        rows = len(feeds["tab"])
        monitor.record(0.0, 0.001, 0.002, rows, f"id-{i}", feeds, [outputs["logits"]], ["logits"])
        seen_feeds.append(feeds)
        seen_outputs.append(outputs)
        if i % 20 == 19:
            monitor.drain()  # several batches of different sizes
    _, _, body = monitor.close_window()

    def joined(parts):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    want_features, want_predictions = _reference_window(
        base, joined(seen_feeds), joined(seen_outputs)
    )
    got_features = {k: v["counts"] for k, v in body["drift"]["features"].items()}
    got_predictions = {k: v["counts"] for k, v in body["drift"]["predictions"].items()}
    assert got_features == {k: [int(c) for c in v] for k, v in want_features.items()}
    assert got_predictions == {k: [int(c) for c in v] for k, v in want_predictions.items()}
    assert {"img:mean", "img:std", "tab[1]", "cat", "logits:argmax"} <= set(got_features) | set(
        got_predictions
    )
    counts = body["data_quality"]["counts"]
    assert counts["missing"] == 5 and counts["non_finite"] == 6  # i % 13 == 5; i % 11 == 0
    assert counts["unknown_category"] == 6  # i = 0, 11, 22, 33, 44, 55
    assert body["requests"]["rows"] == sum(len(f["tab"]) for f in seen_feeds)
