"""The timed loop and the single-stream run: what every benchmark number comes from.

The loop times each call with perf_counter_ns around the call alone: picking the next input
set, storing the latency and checking the window's deadline happen outside the timed span,
so the harness adds nothing to a latency and only nanoseconds between calls (checked by
benchmarks/test_harness_overhead.py against a bare loop of session.run).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.benchmark import record as record_mod
from edge_agent.benchmark.inputs import InputSets, feeds_for
from edge_agent.benchmark.measures import (  # noqa: F401  (re-exported: the harness's names)
    DEFAULT_DURATION_S,
    Measurement,
    SessionTiming,
    TimingConfig,
)
from edge_agent.benchmark.resources import ResourceMeter
from edge_agent.benchmark.stability import is_stable
from edge_agent.benchmark.stats import percentile

CPU_PROVIDER = "CPUExecutionProvider"

RunFn = Callable[[Any], Any]
ProgressFn = Callable[[float], None]


def _window(
    run: RunFn, feeds: Sequence[Any], start: int, *, deadline_ns: int | None, count: int | None
) -> tuple[list[int], int, int, float]:
    """Run one window; returns (latencies ns, next index, wall ns, cpu s)."""
    clock = time.perf_counter_ns
    n_sets = len(feeds)
    lat: list[int] = []
    append = lat.append
    i = start
    cpu0 = time.process_time()
    begin = t1 = clock()
    if count is not None:
        for i in range(start, start + count):
            feed = feeds[i % n_sets]
            t0 = clock()
            run(feed)
            t1 = clock()
            append(t1 - t0)
        i = start + count
    else:
        while True:
            feed = feeds[i % n_sets]
            t0 = clock()
            run(feed)
            t1 = clock()
            append(t1 - t0)
            i += 1
            if t1 >= deadline_ns:  # type: ignore[operator]
                break
    return lat, i, t1 - begin, time.process_time() - cpu0


def _summary(lat_ns: list[int], wall_ns: int) -> dict[str, Any]:
    ordered = np.sort(np.asarray(lat_ns, dtype=np.float64)) / 1e6
    return {
        "count": len(lat_ns),
        "wall_s": wall_ns / 1e9,
        "throughput": len(lat_ns) / (wall_ns / 1e9) if wall_ns > 0 else 0.0,
        "p50_ms": percentile(ordered, 50),
        "p90_ms": percentile(ordered, 90),
        "mean_ms": float(ordered.mean()),
    }


def warm_up(run: RunFn, feeds: Sequence[Any], config: TimingConfig) -> int:
    """Run the warm-up calls (untimed); returns how many ran."""
    n = 0
    for n in range(config.warmup_iterations):
        run(feeds[n % len(feeds)])
    done = config.warmup_iterations
    if config.warmup_s > 0:
        end = time.perf_counter() + config.warmup_s
        while time.perf_counter() < end:
            run(feeds[done % len(feeds)])
            done += 1
    return done


def measure(
    run: RunFn,
    feeds: Sequence[Any],
    config: TimingConfig = TimingConfig(),
    progress: ProgressFn | None = None,
) -> Measurement:
    """Warm up, then time `run(feed)` over the rotated feeds in stability windows.

    With `duration_s`, windows of duration/N run until the last N agree (or max_windows) and
    the last N windows are counted. With `iterations`, exactly that many calls are timed, split
    into N windows that are judged afterwards, and all are counted.
    """
    if not feeds:
        raise ValueError("no input sets to run")
    stab = config.stability
    warm_up(run, feeds, config)
    windows: list[dict[str, Any]] = []
    per_window: list[tuple[list[int], int, float]] = []
    index = 0
    if config.iterations is not None:
        parts = stab.windows if config.iterations >= stab.windows else 1
        sizes = [
            config.iterations // parts + (1 if k < config.iterations % parts else 0)
            for k in range(parts)
        ]
        for k, size in enumerate(sizes):
            lat, index, wall, cpu = _window(run, feeds, index, deadline_ns=None, count=size)
            per_window.append((lat, wall, cpu))
            windows.append(_summary(lat, wall))
            if progress:
                progress((k + 1) / parts)
        counted = per_window
    else:
        window_ns = int(config.effective_duration_s / stab.windows * 1e9)
        while True:
            deadline = time.perf_counter_ns() + window_ns
            lat, index, wall, cpu = _window(run, feeds, index, deadline_ns=deadline, count=None)
            per_window.append((lat, wall, cpu))
            windows.append(_summary(lat, wall))
            done = len(windows) >= stab.windows and is_stable(windows, stab)
            if progress:
                progress(1.0 if done else min(0.99, len(windows) / stab.windows))
            if done or len(windows) >= stab.max_windows:
                break
        counted = per_window[-stab.windows :]
    latencies = np.concatenate([np.asarray(w[0], dtype=np.float64) for w in counted]) / 1e9
    return Measurement(
        latencies_s=latencies,
        windows=windows,
        counted_windows=len(counted),
        stable=is_stable(windows, stab),
        wall_s=sum(w[1] for w in counted) / 1e9,
        cpu_s=sum(w[2] for w in counted),
        total_calls=sum(len(w[0]) for w in per_window),
    )


def session_options(
    threads: int | None = None, *, inter_op_threads: int = 1, graph_optimization: str = "all"
) -> Any:
    """SessionOptions for a benchmark: intra-op threads as asked (0 = onnxruntime's default)."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or 0)
    opts.inter_op_num_threads = int(inter_op_threads)
    opts.graph_optimization_level = levels[graph_optimization]
    opts.log_severity_level = 3
    return opts


def create_session(
    model: str | Path | bytes,
    provider: str = CPU_PROVIDER,
    threads: int | None = None,
    *,
    provider_options: Mapping[str, Any] | None = None,
    inter_op_threads: int = 1,
    graph_optimization: str = "all",
) -> tuple[Any, float]:
    """(InferenceSession, seconds it took to create). CPU stays as the fallback provider."""
    import onnxruntime as ort

    opts = session_options(
        threads, inter_op_threads=inter_op_threads, graph_optimization=graph_optimization
    )
    providers: list[Any] = [(provider, dict(provider_options or {}))]
    if provider != CPU_PROVIDER:
        providers.append(CPU_PROVIDER)
    source = model if isinstance(model, bytes) else str(model)
    t0 = time.perf_counter()
    session = ort.InferenceSession(source, sess_options=opts, providers=providers)
    return session, time.perf_counter() - t0


def time_first_call(run: RunFn, feed: Any) -> float:
    t0 = time.perf_counter()
    run(feed)
    return time.perf_counter() - t0


def run_single_stream(
    model: str | Path,
    inputs: Sequence[Mapping[str, Any]],
    *,
    batch: int = 1,
    threads: int | None = 1,
    provider: str = CPU_PROVIDER,
    samples: Mapping[str, np.ndarray] | None = None,
    timing: TimingConfig = TimingConfig(),
    sets: int = 8,
    seed: int = 0,
    variant: str | None = None,
    progress: ProgressFn | None = None,
    input_sets: InputSets | None = None,
) -> dict[str, Any]:
    """Benchmark one ONNX model, one query at a time: the record the agent and the toolkit share.

    Creation time and the cold first call are measured on a fresh session; the peak resident
    memory covers creation and the timed loop.
    """
    meter = ResourceMeter().start()
    session, create_s = create_session(model, provider, threads)
    sets_ = input_sets or feeds_for(inputs, batch, samples=samples, sets=sets, seed=seed)
    run = functools.partial(session.run, None)
    cold_s = time_first_call(run, sets_.feeds[0])
    measurement = measure(run, sets_.feeds, timing, progress)
    resources = meter.stop()
    path = Path(model)
    return record_mod.build_record(
        scenario="single-stream",
        system="onnxruntime",
        variant=variant or path.stem,
        provider=provider,
        threads=threads,
        batch=batch,
        measurement=measurement,
        session=SessionTiming(create_s, cold_s),
        resources=resources,
        inputs=sets_,
        timing=timing,
        model_bytes=path.stat().st_size if path.is_file() else None,
        providers_in_use=list(session.get_providers()),
    )
