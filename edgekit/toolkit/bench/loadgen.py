"""The load generator: MLPerf LoadGen's four scenarios, driving any SystemUnderTest.

- single-stream: one query at a time, the next issued when the last completes; p90 latency.
- multi-stream: the same, each query a fixed group of samples; p99 latency.
- server: queries arrive as a Poisson process at a target QPS and concurrent workers serve
  them; latency runs from the scheduled arrival (queueing included) to completion. With a
  latency bound the highest QPS that meets it is searched for.
- offline: all samples available at once, processed in batches back to back; samples/s.

The generator knows nothing of onnxruntime: it calls `sut.run(query)` and keeps the clock.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.benchmark import Measurement, TimingConfig, measure
from edge_agent.benchmark.runner import warm_up
from edge_agent.benchmark.stability import is_stable
from edge_agent.benchmark.stats import PERCENTILES, latency_stats, percentile
from edge_agent.errors import BadInputError

ProgressFn = Callable[[float], None]
RunFn = Callable[[Any], Any]


@dataclass
class ScenarioOutcome:
    measurement: Measurement
    samples_per_query: int
    scenario_result: dict[str, Any] = field(default_factory=dict)
    headline: dict[str, Any] | None = None  # overrides the scenario's default headline


@dataclass(frozen=True)
class LatencyBound:
    """`p99=10ms`: the percentile key and the bound in seconds."""

    key: str
    seconds: float

    @classmethod
    def parse(cls, text: str) -> LatencyBound:
        m = re.fullmatch(r"\s*(p[0-9.]+)\s*=\s*([0-9]*\.?[0-9]+)\s*(ms|us|µs|s)\s*", text or "")
        keys = [k for k, _ in PERCENTILES]
        if not m or m.group(1) not in keys:
            raise BadInputError(
                f"cannot read the latency bound {text!r}",
                hint=f"write it as PERCENTILE=VALUE with a unit, e.g. p99=10ms (percentiles: {', '.join(keys)})",
            )
        scale = {"ms": 1e-3, "us": 1e-6, "µs": 1e-6, "s": 1.0}[m.group(3)]
        value = float(m.group(2)) * scale
        if value <= 0:
            raise BadInputError(f"the latency bound must be > 0, got {text!r}")
        return cls(m.group(1), value)

    def __str__(self) -> str:
        return f"{self.key}≤{self.seconds * 1e3:g}ms"


# -- single-stream, multi-stream, offline ---------------------------------------------------


def _closed_loop(
    run: RunFn,
    queries: Sequence[Any],
    batch: int,
    timing: TimingConfig,
    progress: ProgressFn | None,
    result: dict[str, Any],
) -> ScenarioOutcome:
    """The next query is issued when the last completes; what differs per scenario is what a
    query holds and which figure judges it."""
    return ScenarioOutcome(measure(run, queries, timing, progress), batch, result)


def single_stream(
    run: RunFn,
    queries: Sequence[Any],
    batch: int,
    timing: TimingConfig,
    progress: ProgressFn | None = None,
) -> ScenarioOutcome:
    """One query at a time; judged by p90 latency."""
    return _closed_loop(run, queries, batch, timing, progress, {})


def multi_stream(
    run: RunFn,
    queries: Sequence[Any],
    batch: int,
    timing: TimingConfig,
    progress: ProgressFn | None = None,
) -> ScenarioOutcome:
    """Each query is a group of `batch` samples, issued when the previous group completes;
    judged by p99 latency."""
    return _closed_loop(run, queries, batch, timing, progress, {"samples_per_query": batch})


def offline(
    run: RunFn,
    queries: Sequence[Any],
    batch: int,
    timing: TimingConfig,
    progress: ProgressFn | None = None,
) -> ScenarioOutcome:
    """All samples are available: batches go back to back; judged by samples/s."""
    return _closed_loop(run, queries, batch, timing, progress, {"batch": batch})


# -- server ---------------------------------------------------------------------------------


def poisson_arrivals(
    rate: float, *, duration_s: float | None = None, count: int | None = None, seed: int = 0
) -> np.ndarray:
    """Arrival times (s from start) of a Poisson process: exponential gaps with mean 1/rate."""
    if rate <= 0:
        raise ValueError(f"arrival rate must be > 0, got {rate}")
    if (duration_s is None) == (count is None):
        raise ValueError("give a duration or a count of arrivals")
    rng = np.random.default_rng(seed)
    if count is not None:
        return np.cumsum(rng.exponential(1.0 / rate, size=count))
    assert duration_s is not None  # exactly one of the two is given
    chunks, total, last = [], 0, 0.0
    expected = int(rate * duration_s) + 16
    while last < duration_s:
        gaps = rng.exponential(1.0 / rate, size=max(expected, 16))
        times = last + np.cumsum(gaps)
        chunks.append(times)
        last = float(times[-1])
        total += len(times)
    arrivals = np.concatenate(chunks)
    return arrivals[arrivals < duration_s]


@dataclass
class _Served:
    scheduled_ns: np.ndarray
    done_ns: np.ndarray
    start_ns: int
    end_ns: int
    cpu_s: float
    abandoned: int


def _serve(
    run: RunFn, queries: Sequence[Any], arrivals_s: np.ndarray, workers: int, give_up_s: float
) -> _Served:
    """Issue queries at their arrival times to `workers` threads; collect completion times."""
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    results: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
    abandoned = [0] * workers
    give_up_ns = int(give_up_s * 1e9)
    n_sets = len(queries)
    clock = time.perf_counter_ns

    def worker(k: int) -> None:
        out = results[k]
        while True:
            item = inbox.get()
            if item is None:
                return
            i, scheduled = item
            if clock() - scheduled > give_up_ns:  # hopelessly behind: do not run it
                abandoned[k] += 1
                out.append((scheduled, clock()))
                continue
            run(queries[i % n_sets])
            out.append((scheduled, clock()))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    offsets = (np.asarray(arrivals_s) * 1e9).astype(np.int64)
    cpu0 = time.process_time()
    start = clock() + 1_000_000  # 1 ms to get going
    for i, offset in enumerate(offsets):
        target = start + int(offset)
        delay = target - clock()
        if delay > 0:
            time.sleep(delay / 1e9)
        inbox.put((i, target))
    for _ in threads:
        inbox.put(None)
    for t in threads:
        t.join()
    end = clock()
    pairs = [p for r in results for p in r]
    scheduled = np.array([p[0] for p in pairs], dtype=np.int64)
    done = np.array([p[1] for p in pairs], dtype=np.int64)
    order = np.argsort(scheduled, kind="stable")
    return _Served(
        scheduled[order], done[order], start, end, time.process_time() - cpu0, sum(abandoned)
    )


def _server_measurement(served: _Served, timing: TimingConfig) -> Measurement:
    stab = timing.stability
    latencies = (served.done_ns - served.scheduled_ns) / 1e9
    span = max(1, int(served.done_ns.max()) - served.start_ns) if len(latencies) else 1
    windows = []
    parts = stab.windows if len(latencies) >= stab.windows else 1
    for chunk_sched, chunk_done in zip(
        np.array_split(served.scheduled_ns, parts),
        np.array_split(served.done_ns, parts),
        strict=True,
    ):
        if len(chunk_sched) == 0:
            continue
        lat = np.sort((chunk_done - chunk_sched) / 1e6)
        wall = max(1, int(chunk_done.max()) - int(chunk_sched.min()))
        windows.append(
            {
                "count": int(len(lat)),
                "wall_s": wall / 1e9,
                "throughput": len(lat) / (wall / 1e9),
                "p50_ms": percentile(lat, 50),
                "p90_ms": percentile(lat, 90),
                "mean_ms": float(lat.mean()),
            }
        )
    return Measurement(
        latencies_s=latencies,
        windows=windows,
        counted_windows=len(windows),
        stable=is_stable(windows, stab),
        wall_s=span / 1e9,
        cpu_s=served.cpu_s,
        total_calls=int(len(latencies)),
    )


def server(
    run: RunFn,
    queries: Sequence[Any],
    batch: int,
    timing: TimingConfig,
    qps: float,
    *,
    workers: int = 2,
    seed: int = 0,
    progress: ProgressFn | None = None,
    warm: bool = True,
) -> ScenarioOutcome:
    """Poisson arrivals at `qps` for the duration (or `iterations` arrivals), `workers` threads."""
    if qps <= 0:
        raise BadInputError(f"`qps` must be > 0, got {qps}")
    if warm:
        warm_up(run, queries, timing)
    if timing.iterations is not None:
        arrivals = poisson_arrivals(qps, count=timing.iterations, seed=seed)
        planned = float(arrivals[-1])
    else:
        planned = timing.effective_duration_s
        arrivals = poisson_arrivals(qps, duration_s=planned, seed=seed)
        if len(arrivals) == 0:
            arrivals = np.array([0.0])
    served = _serve(run, queries, arrivals, workers, give_up_s=max(1.0, 2 * planned))
    m = _server_measurement(served, timing)
    if progress:
        progress(1.0)
    result = {
        "target_qps": qps,
        "achieved_qps": m.queries_per_s,
        "issued": int(len(arrivals)),
        "workers": workers,
        "abandoned": served.abandoned,
        "samples_per_query": batch,
    }
    return ScenarioOutcome(m, batch, result)


def estimate_capacity(run: RunFn, queries: Sequence[Any], workers: int, calls: int = 20) -> float:
    """A rough queries/s ceiling from a few untimed calls: where a QPS search may start."""
    t0 = time.perf_counter()
    for i in range(calls):
        run(queries[i % len(queries)])
    per_call = max((time.perf_counter() - t0) / calls, 1e-6)
    return workers / per_call


def search_qps(
    run: RunFn,
    queries: Sequence[Any],
    batch: int,
    timing: TimingConfig,
    bound: LatencyBound,
    *,
    workers: int = 2,
    start_qps: float | None = None,
    seed: int = 0,
    max_trials: int = 12,
    rel_tol: float = 0.05,
    progress: ProgressFn | None = None,
) -> ScenarioOutcome:
    """The highest Poisson QPS whose latency percentile meets the bound.

    Doubling from the start until a trial fails (or halving until one passes), then bisecting
    until the passing and failing rates are within `rel_tol`. A trial fails when the percentile
    exceeds the bound or any query had to be abandoned.
    """
    warm_up(run, queries, timing)
    qps = start_qps or 0.25 * estimate_capacity(run, queries, workers)
    curve: list[dict[str, Any]] = []
    best: tuple[float, ScenarioOutcome] | None = None
    lowest_fail: tuple[float, ScenarioOutcome] | None = None
    hi: float | None = None
    for trial in range(max_trials):
        outcome = server(
            run, queries, batch, timing, qps, workers=workers, seed=seed + trial, warm=False
        )
        stats = latency_stats(outcome.measurement.latencies_s)
        value_s = stats[bound.key] / 1e3
        passed = value_s <= bound.seconds and outcome.scenario_result["abandoned"] == 0
        curve.append(
            {
                "target_qps": qps,
                "achieved_qps": outcome.scenario_result["achieved_qps"],
                **{k: stats[k] for k, _ in PERCENTILES},
                "passed": passed,
            }
        )
        if progress:
            progress(min(0.99, (trial + 1) / max_trials))
        if passed:
            if best is None or qps > best[0]:
                best = (qps, outcome)
        else:
            hi = qps if hi is None else min(hi, qps)
            if lowest_fail is None or qps < lowest_fail[0]:
                lowest_fail = (qps, outcome)
        if hi is None:
            qps *= 2
        elif best is None:
            qps /= 2
        else:
            if (hi - best[0]) / best[0] <= rel_tol:
                break
            qps = (best[0] + hi) / 2
    if progress:
        progress(1.0)
    chosen = best[1] if best else (lowest_fail[1] if lowest_fail else outcome)
    max_qps = best[0] if best else None
    chosen.scenario_result = {
        **chosen.scenario_result,
        "latency_bound": {"percentile": bound.key, "ms": bound.seconds * 1e3},
        "max_qps_within_bound": max_qps,
        "curve": curve,
        "converged": best is not None and hi is not None and (hi - best[0]) / best[0] <= rel_tol,
    }
    chosen.headline = {
        "name": f"max QPS with {bound}",
        "value": float(max_qps or 0.0),
        "unit": "queries/s",
        "better": "higher",
    }
    return chosen


# -- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    default_batches: tuple[int, ...]
    description: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("single-stream", (1,), "one query at a time; p90 latency"),
        Scenario("multi-stream", (8,), "fixed groups of samples per query; p99 latency"),
        Scenario(
            "server", (1,), "Poisson arrivals at a QPS from concurrent workers; latency under load"
        ),
        Scenario("offline", (1, 8, 32), "all samples at once; samples/s at the best batch size"),
    )
}
