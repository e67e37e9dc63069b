"""The benchmark record: one configuration measured once (edge_agent/benchmark/record.py
builds it; `edgekit bench`, the agent's self-benchmark and tune's device figures read it)."""

from __future__ import annotations

from typing import Any, TypedDict, cast

from edge_agent.contracts.registry import register


class Headline(TypedDict):
    name: str
    value: float
    unit: str


class _BenchRequired(TypedDict):
    schema_version: int
    scenario: str  # single-stream | multi-stream | server | offline
    system: str  # onnxruntime, or native:<framework>
    variant: str
    provider: str
    threads: int | None
    batch: int
    latency_ms: dict[str, float]  # count, min, mean, std, p50, p90, p95, p99, p99.9, max
    throughput: dict[str, float]  # queries_per_s, inferences_per_s, samples_per_s
    stability: dict[str, Any]  # stable, tolerance, windows
    session: dict[str, float | None]  # create_ms, cold_first_ms
    resources: dict[str, Any]  # peak_rss_bytes, peak_rss_source, cpu_percent, ...
    inputs: dict[str, Any]
    timing: dict[str, Any]
    headline: Headline
    measured_at: str


class BenchRecord(_BenchRequired, total=False):
    providers_in_use: list[str]
    model_bytes: int | None
    histogram: dict[str, Any]
    scenario_result: dict[str, Any]
    copies: dict[str, Any] | None
    notes: list[str]
    host: dict[str, Any]
    session_options: dict[str, Any]  # added where the record is stored against a target
    environment: dict[str, Any]  # the device that measured it (thing, cpu_model)


register("bench record", BenchRecord, "bench_record")


def stored_records(entry: Any) -> list[BenchRecord]:
    """The single-stream records stored under a manifest's variant["benchmarks"][target] (the
    one reader of that place). Layouts: the bench stage's {"environment", "scenarios":
    {scenario: [records]}} (each record gets the entry's environment), {"records": [...]},
    a list of records, or one record."""
    if isinstance(entry, list):
        return [cast(BenchRecord, r) for r in entry if isinstance(r, dict)]
    if not isinstance(entry, dict):
        return []
    scenarios = entry.get("scenarios")
    if isinstance(scenarios, dict):
        env = entry.get("environment") or {}
        return [
            cast(BenchRecord, {"environment": env, **r})
            for r in scenarios.get("single-stream") or []
            if isinstance(r, dict)
        ]
    inner = entry.get("records")
    if isinstance(inner, list):
        return [cast(BenchRecord, r) for r in inner if isinstance(r, dict)]
    return [cast(BenchRecord, entry)] if "latency_ms" in entry else []
