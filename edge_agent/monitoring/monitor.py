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
import math
import operator
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent import telemetry
from edge_agent.monitoring import drift
from edge_agent.monitoring.baseline import OTHER
from edge_agent.monitoring.features import ARGMAX, SUMMARIES, FeatureSpec, values_for
from edge_agent.process_stats import ProcessStats

if TYPE_CHECKING:
    from edge_agent.monitoring.capture import Captured

# Above this many queued requests the serving thread stops handing over feeds (timings still go),
# so a monitor that falls behind costs bounded memory; the skip is counted and reported.
MAX_PENDING_FEEDS = 20_000
# When the monitor thread drains the queue: every DRAIN_INTERVAL_S, or as soon as DRAIN_BATCH
# requests are queued. Its cost per drain is mostly fixed (a few hundred numpy calls over every
# feature), so waking every 50 ms cost a 16 µs MLP several µs of GIL per request; 1,024 requests
# amortise that fixed part to a fraction of a µs while one drain holds the GIL for ~1-2 ms at
# most (the serving thread's tail latency). Nothing waits for it: close_window() and
# feedback() drain what is queued themselves.
DRAIN_INTERVAL_S = 0.5
DRAIN_BATCH = 1024
# Drift bins and data quality read at most this many rows of a window, drawn uniformly at
# random (``_Sample``); 0 (the default) = every row, so their counts stay exact.
SAMPLE_ROWS = 0
# Row summaries are computed this many values at a time (1 MB of float64: stays in cache).
SUMMARY_CHUNK_VALUES = 131_072
_BOUNDS = np.asarray(telemetry.LATENCY_BOUNDS_MS)
_LATER, _EARLIER = [1, 2, 2], [0, 1, 0]  # rows of (received, started, finished)
_MISSING_STRINGS = ("", "nan", "None")
_MISSING = object()
MAX_LABEL_CHARS = 256  # a class label in feedback, when the bundle declares no classes
MAX_CONFUSION_PAIRS = 1024  # (label, prediction) pairs a window counts, without declared classes


