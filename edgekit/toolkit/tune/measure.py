"""Measure a candidate on this machine with the bench harness (edge_agent.benchmark), pinned
to the target's core count when a smaller target is emulated.

Pinning: Linux applies sched_setaffinity to the calling thread, and onnxruntime's thread pools
are created with the session, so they inherit the mask; the mask is restored afterwards.

Each trial has the process to itself: one session, created for the trial and freed before the
next (its intra-op threads, which spin after each run, end with it), and Python's cyclic
garbage collector paused during the timed loop as timeit does, so a collection of the
workstation's many objects (torch, sklearn) never lands inside a timed window.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.benchmark import StabilityConfig, TimingConfig, feeds_for, measure
from edge_agent.benchmark.resources import ResourceMeter
from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.tune.space import Candidate

# A full-effort trial: windows of base/3 s until three agree (at most 6 windows).
BASE_DURATION_S = 0.6
QUICK_DURATION_S = 0.15
STABILITY = StabilityConfig(tolerance=0.10, windows=3, max_windows=6)


def allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


@contextlib.contextmanager
def pinned(cpus: list[int] | None) -> Iterator[None]:
    """Run the block on these CPUs only (no-op for None or where affinity is unsupported)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block (reference counting still frees)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class LocalMeasurer:
    """Callable(candidate, effort) -> metrics, as the search expects."""

    bundle: Bundle
    cpus: list[int] | None = None  # pin to these (None: all this process may use)
    base_duration_s: float = BASE_DURATION_S
    batch: int = 1
    _feeds: Any = field(default=None, init=False, repr=False)

    def feeds(self) -> list[dict[str, Any]]:
        if self._feeds is None:
            inputs = self.bundle.signature["inputs"]
            try:
                samples = self.bundle.sample_inputs()
            except Exception:  # no stored samples: generate to the signature
                samples = None
            self._feeds = feeds_for(inputs, self.batch, samples=samples, sets=8, seed=0).feeds
        return self._feeds

    def __call__(self, candidate: Candidate, effort: float) -> dict[str, Any]:
        import onnxruntime as ort

        path: Path = self.bundle.verify_variant(candidate.variant)  # cached after the first
        timing = TimingConfig(
            warmup_iterations=5,
            duration_s=max(0.02, self.base_duration_s * effort),
            stability=STABILITY,
        )
        feeds = self.feeds()
        with pinned(self.cpus), gc_paused():
            meter = ResourceMeter().start()
            providers = [candidate.provider]
            if candidate.provider != "CPUExecutionProvider":
                providers.append("CPUExecutionProvider")
            session = ort.InferenceSession(
                str(path), sess_options=candidate.options.to_ort(), providers=providers
            )
            used = session.get_providers()[0]
            m = measure(functools.partial(session.run, None), feeds, timing)
            resources = meter.stop()
            del session  # freed by refcount: no gc.collect, which costs ~1 s with torch loaded
        stats = m.stats()
        before = resources.get("rss_before_bytes") or 0
        peak = resources.get("peak_rss_bytes")
        return {
            "latency_ms": {k: stats[k] for k in ("mean", "p50", "p90", "p99", "min", "max")},
            "count": int(stats["count"]),
            "throughput_qps": m.queries_per_s,
            "samples_per_s": m.queries_per_s * self.batch,
            "batch": self.batch,
            "stable": m.stable,
            "provider_used": used,
            "cpus": len(self.cpus) if self.cpus else len(allowed_cpus()),
            "memory_bytes": (peak - before) if peak and before and peak > before else None,
            "memory_source": resources.get("peak_rss_source"),
        }
