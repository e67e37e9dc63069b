"""Synthetic device telemetry built with the contract's own code (histograms, drift statistics).

Benchmarks, tests and examples need messages shaped exactly like the agent's without running
a model: `metrics_body` fills every required field of the ``metrics`` body from seeded random
numbers, through ``edge_agent.telemetry`` and ``edge_agent.monitoring.drift`` so nothing is hand-typed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge_agent import telemetry
from edge_agent.monitoring import drift

SHA = "ab" * 32


def feature_reference(n_features: int, bins: int = 10) -> dict[str, list[float]]:
    """Uniform reference shares per feature name (f00, f01, ...)."""
    return {f"f{i:02d}": [1.0 / bins] * bins for i in range(n_features)}


def drift_entries(
    reference: dict[str, list[float]],
    rows: int,
    rng: np.random.Generator,
    shift: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Bin counts for ``rows`` draws per feature; ``shift[name]`` moves that share to the top bin."""
    out = {}
    for name, shares in reference.items():
        probs = np.asarray(shares, dtype=np.float64)
        s = (shift or {}).get(name, 0.0)
        if s:
            probs = probs * (1 - s)
            probs[-1] += s
        counts = rng.multinomial(rows, probs / probs.sum()).tolist()
        out[name] = {"kind": "numeric", **drift.assess(counts, shares)}
    return out


def latency_histogram(values_ms: list[float]) -> dict[str, Any]:
    h = telemetry.Histogram()
    for v in values_ms:
        h.record(v)
    return telemetry.summarize_histogram(h)


def metrics_body(
    rng: np.random.Generator,
    *,
    requests: int = 50,
    window_s: float = 1.0,
    latency_ms: float = 2.0,
    reference: dict[str, list[float]] | None = None,
    shift: dict[str, float] | None = None,
    latencies: list[float] | None = None,
) -> dict[str, Any]:
    """A complete ``metrics`` body; ``latencies`` overrides the random latency draws."""
    lat = (
        latencies
        if latencies is not None
        else (rng.lognormal(0.0, 0.3, requests) * latency_ms).tolist()
    )
    count = len(lat)
    return {
        "requests": {"count": count, "ok": count, "rows": count, "errors": {}},
        "latency_ms": latency_histogram(lat),
        "queue_ms": latency_histogram([v * 0.05 for v in lat]),
        "compute_ms": latency_histogram([v * 0.9 for v in lat]),
        "throughput": {"requests_per_s": count / window_s, "rows_per_s": count / window_s},
        "process": {"cpu_percent": 12.5, "cpu_seconds": 1.0, "rss_bytes": 50_000_000},
        "data_quality": {
            "rows": count,
            "counts": {k: 0 for k in telemetry.QUALITY_KINDS},
            "by_feature": {},
        },
        "drift": {
            "features": drift_entries(reference or {}, count, rng, shift),
            "predictions": {},
        },
        "quality": None,
        "outbox": {"pending": 0, "dropped_total": 0},
    }


def message(
    message_type: str,
    thing: str,
    seq: int,
    body: dict[str, Any],
    *,
    window: tuple[float, float] | None = None,
    variant: str = "fp32",
    model_name: str = "demo",
    component_version: str = "1.0.0",
) -> dict[str, Any]:
    now = time.time()
    msg = telemetry.make_message(
        message_type,
        thing=thing,
        component_version=component_version,
        model={"name": model_name, "variant": variant, "sha256": SHA},
        window=window or (now - 1.0, now),
        body=body,
        seq=seq,
    )
    return msg


def hello_body(target: str | None = None, variant: str = "fp32", name: str = "demo") -> dict:
    return {
        "hardware": {"cpu": {"model": "synthetic"}, "platform": {"os": "linux"}},
        "bundle": {
            "name": name,
            "task": "classification",
            "variants": {variant: {"sha256": SHA, "bytes": 1, "precision": "fp32"}},
            "selected": variant,
            "target": target,
            "session_options": {},
        },
        "agent": {"pid": 1, "started_at": time.time(), "transport": "synthetic", "window_s": 1.0},
        "ready_s": 0.1,
    }


class SyntheticDevice:
    """A lightweight device for scale tests: the agent's real durable outbox (seq assignment,
    bounded, replay) and real MQTT 5 transport and publisher thread, without a model."""

    def __init__(
        self,
        thing: str,
        broker_url: str,
        outbox_path: str,
        *,
        seed: int = 0,
        reference: dict[str, list[float]] | None = None,
        requests_per_window: int = 20,
        publish_timeout_s: float = 5.0,
    ) -> None:
        from edge_agent.config import AgentConfig
        from edge_agent.telemetry.outbox import Outbox, Publisher
        from edge_agent.telemetry.transports.mqtt import MqttTransport

        self.thing = thing
        self.rng = np.random.default_rng(seed)
        self.reference = reference if reference is not None else feature_reference(4)
        self.requests = requests_per_window
        self.outbox = Outbox(outbox_path)
        config = AgentConfig(thing=thing, mqtt=broker_url, publish_timeout_s=publish_timeout_s)
        self.transport = MqttTransport(config)
        self.publisher = Publisher(self.outbox, self.transport, timeout_s=publish_timeout_s)
        self.emitted = 0

    def start(self) -> SyntheticDevice:
        self.transport.start()
        self.publisher.start()
        return self

    def emit(self, message_type: str = "metrics", body: dict[str, Any] | None = None) -> list[int]:
        """Enqueue one message (the outbox assigns its seq); returns the seqs."""
        now = time.time()
        if body is None:
            body = metrics_body(self.rng, requests=self.requests, reference=self.reference)
        msg = message(message_type, self.thing, 0, body, window=(now - 1.0, now))
        self.emitted += 1
        return self.outbox.enqueue(telemetry.data_topic(self.thing, message_type), msg)

    def pending(self) -> int:
        return self.outbox.stats()["pending"]

    def close(self, flush_timeout: float = 5.0) -> bool:
        """Flush what is queued (bounded wait), then disconnect; True when nothing is left."""
        flushed = self.publisher.flush(flush_timeout)
        self.transport.close()
        self.outbox.close()
        return flushed
