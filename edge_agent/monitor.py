"""Per-window monitoring, kept off the inference path.

The serving thread only appends a small tuple (timestamps, rows, id, feeds, outputs) to a deque.
A background thread drains it in batches and does the numpy work: latency histograms, data
quality counters and drift counts on the baseline's fixed bins, predictions kept for joining
labels, optional data capture. ``close_window()`` drains what is left and returns the
``metrics`` body of the telemetry contract.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent import drift, telemetry
from edge_agent.baseline import OTHER, categorical_counts, numeric_counts
from edge_agent.features import FeatureSpec, values_for
from edge_agent.process_stats import ProcessStats

# Above this many queued requests the serving thread stops handing over feeds (timings still go),
# so a monitor that falls behind costs bounded memory; the skip is counted and reported.
MAX_PENDING_FEEDS = 20_000
_BOUNDS = np.asarray(telemetry.LATENCY_BOUNDS_MS)
_MISSING_STRINGS = ("", "nan", "None")


class _Hist:
    """Vectorised twin of telemetry.Histogram for batches of values."""

    def __init__(self) -> None:
        self.counts = np.zeros(telemetry.N_BUCKETS, dtype=np.int64)
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.counts += np.bincount(
            np.searchsorted(_BOUNDS, values, side="left"), minlength=telemetry.N_BUCKETS
        )
        self.sum += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def to_histogram(self) -> telemetry.Histogram:
        h = telemetry.Histogram()
        h.counts = [int(c) for c in self.counts]
        h.count = int(self.counts.sum())
        h.sum, h.min, h.max = self.sum, self.min, self.max
        return h


@dataclass
class _Feature:
    spec: FeatureSpec
    baseline: dict[str, Any]
    edges: np.ndarray | None
    categories: list[str] | None
    shares: list[float]
    counts: np.ndarray
    low: float | None = None
    high: float | None = None


def _features(entries: list[dict[str, Any]]) -> list[_Feature]:
    out = []
    for entry in entries:
        spec = FeatureSpec.from_baseline(entry)
        if entry["kind"] == "numeric":
            edges = np.asarray(entry.get("bin_edges", []), dtype=np.float64)
            feature = _Feature(
                spec, entry, edges, None, drift.reference_shares(entry), np.zeros(len(edges) + 1)
            )
            feature.low, feature.high = entry.get("min"), entry.get("max")
        else:
            cats = list(entry.get("categories", {}))
            size = len(cats) + (0 if OTHER in cats else 1)
            feature = _Feature(
                spec, entry, None, cats, drift.reference_shares(entry), np.zeros(size)
            )
        out.append(feature)
    return out


@dataclass
class Window:
    start: float
    requests: int = 0
    ok: int = 0
    rows: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    latency: _Hist = field(default_factory=_Hist)
    queue: _Hist = field(default_factory=_Hist)
    compute: _Hist = field(default_factory=_Hist)
    quality: collections.Counter = field(default_factory=collections.Counter)
    quality_by_feature: dict[str, collections.Counter] = field(default_factory=dict)
    quality_rows: int = 0
    labels: int = 0
    confusion: collections.Counter = field(default_factory=collections.Counter)
    abs_error_sum: float = 0.0
    sq_error_sum: float = 0.0
    monitor_skipped: int = 0


class Monitor:
    """Accumulates one window at a time for the model currently served."""

    def __init__(
        self,
        baseline: dict[str, Any] | None,
        task: str,
        labels: list[Any] | None,
        output_roles: dict[str, str],
        *,
        policy: drift.DriftPolicy | None = None,
        feedback_keep: int = 100_000,
        capture: Any = None,
    ) -> None:
        self.task = task
        self.labels = labels
        self.output_roles = output_roles
        self.policy = policy or drift.DriftPolicy()
        self.capture = capture
        self._baseline = baseline
        self._feature_state = _features(baseline["features"]) if baseline else []
        self._prediction_state = _features(baseline["predictions"]) if baseline else []
        self._pending: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._window = Window(time.time())
        self._predictions: OrderedDict[str, list[Any]] = OrderedDict()
        self._feedback_keep = feedback_keep
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.process = ProcessStats()
        self._ids = itertools.count(1)

    # -- the serving thread's side: cheap appends only -----------------------------------------
    def record(
        self,
        received: float,
        started: float,
        finished: float,
        rows: int,
        inference_id: str,
        feeds: dict[str, np.ndarray] | None,
        outputs: list[np.ndarray] | None,
        names: list[str] | None,
    ) -> None:
        if len(self._pending) > MAX_PENDING_FEEDS:
            feeds = outputs = None
        self._pending.append(
            (received, started, finished, rows, inference_id, feeds, outputs, names)
        )

    def record_error(self, kind: str, *, wrong_type: bool = False) -> None:
        with self._lock:
            self._window.requests += 1
            self._window.errors[kind] += 1
            if wrong_type:
                self._window.quality["wrong_type"] += 1

    # -- background processing ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-agent-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Process everything queued so far into the current window."""
        batch = []
        while True:
            try:
                batch.append(self._pending.popleft())
            except IndexError:
                break
        if batch:
            with self._lock:
                self._process(self._window, batch)

    def _process(self, w: Window, batch: list[tuple]) -> None:
        times = np.asarray([b[:3] for b in batch], dtype=np.float64)
        w.requests += len(batch)
        w.ok += len(batch)
        w.rows += sum(b[3] for b in batch)
        w.queue.add((times[:, 1] - times[:, 0]) * 1e3)
        w.compute.add((times[:, 2] - times[:, 1]) * 1e3)
        w.latency.add((times[:, 2] - times[:, 0]) * 1e3)
        with_data = [b for b in batch if b[5] is not None]
        w.monitor_skipped += len(batch) - len(with_data)
        if not with_data:
            return
        feeds = _concat([b[5] for b in with_data])
        outputs = _concat([dict(zip(b[7], b[6], strict=True)) for b in with_data])
        self._data_quality(w, feeds)
        for feature in self._feature_state:
            self._bin(feature, feeds)
        for feature in self._prediction_state:
            self._bin(feature, outputs)
        self._keep_predictions(with_data, outputs)
        if self.capture is not None:
            self.capture.maybe_write(with_data)

    def _bin(self, feature: _Feature, arrays: dict[str, np.ndarray]) -> None:
        if feature.spec.tensor not in arrays:
            return
        values = values_for(feature.spec, arrays)
        if feature.edges is not None:
            feature.counts += numeric_counts(values, feature.edges)
        else:
            feature.counts += categorical_counts(values, feature.categories or [])

    def _data_quality(self, w: Window, feeds: dict[str, np.ndarray]) -> None:
        rows = next(iter(feeds.values())).shape[0] if feeds else 0
        w.quality_rows += rows
        for feature in self._feature_state:
            if feature.spec.tensor not in feeds:
                continue
            values = values_for(feature.spec, feeds)
            found: dict[str, int] = {}
            if feature.edges is not None:
                values = np.asarray(values, dtype=np.float64)
                nan = np.isnan(values)
                found["missing"] = int(nan.sum())
                found["non_finite"] = int(np.isinf(values).sum())
                finite = values[np.isfinite(values)]
                if feature.low is not None and feature.high is not None and finite.size:
                    found["out_of_range"] = int(
                        ((finite < feature.low) | (finite > feature.high)).sum()
                    )
            else:
                strings = np.asarray(values).astype(str)
                missing = np.isin(strings, _MISSING_STRINGS)
                found["missing"] = int(missing.sum())
                if OTHER not in (feature.categories or []):
                    known = np.isin(strings, feature.categories or [])
                    found["unknown_category"] = int((~known & ~missing).sum())
            found = {k: v for k, v in found.items() if v}
            if found:
                w.quality.update(found)
                w.quality_by_feature.setdefault(feature.spec.name, collections.Counter()).update(
                    found
                )

    # -- predictions and labels -----------------------------------------------------------------
    def _prediction_values(self, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
        if not outputs:
            return None
        roles = self.output_roles
        if self.task == "classification":
            for name, role in roles.items():
                if role == "label" and name in outputs:
                    return np.asarray(outputs[name]).reshape(-1)
            for name, role in roles.items():
                if role in ("probabilities", "logits") and name in outputs:
                    idx = np.asarray(outputs[name]).reshape(len(outputs[name]), -1).argmax(axis=1)
                    if self.labels:
                        return np.asarray(self.labels, dtype=object)[idx]
                    return idx
            first = next(iter(outputs.values()))
            return np.asarray(first).reshape(len(first), -1)[:, 0]
        first = next(iter(outputs.values()))
        return np.asarray(first, dtype=np.float64).reshape(len(first), -1)[:, 0]

    def _keep_predictions(self, batch: list[tuple], outputs: dict[str, np.ndarray]) -> None:
        values = self._prediction_values(outputs)
        if values is None:
            return
        pos = 0
        for b in batch:
            rows = b[3]
            self._predictions[b[4]] = values[pos : pos + rows].tolist()
            pos += rows
        while len(self._predictions) > self._feedback_keep:
            self._predictions.popitem(last=False)

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Join labels to stored predictions by inference id; returns what was joined."""
        self.drain()
        joined, unknown, problems = 0, [], []
        with self._lock:
            w = self._window
            for item in items:
                iid = item.get("inference_id")
                preds = self._predictions.get(iid) if isinstance(iid, str) else None
                if preds is None:
                    unknown.append(iid)
                    continue
                labels = item["labels"] if "labels" in item else [item.get("label")]
                if not isinstance(labels, list) or len(labels) != len(preds):
                    problems.append(f"{iid}: {len(preds)} prediction(s), labels do not match")
                    continue
                for truth, pred in zip(labels, preds, strict=True):
                    if self.task == "classification":
                        w.confusion[f"{truth}|{pred}"] += 1
                    else:
                        try:
                            err = float(truth) - float(pred)
                        except (TypeError, ValueError):
                            problems.append(f"{iid}: label {truth!r} is not a number")
                            continue
                        w.abs_error_sum += abs(err)
                        w.sq_error_sum += err * err
                    w.labels += 1
                joined += 1
        return {"joined": joined, "unknown": unknown, "problems": problems}

    # -- closing a window ---------------------------------------------------------------------
    def close_window(self, now: float | None = None) -> tuple[float, float, dict[str, Any]]:
        """Finish the current window; returns (start, end, metrics body)."""
        self.drain()
        end = now or time.time()
        with self._lock:
            w, self._window = self._window, Window(end)
            feature_counts = [(f, f.counts.copy()) for f in self._feature_state]
            prediction_counts = [(f, f.counts.copy()) for f in self._prediction_state]
            for f in self._feature_state + self._prediction_state:
                f.counts[:] = 0
        return w.start, end, self._body(w, end, feature_counts, prediction_counts)

    def _body(self, w: Window, end: float, features, predictions) -> dict[str, Any]:
        span = max(end - w.start, 1e-9)
        errors = {k: int(v) for k, v in w.errors.items()}
        body: dict[str, Any] = {
            "requests": {"count": w.requests, "ok": w.ok, "rows": w.rows, "errors": errors},
            "latency_ms": telemetry.summarize_histogram(w.latency.to_histogram()),
            "queue_ms": telemetry.summarize_histogram(w.queue.to_histogram()),
            "compute_ms": telemetry.summarize_histogram(w.compute.to_histogram()),
            "throughput": {"requests_per_s": w.ok / span, "rows_per_s": w.rows / span},
            "process": self.process.sample(),
            "data_quality": {
                "rows": w.quality_rows,
                "counts": {k: int(w.quality.get(k, 0)) for k in telemetry.QUALITY_KINDS},
                "by_feature": {
                    name: {k: int(v) for k, v in c.items()}
                    for name, c in w.quality_by_feature.items()
                },
            },
            "drift": {
                "features": self._drift(features),
                "predictions": self._drift(predictions),
            },
            "quality": self._quality(w),
            "monitor": {"skipped": w.monitor_skipped, "features": len(self._feature_state)},
        }
        return body

    def _drift(self, pairs) -> dict[str, Any]:
        out = {}
        for feature, counts in pairs:
            entry = drift.assess(counts.tolist(), feature.shares, self.policy)
            out[feature.spec.name] = {"kind": feature.baseline["kind"], **entry}
        return out

    def _quality(self, w: Window) -> dict[str, Any] | None:
        if not w.labels:
            return None
        if self.task == "classification":
            block: dict[str, Any] = {
                "task": "classification",
                "labels": w.labels,
                "confusion": {k: int(v) for k, v in w.confusion.items()},
            }
        else:
            block = {
                "task": "regression",
                "labels": w.labels,
                "abs_error_sum": w.abs_error_sum,
                "sq_error_sum": w.sq_error_sum,
            }
        block["scores"] = telemetry.quality_scores(block)
        return block

    def new_inference_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"


def _concat(dicts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(dicts) == 1:
        return dicts[0]
    keys = dicts[0].keys()
    return {k: np.concatenate([np.asarray(d[k]) for d in dicts if k in d]) for k in keys}