def _short(value: Any) -> str:
    """A client's value in a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_NDARRAY, _NONE = np.ndarray, type(None)
_F64 = np.dtype(np.float64)
_SHAPE, _DTYPE = operator.attrgetter("shape"), operator.attrgetter("dtype")

# One queued request (see ``Monitor.pending``): (received, started, finished, rows, inference
# id, feeds, outputs, names); feeds, outputs and names are None once the queue is too long.
Item = tuple[float, float, float, int, str, Any, Any, Any]
# A kept block of predictions: (ids, rows per request or None when all are 1, one value a row)
_Block = tuple[tuple[str, ...], tuple[int, ...] | None, np.ndarray]


class _Rows(list[Any]):
    """The predictions of a request with several rows (one value per row)."""


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

    @staticmethod
    def add_rows(hists: list[_Hist], values: np.ndarray) -> None:
        """``hists[i].add(values[i])`` for every row of a 2-D array, with one searchsorted and
        one bincount for all of them (the same counts, sums, minima and maxima)."""
        if values.shape[1] == 0:
            return
        n = telemetry.N_BUCKETS
        index = np.searchsorted(_BOUNDS, values, side="left")
        index += np.arange(0, n * len(hists), n)[:, None]
        counts = np.bincount(index.ravel(), minlength=n * len(hists)).reshape(len(hists), n)
        sums, lows, highs = values.sum(axis=1), values.min(axis=1), values.max(axis=1)
        for i, h in enumerate(hists):
            h.counts += counts[i]
            h.sum += float(sums[i])
            h.min = min(h.min, float(lows[i]))
            h.max = max(h.max, float(highs[i]))

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
    category_index: dict[str, int] = field(default_factory=dict)
    offset: int = 0  # where its counts start in the monitor's numeric counts (_bin_all)


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
            feature.category_index = {c: i for i, c in enumerate(cats)}
        out.append(feature)
    return out


@dataclass
class Window:
    start: float
    requests: int = 0
    ok: int = 0
    rows: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latency: _Hist = field(default_factory=_Hist)
    queue: _Hist = field(default_factory=_Hist)
    compute: _Hist = field(default_factory=_Hist)
    quality: collections.Counter[str] = field(default_factory=collections.Counter)
    quality_by_feature: dict[str, collections.Counter[str]] = field(default_factory=dict)
    quality_rows: int = 0
    labels: int = 0
    confusion: collections.Counter[str] = field(default_factory=collections.Counter)
    abs_error_sum: float = 0.0
    sq_error_sum: float = 0.0
    monitor_skipped: int = 0
    monitor_failed: int = 0  # requests a drain failed on (their counts may be partial)
    monitor_error: str | None = None
    sampled_rows: int | None = None  # rows drift and data quality read, when sampled


class _Sample:
    """A uniform random sample of at most ``cap`` of a window's rows, for drift and data quality.

    Bottom-k sampling: every request draws a key in [0, 1) (its rows share it) and the sample
    is the rows with the ``cap`` smallest keys, a uniform sample without replacement whatever
    the window's size. Once ``cap`` rows are in, a row whose key is not under the current
    ``cap``-th smallest (``tau``) can never get in, so the drain drops it before any feature
    work: a window of n rows computes features for about cap * (1 + ln(n / cap)) of them
    instead of n. Values are kept per feature with their keys (a feature may be absent from
    some requests), and cut back to the ``cap`` smallest keys whenever an eighth more is held:
    cutting refreshes ``tau``, and a stale ``tau`` lets in rows that a later cut drops (cut at
    twice the cap, a window of six times the cap still computed half its rows).
    """

    def __init__(self, cap: int, features: int, rng: np.random.Generator) -> None:
        self.cap, self.features, self.rng = cap, features, rng
        self.reset()

    def reset(self) -> None:
        self.tau = 1.0  # rows with keys under this get in (1.0: every row, until cap)
        self.keys: list[np.ndarray] = []
        self.size = 0
        self.values: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(self.features)]

    def add(self, keys: np.ndarray, values_list: list[np.ndarray | None]) -> None:
        self.keys.append(keys)
        self.size += len(keys)
        for store, values in zip(self.values, values_list, strict=True):
            if values is not None:
                # a copy when it is a view: a strided column of a drain's whole block would
                # keep that block alive
                store.append((keys, np.ascontiguousarray(values)))
        if self.size >= self.cap + self.cap // 8 + 1:
            self._cut()

    def _cut(self) -> None:
        keys = np.concatenate(self.keys) if self.keys else np.empty(0)
        if len(keys) > self.cap:
            self.tau = float(np.partition(keys, self.cap - 1)[self.cap - 1])
            keys = keys[keys <= self.tau]
        self.keys, self.size = [keys], len(keys)
        for i, store in enumerate(self.values):
            if len(store) > 1 or (store and self.tau < 1.0):
                k = np.concatenate([c[0] for c in store])
                v = np.concatenate([c[1] for c in store])
                keep = k <= self.tau
                self.values[i] = [(k[keep], v[keep])]

    def take(self) -> tuple[int, list[np.ndarray | None]]:
        """The window's sample (rows, each feature's values) and a fresh start."""
        self._cut()
        out = [store[0][1] if store else None for store in self.values]
        rows = self.size
        self.reset()
        return rows, out


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
        single_input: str | None = None,
        sample_rows: int = SAMPLE_ROWS,
        seed: int | None = None,
        ragged: bool = False,
    ) -> None:
        self.task = task
        # requests may differ beyond the batch axis (a dynamic sequence length): a drain then
        # processes each run of same-shaped requests apart, as their arrays cannot be joined
        self.ragged = ragged
        # A request's feeds and outputs may come as a bare array (see ``record``): the feeds of
        # the model's only input, named here, and the output when one was asked for.
        self.single_input = single_input
        self.labels = labels
        self.output_roles = output_roles
        self.policy = policy or drift.DriftPolicy()
        self.capture = capture
        self._baseline = baseline
        self._feature_state = _features(baseline["features"]) if baseline else []
        self._prediction_state = _features(baseline["predictions"]) if baseline else []
        features = len(self._feature_state) + len(self._prediction_state)
        # every numeric feature's bin counts, side by side (``_bin_all``)
        numeric = [f for f in self._feature_state + self._prediction_state if f.edges is not None]
        self._numeric_counts = np.zeros(sum(len(f.counts) for f in numeric))
        offset = 0
        for f in numeric:
            f.offset, offset = offset, offset + len(f.counts)
            f.counts = self._numeric_counts[f.offset : offset]
        self.sample_rows = sample_rows
        self._sample = (
            _Sample(sample_rows, features, np.random.default_rng(seed))
            if sample_rows and features
            else None
        )
        self._pending: collections.deque[Item] = collections.deque()
        self._lock = threading.Lock()
        self._window = Window(time.time())
        # predictions by inference id for label joins: drained blocks are kept as they came
        # (ids, rows, values) and indexed by id only when labels arrive (``_predictions``)
        self._kept: dict[str, Any] = {}
        # ids whose predictions took their labels (the newest feedback_keep), to say so
        self._labelled: dict[str, None] = {}
        self._blocks: list[_Block] = []
        self._block_count = 0
        self._feedback_keep = feedback_keep
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.drain_batch = DRAIN_BATCH  # read again by start(), so tests can lower it
        self._labels_array = np.asarray(labels, dtype=object) if labels else None
        self._class_names = {str(label) for label in labels} if labels else None
        self.process = ProcessStats()

    # -- the serving thread's side: cheap appends only -----------------------------------------
    # The engine appends its request tuple to ``pending`` itself while fewer than
    # ``drain_batch`` are queued (one len() and one append, no call); only past that does it
    # call ``record``, which wakes the monitor and, far past it, drops the feeds.
    #
    # An item is (received, started, finished, rows, inference id, feeds, outputs, names):
    # ``feeds`` is a dict of arrays, or the bare array of the model's one input
    # (``single_input``); ``outputs`` a list in ``names`` order, or the bare array when
    # ``names`` has one entry. Bare arrays keep the queue free of objects the garbage
    # collector tracks (numpy arrays are not; dicts and lists are): queued dicts and lists
    # survived into the collector's older generations, and collecting those cost a 16 µs
    # model about 1 µs a request.
    @property
    def pending(self) -> collections.deque[Item]:
        return self._pending

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
        queued = len(self._pending)
        if queued >= self.drain_batch:
            if queued == self.drain_batch:
                self._wake.set()
            elif queued > MAX_PENDING_FEEDS:
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
        self.drain_batch = DRAIN_BATCH
        self._thread = threading.Thread(target=self._loop, name="edge-agent-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(DRAIN_INTERVAL_S)
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
                for group in _same_shapes(batch) if self.ragged else (batch,):
                    try:
                        self._process(self._window, group)
                    except Exception as exc:  # noqa: BLE001 - the thread must outlive a bad batch
                        # counted and named in the window; the next drain starts afresh
                        self._window.monitor_failed += len(group)
                        self._window.monitor_error = f"{type(exc).__name__}: {exc}"[:300]

    def _process(self, w: Window, batch: list[Item]) -> None:
        # Columns at once (one C-level zip) instead of a Python loop per request: the monitor
        # holds the GIL while it runs Python code, and every microsecond it holds it per request
        # is a microsecond the serving thread waits after session.run.
        received, started, finished, rows, ids, feeds, outputs, names = zip(*batch, strict=True)
        w.requests += len(batch)
        w.ok += len(batch)
        w.rows += sum(rows)
        # queue (started - received), compute (finished - started) and latency (finished -
        # received), in ms, as the rows of one array
        times = np.array((received, started, finished), dtype=np.float64)
        spans = times[_LATER] - times[_EARLIER]
        spans *= 1e3
        _Hist.add_rows([w.queue, w.compute, w.latency], spans)
        # type() per item, compared by identity: ``None in feeds`` would compare arrays with ==
        kinds = list(map(type, feeds))
        with_data = batch
        if kinds.count(_NONE):
            with_data = [b for b in batch if b[5] is not None]
            if with_data:
                _, _, _, rows, ids, feeds, outputs, names = zip(*with_data, strict=True)
            kinds = list(map(type, feeds))
        w.monitor_skipped += len(batch) - len(with_data)
        if not with_data:
            return
        output_arrays = _concat_outputs(outputs, names)
        if names.count(names[0]) == len(names):  # C-level, identity first: the common case
            self._keep_predictions(ids, rows, output_arrays)
        else:
            # Requests that asked for different outputs: joined by name, one request's rows
            # would line up with another's id (and a block with fewer values than ids broke
            # every later feedback), so each keeps the predictions of its own outputs.
            for one in zip(ids, rows, outputs, names, strict=True):
                self._keep_predictions((one[0],), (one[1],), _concat_outputs((one[2],), (one[3],)))
        if self._sample is not None:
            self._add_to_sample(w, with_data, feeds, kinds, outputs, names, output_arrays)
        else:
            feed_arrays = self._inputs(feeds, kinds)
            input_values = _batch_values(self._feature_state, feed_arrays)
            self._data_quality(w, _rows_of(feed_arrays), input_values)
            prediction_values = _batch_values(self._prediction_state, output_arrays)
            self._bin_all(
                self._feature_state + self._prediction_state, input_values + prediction_values
            )
        if self.capture is not None:
            self.capture.maybe_write([self._expanded(b) for b in with_data])

    def _add_to_sample(
        self,
        w: Window,
        items: list[Item],
        feeds: tuple[Any, ...],
        kinds: list[type],
        outputs: tuple[Any, ...],
        names: tuple[Any, ...],
        output_arrays: dict[str, np.ndarray],
    ) -> None:
        """Feature values of the batch's rows that can still enter the window's sample."""
        sample = self._sample
        assert sample is not None
        keys = sample.rng.random(len(items))
        rows = [b[3] for b in items]
        if sample.tau < 1.0:
            picked = np.flatnonzero(keys < sample.tau)
            if not picked.size:
                return
            if picked.size < len(items):
                index = picked.tolist()
                keys = keys[picked]
                feeds = tuple(feeds[i] for i in index)
                kinds = [kinds[i] for i in index]
                one_row = rows.count(1) == len(rows)
                rows = [rows[i] for i in index]
                if one_row and all(len(v) == len(items) for v in output_arrays.values()):
                    output_arrays = {k: v[picked] for k, v in output_arrays.items()}
                else:
                    output_arrays = _concat_outputs(
                        tuple(outputs[i] for i in index), tuple(names[i] for i in index)
                    )
        row_keys = keys if rows.count(1) == len(rows) else np.repeat(keys, rows)
        input_values = _batch_values(self._feature_state, self._inputs(feeds, kinds))
        prediction_values = _batch_values(self._prediction_state, output_arrays)
        values_list = input_values + prediction_values
        n_inputs = len(input_values)
        for i, values in enumerate(values_list):
            if values is not None and len(values) != len(row_keys):
                # rows that cannot be told apart (requests that asked for different outputs):
                # counted in full, outside the sample
                values_list[i] = None
                feature = (self._feature_state + self._prediction_state)[i]
                if i < n_inputs:
                    self._feature_quality(w, feature, values)
                self._bin(feature, values)
        sample.add(row_keys, values_list)

    def _finish_sample(self, w: Window) -> None:
        """Drift bins and data quality of the window's sample (close_window)."""
        if self._sample is None:
            return
        rows, values_list = self._sample.take()
        w.sampled_rows = rows
        n_inputs = len(self._feature_state)
        self._data_quality(w, rows, values_list[:n_inputs])
        for feature, values in zip(
            self._feature_state + self._prediction_state, values_list, strict=True
        ):
            self._bin(feature, values)

    def _inputs(self, feeds: tuple[Any, ...], kinds: list[type]) -> dict[str, np.ndarray]:
        """The batch's inputs by name, whether requests queued dicts or bare arrays."""
        if kinds.count(_NDARRAY) == len(kinds):
            return {self.single_input: _join_rows(feeds)}  # type: ignore[dict-item]
        if kinds.count(_NDARRAY):
            name = self.single_input
            feeds = tuple({name: f} if type(f) is _NDARRAY else f for f in feeds)
        return _concat(list(feeds))

    def _expanded(self, item: Item) -> Captured:
        """An item with dict feeds and list outputs (what capture writes from)."""
        received, started, finished, rows, iid, feeds, outputs, names = item
        if type(feeds) is _NDARRAY:
            feeds = {self.single_input: feeds}
        if type(outputs) is _NDARRAY:
            outputs = [outputs]
        return (received, started, finished, rows, iid, feeds, outputs, names)

    def _bin_all(self, features: list[_Feature], values_list: list[np.ndarray | None]) -> None:
        """``_bin`` for every feature, with one finiteness test and one bincount for all the
        numeric ones: their counts are views into ``_numeric_counts`` at ``feature.offset``."""
        index_parts, value_parts = [], []
        for feature, values in zip(features, values_list, strict=True):
            if values is None:
                continue
            if feature.edges is None:
                feature.counts += _category_counts(values, feature)
                continue
            if type(values) is not _NDARRAY or values.dtype is not _F64:
                values = np.asarray(values, dtype=np.float64)
            index = np.searchsorted(feature.edges, values, side="left")
            index += feature.offset
            index_parts.append(index)
            value_parts.append(values)
        if not index_parts:
            return
        index = np.concatenate(index_parts)
        finite = np.isfinite(np.concatenate(value_parts))
        if not finite.all():  # NaN and ±inf fall in no bin
            index = index[finite]
        self._numeric_counts += np.bincount(index, minlength=len(self._numeric_counts))

    def _bin(self, feature: _Feature, values: np.ndarray | None) -> None:
        if values is None:
            return
        if feature.edges is not None:
            feature.counts += _numeric_counts(values, feature.edges)
        else:
            feature.counts += _category_counts(values, feature)

    def _data_quality(self, w: Window, rows: int, values_list: list[np.ndarray | None]) -> None:
        w.quality_rows += rows
        for feature, values in zip(self._feature_state, values_list, strict=True):
            if values is not None:
                self._feature_quality(w, feature, values)

    def _feature_quality(self, w: Window, feature: _Feature, values: np.ndarray) -> None:
        found: dict[str, int] = {}
        if feature.edges is not None:
            values = np.asarray(values, dtype=np.float64)
            finite = np.isfinite(values)
            if finite.all():  # the common case: one pass, no NaN/inf counting
                finite_values = values
            else:
                nan = np.isnan(values)
                found["missing"] = int(nan.sum())
                found["non_finite"] = int((~finite & ~nan).sum())
                finite_values = values[finite]
            if feature.low is not None and feature.high is not None and finite_values.size:
                found["out_of_range"] = int(
                    ((finite_values < feature.low) | (finite_values > feature.high)).sum()
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
            w.quality_by_feature.setdefault(feature.spec.name, collections.Counter()).update(found)

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
                    idx: np.ndarray = (
                        np.asarray(outputs[name]).reshape(len(outputs[name]), -1).argmax(axis=1)
                    )
                    if self._labels_array is not None:
                        labels: np.ndarray = self._labels_array[idx]
                        return labels
                    return idx
            first = next(iter(outputs.values()))
            return np.asarray(first).reshape(len(first), -1)[:, 0]
        first = next(iter(outputs.values()))
        return np.asarray(first, dtype=np.float64).reshape(len(first), -1)[:, 0]

    def _keep_predictions(
        self, ids: tuple[str, ...], rows: tuple[int, ...], outputs: dict[str, np.ndarray]
    ) -> None:
        """Keep the batch's predictions for joining labels later (``feedback``).

        Per drain this only computes one value per row and keeps it with the batch's ids as a
        block; the blocks are indexed by id when labels arrive or ``_predictions`` is read (a
        dict.update of a thousand new ids into a hundred thousand, per drain, was a tenth of
        the monitor's CPU on a 16 µs model, paid whether labels ever came or not). The oldest
        are evicted in bulk once a quarter over ``feedback_keep``: the newest ``feedback_keep``
        stay joinable, as before."""
        values = self._prediction_values(outputs)
        if values is None:
            return
        self._blocks.append((ids, None if rows.count(1) == len(rows) else rows, values))
        self._block_count += len(ids)
        excess = len(self._kept) + self._block_count - self._feedback_keep
        if excess > self._feedback_keep // 4:
            self._evict(excess)

    def _evict(self, excess: int) -> None:
        """Drop the ``excess`` oldest predictions, indexed ones first (they are older)."""
        kept = self._kept
        if excess < len(kept):
            self._kept = dict(itertools.islice(kept.items(), excess, None))
            return
        excess -= len(kept)
        self._kept = {}
        blocks = self._blocks
        while blocks and excess >= len(blocks[0][0]):
            excess -= len(blocks[0][0])
            self._block_count -= len(blocks.pop(0)[0])
        if blocks and excess:
            ids, rows, values = blocks[0]
            first_row = excess if rows is None else sum(rows[:excess])
            blocks[0] = (ids[excess:], None if rows is None else rows[excess:], values[first_row:])
            self._block_count -= excess

    @property
    def _predictions(self) -> dict[str, Any]:
        """Kept predictions by inference id, oldest first (indexes the blocks not yet indexed).

        Callers hold ``_lock`` or own the monitor (tests)."""
        if self._blocks:
            kept = self._kept
            for ids, rows, values in self._blocks:
                listed = values.tolist()  # one conversion a block, then plain list slices
                if rows is None:
                    kept.update(zip(ids, listed, strict=True))
                else:
                    pos = 0
                    for iid, n in zip(ids, rows, strict=True):
                        kept[iid] = _Rows(listed[pos : pos + n])
                        pos += n
            self._blocks.clear()
            self._block_count = 0
        return self._kept

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Join labels to stored predictions by inference id; returns what was joined.

        A prediction takes labels once (a retried or replayed POST would count them again), and
        only labels the window can hold: a classifier's own classes (a client's free-form labels
        would grow the confusion counts, sent with every metrics message, without bound) and
        finite numbers for a regressor (one NaN would make the window's errors NaN)."""
        self.drain()
        joined, unknown, problems = 0, [], []
        with self._lock:
            w = self._window
            predictions = self._predictions
            for item in items:
                iid = item.get("inference_id")
                if not isinstance(iid, str):
                    unknown.append(iid)
                    continue
                preds = predictions.get(iid, _MISSING)
                if preds is _MISSING:
                    if iid in self._labelled:
                        problems.append(f"{_short(iid)}: already labelled")
                    else:
                        unknown.append(iid)
                    continue
                if type(preds) is not _Rows:
                    preds = [preds]
                labels = item["labels"] if "labels" in item else [item.get("label")]
                if not isinstance(labels, list) or len(labels) != len(preds):
                    problems.append(f"{iid}: {len(preds)} prediction(s), labels do not match")
                    continue
                why = self._refuse_labels(labels, w)
                if why:
                    problems.append(f"{iid}: {why}")
                    continue
                for truth, pred in zip(labels, preds, strict=True):
                    if self.task == "classification":
                        w.confusion[f"{truth}|{pred}"] += 1
                    else:
                        err = float(truth) - float(pred)
                        w.abs_error_sum += abs(err)
                        w.sq_error_sum += err * err
                    w.labels += 1
                del predictions[iid]
                self._labelled[iid] = None
                while len(self._labelled) > self._feedback_keep:
                    del self._labelled[next(iter(self._labelled))]
                joined += 1
        return {"joined": joined, "unknown": unknown, "problems": problems}

    def _refuse_labels(self, labels: list[Any], w: Window) -> str | None:
        """Why these labels cannot be counted, or None."""
        if self._class_names is None and len(w.confusion) >= MAX_CONFUSION_PAIRS:
            return f"over {MAX_CONFUSION_PAIRS} distinct (label, prediction) pairs in this window"
        for truth in labels:
            if self.task == "classification":
                if self._class_names is not None and str(truth) not in self._class_names:
                    return (
                        f"label {_short(truth)} is not one of the model's classes "
                        f"({', '.join(sorted(self._class_names)[:10])})"
                    )
                if self._class_names is None and (
                    not isinstance(truth, (str, int)) or len(str(truth)) > MAX_LABEL_CHARS
                ):
                    return f"label {_short(truth)} is not a class name or number"
                continue
            try:
                value = float(truth)
            except (TypeError, ValueError, OverflowError):
                return f"label {_short(truth)} is not a number"
            if not math.isfinite(value):
                return f"label {_short(truth)} is not a finite number"
        return None

    # -- closing a window ---------------------------------------------------------------------
    def close_window(self, now: float | None = None) -> tuple[float, float, dict[str, Any]]:
        """Finish the current window; returns (start, end, metrics body)."""
        self.drain()
        end = now or time.time()
        with self._lock:
            w, self._window = self._window, Window(end)
            self._finish_sample(w)
            feature_counts = [(f, f.counts.copy()) for f in self._feature_state]
            prediction_counts = [(f, f.counts.copy()) for f in self._prediction_state]
            for f in self._feature_state + self._prediction_state:
                f.counts[:] = 0
        return w.start, end, self._body(w, end, feature_counts, prediction_counts)

    def _body(
        self,
        w: Window,
        end: float,
        features: list[tuple[_Feature, np.ndarray]],
        predictions: list[tuple[_Feature, np.ndarray]],
    ) -> dict[str, Any]:
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
            "monitor": {
                "skipped": w.monitor_skipped,
                "failed": w.monitor_failed,
                "error": w.monitor_error,
                "features": len(self._feature_state),
                # drift and data quality read this many rows, a uniform sample of the
                # window's (None: every row; sample_rows caps it)
                "sampled_rows": w.sampled_rows,
                "sample_rows": self.sample_rows,
            },
        }
        return body

    def _drift(self, pairs: list[tuple[_Feature, np.ndarray]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
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


def _shapes(value: Any) -> Any:
    """The shapes of a queued feed or output: an array, a dict or a list of arrays, or None."""
    if type(value) is _NDARRAY:
        return value.shape
    if isinstance(value, dict):
        return tuple((k, getattr(v, "shape", None)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(getattr(v, "shape", None) for v in value)
    return None


def _same_shapes(batch: list[Item]) -> list[list[Item]]:
    """The drain's requests grouped by the shapes of their feeds and outputs, in order of
    arrival within each group (only for models with a dynamic non-batch axis)."""
    groups: dict[Any, list[Item]] = {}
    for item in batch:
        groups.setdefault((_shapes(item[5]), _shapes(item[6])), []).append(item)
    return list(groups.values())


def _rows_of(arrays: dict[str, np.ndarray]) -> int:
    return next(iter(arrays.values())).shape[0] if arrays else 0


def _concat(dicts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(dicts) == 1:
        return dicts[0]
    keys = dicts[0].keys()
    return {k: _join_rows([d[k] for d in dicts if k in d]) for k in keys}


def _concat_outputs(
    outputs: tuple[Any, ...], names_column: tuple[Any, ...]
) -> dict[str, np.ndarray]:
    """Outputs of the batch's requests by name; one join per output when every request
    asked for the same outputs (the common case), else per-request dicts."""
    names = names_column[0]
    if names_column.count(names) == len(names_column):  # C-level, identity first
        kinds = list(map(type, outputs))
        if kinds.count(_NDARRAY) == len(kinds):  # one output each, queued bare
            return {names[0]: _join_rows(outputs)}
        if not kinds.count(_NDARRAY):
            if len(outputs) == 1:
                return dict(zip(names, outputs[0], strict=True))
            return {name: _join_rows([o[j] for o in outputs]) for j, name in enumerate(names)}
    return _concat(
        [
            dict(zip(n, [o] if type(o) is _NDARRAY else o, strict=True))
            for o, n in zip(outputs, names_column, strict=True)
        ]
    )


def _join_rows(arrays: Any) -> np.ndarray:
    """``np.concatenate(arrays)`` for arrays of one shape and dtype, by joining their bytes:
    a third of the cost for a thousand one-row arrays (numpy's per-array overhead). Anything
    else (mixed shapes or dtypes, non-contiguous arrays, objects) goes to ``np.concatenate``.
    The result is read-only; the monitor only reads it."""
    first: np.ndarray = arrays[0]
    n = len(arrays)
    if n == 1:
        return first
    if (
        first.ndim
        and not first.dtype.hasobject  # its bytes are pointers
        and list(map(_SHAPE, arrays)).count(first.shape) == n
        and list(map(_DTYPE, arrays)).count(first.dtype) == n
    ):
        try:
            data = b"".join(arrays)
        except (BufferError, ValueError, TypeError):  # not C-contiguous
            pass
        else:
            shape = (n * first.shape[0], *first.shape[1:])
            return np.frombuffer(data, first.dtype).reshape(shape)
    return np.concatenate(arrays)


def _batch_values(
    features: list[_Feature], arrays: dict[str, np.ndarray]
) -> list[np.ndarray | None]:
    """Each feature's values for the batch, computed once (data quality and drift both read
    them). Same values as ``features.values_for``, except that the per-row summaries of a tensor
    are computed together (``_row_summaries``) and the predicted class stays an integer index
    (``_category_counts`` compares it as text)."""
    summaries: dict[str, dict[str, np.ndarray] | None] = {}
    columns: dict[str, np.ndarray] = {}
    out: list[np.ndarray | None] = []
    for feature in features:
        spec = feature.spec
        arr = arrays.get(spec.tensor)
        if arr is None:
            out.append(None)
            continue
        if spec.index is not None and spec.kind == "numeric" and spec.summary is None:
            # one float64 copy per tensor for all its per-element features, as values_for
            # would make for each of them
            flat = columns.get(spec.tensor)
            if flat is None:
                arr = np.asarray(arr)
                rows = arr.shape[0] if arr.ndim else 1
                flat = columns[spec.tensor] = arr.reshape(rows, -1).astype(np.float64, copy=False)
            # a request shorter than the export data on a dynamic axis (fewer tokens) has no
            # value at this position: missing for this batch, not an IndexError that ends
            # the monitor thread
            out.append(flat[:, spec.index] if spec.index < flat.shape[1] else None)
            continue
        if spec.summary == ARGMAX:
            arr = np.asarray(arr)
            out.append(np.argmax(arr.reshape(arr.shape[0] if arr.ndim else 1, -1), axis=1))
            continue
        if spec.summary in SUMMARIES:
            if spec.tensor not in summaries:
                summaries[spec.tensor] = _row_summaries(arr)
            computed = summaries[spec.tensor]
            if computed is not None:
                out.append(computed[spec.summary])
                continue
        out.append(values_for(spec, arrays))
    return out


_SCRATCH = threading.local()


def _scratch(values: int) -> np.ndarray:
    """This thread's float64 work buffer of at least ``values`` values, kept between drains.

    A fresh megabyte per chunk per drain came from the allocator as new pages that the kernel
    had to fault in and zero (malloc gives blocks this large back to the system on free): in
    a drain of 1,024 batch-1 MLP requests that was about a third of its CPU (docs/benchmarks.md,
    "Agent performance"). Each thread that drains keeps one (a megabyte, or one row if larger).
    """
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < values:
        buf = _SCRATCH.buf = np.empty(max(values, SUMMARY_CHUNK_VALUES))
    return buf


def _row_summaries(arr: Any) -> dict[str, np.ndarray] | None:
    """mean, std, min and max of every row in one sweep, in float64 like ``values_for``.

    Rows go through in cache-sized chunks (one float64 copy each, reused for the deviations)
    instead of four whole-batch passes with NaN-aware reductions; with no NaN present the
    results equal ``np.nanmean``/``nanstd``/``nanmin``/``nanmax``. Returns None (the caller
    takes ``values_for``) when a NaN shows up, so missing values keep their exact semantics.
    """
    arr = np.asarray(arr)
    if arr.ndim == 0 or arr.dtype.kind not in "biuf":
        return None
    rows = arr.shape[0]
    flat = arr.reshape(rows, -1)
    cols = flat.shape[1]
    if cols == 0:
        return None
    out = {name: np.empty(rows) for name in SUMMARIES}
    step = max(1, SUMMARY_CHUNK_VALUES // cols)
    scratch = _scratch(min(step, rows) * cols)
    for lo in range(0, rows, step):
        native = flat[lo : lo + step]
        part = scratch[: native.size].reshape(native.shape)
        np.copyto(part, native)  # the float64 copy, into memory reused from drain to drain
        total = part.sum(axis=1)
        if np.isnan(total).any():  # NaN anywhere in a row (or inf - inf) makes its sum NaN
            return None
        mean = total / cols
        hi = lo + len(part)
        out["mean"][lo:hi] = mean
        # extremes in the tensor's own dtype (half the bytes for float32): the cast to float64
        # is monotonic, so they are the float64 extremes exactly
        out["min"][lo:hi] = native.min(axis=1)
        out["max"][lo:hi] = native.max(axis=1)
        with np.errstate(invalid="ignore"):  # inf - inf: NaN std, as nanstd gives
            part -= mean[:, None]
            np.multiply(part, part, out=part)
        out["std"][lo:hi] = np.sqrt(part.sum(axis=1) / cols)
    return out


def _numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``baseline.numeric_counts`` with the edges already float64 and no copy when every
    value is finite (the common case)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def _category_counts(values: np.ndarray, feature: _Feature) -> np.ndarray:
    """``baseline.categorical_counts`` without a Python step per value: count distinct values
    first, then map the few distinct ones to the baseline's categories (unseen → OTHER)."""
    counts = np.zeros(len(feature.counts))
    values = np.asarray(values)
    if values.size == 0:
        return counts
    if values.dtype.kind in "iu" and values.min() >= 0:  # class indices: bincount, then text
        n = np.bincount(values.ravel())
        distinct = np.flatnonzero(n)
        pairs = zip(distinct.astype(str).tolist(), n[distinct].tolist(), strict=True)
    else:
        distinct, n = np.unique(values.astype(str), return_counts=True)
        pairs = zip(distinct.tolist(), n.tolist(), strict=True)
    index = feature.category_index
    other = index.get(OTHER, len(feature.categories or []))
    for value, count in pairs:
        counts[index.get(value, other)] += count
    return counts
