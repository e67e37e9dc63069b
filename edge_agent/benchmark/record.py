"""The benchmark result record: one configuration measured once.

The same record comes from `edgekit bench`, from the agent's self-benchmark (published on
`dt/edgekit/{thing}/bench`) and lands in the manifest under variant["benchmarks"][target],
so every consumer reads one shape. RECORD_SCHEMA documents it; `record_problems` checks it
with jsonschema when installed (the device skips the check, as with the other formats).
"""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from edge_agent.benchmark.stats import histogram

if TYPE_CHECKING:  # pragma: no cover
    from edge_agent.benchmark.inputs import InputSets
    from edge_agent.benchmark.measures import Measurement, SessionTiming, TimingConfig

RECORD_VERSION = 1

# The number each scenario is judged by, after MLPerf LoadGen.
HEADLINE = {
    "single-stream": ("latency_ms", "p90"),
    "multi-stream": ("latency_ms", "p99"),
    "server": ("latency_ms", "p99"),
    "offline": ("throughput", "samples_per_s"),
}

_NUM = {"type": ["number", "null"]}
_LATENCY = {
    "type": "object",
    "required": ["count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"],
    "properties": {
        k: {"type": "number"}
        for k in ("min", "mean", "std", "p50", "p90", "p95", "p99", "p99.9", "max")
    }
    | {"count": {"type": "integer", "minimum": 1}},
}

RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edgekit benchmark result record",
    "type": "object",
    "required": [
        "schema_version",
        "scenario",
        "system",
        "variant",
        "provider",
        "threads",
        "batch",
        "latency_ms",
        "throughput",
        "stability",
        "session",
        "resources",
        "inputs",
        "timing",
        "headline",
        "measured_at",
    ],
    "properties": {
        "schema_version": {"const": RECORD_VERSION},
        "scenario": {"enum": list(HEADLINE)},
        "system": {"type": "string", "description": "onnxruntime, or native:<framework>"},
        "variant": {"type": "string"},
        "provider": {"type": "string"},
        "providers_in_use": {"type": "array", "items": {"type": "string"}},
        "threads": {"type": ["integer", "null"], "minimum": 0},
        "batch": {"type": "integer", "minimum": 1},
        "model_bytes": {"type": ["integer", "null"]},
        "latency_ms": _LATENCY,
        "histogram": {
            "type": "object",
            "properties": {
                "edges_ms": {"type": "array", "items": {"type": "number"}},
                "counts": {"type": "array", "items": {"type": "integer"}},
            },
        },
        "throughput": {
            "type": "object",
            "required": ["queries_per_s", "inferences_per_s", "samples_per_s"],
            "properties": {
                "queries_per_s": {"type": "number"},
                "inferences_per_s": {"type": "number"},
                "samples_per_s": {"type": "number"},
            },
        },
        "stability": {
            "type": "object",
            "required": ["stable", "tolerance", "windows"],
            "properties": {
                "stable": {"type": "boolean"},
                "tolerance": {"type": "number"},
                "windows": {"type": "array", "items": {"type": "object"}},
                "counted_windows": {"type": "integer"},
                "max_windows": {"type": "integer"},
            },
        },
        "session": {
            "type": "object",
            "properties": {"create_ms": _NUM, "cold_first_ms": _NUM},
        },
        "resources": {
            "type": "object",
            "properties": {
                "peak_rss_bytes": {"type": ["integer", "null"]},
                "peak_rss_source": {"type": "string"},
                "peak_rss_increase_bytes": {
                    "type": ["integer", "null"],
                    "description": "peak minus the resident memory before the session was made",
                },
                "cpu_percent": _NUM,
            },
        },
        "inputs": {"type": "object"},
        "timing": {"type": "object"},
        "headline": {
            "type": "object",
            "required": ["name", "value", "unit"],
            "properties": {
                "name": {"type": "string"},
                "value": {"type": "number"},
                "unit": {"type": "string"},
            },
        },
        "scenario_result": {"type": "object"},
        "copies": {"type": ["object", "null"]},
        "notes": {"type": "array", "items": {"type": "string"}},
        "measured_at": {"type": "string"},
        "host": {"type": "object"},
    },
    "additionalProperties": True,
}


def record_problems(record: dict[str, Any]) -> list[str]:
    """Schema violations of a record ('path: message'); [] when valid or jsonschema is absent."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the device path
        return []
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}"
        for e in validator.iter_errors(record)
    ]


def headline(
    scenario: str, latency: dict[str, Any], throughput: dict[str, float]
) -> dict[str, Any]:
    section, key = HEADLINE[scenario]
    if section == "latency_ms":
        return {"name": f"{key} latency", "value": float(latency[key]), "unit": "ms"}
    return {"name": key.replace("_", " "), "value": float(throughput[key]), "unit": "samples/s"}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def build_record(
    *,
    scenario: str,
    system: str,
    variant: str,
    provider: str,
    threads: int | None,
    batch: int,
    measurement: Measurement,
    session: SessionTiming,
    resources: dict[str, Any],
    inputs: InputSets | dict[str, Any],
    timing: TimingConfig | dict[str, Any],
    model_bytes: int | None = None,
    providers_in_use: list[str] | None = None,
    scenario_result: dict[str, Any] | None = None,
    samples_per_query: int | None = None,
    copies: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble the record from a measurement; `samples_per_query` defaults to `batch`."""
    latency = measurement.stats()
    qps = measurement.queries_per_s
    per_query = samples_per_query or batch
    throughput = {
        "queries_per_s": qps,
        "inferences_per_s": qps,
        "samples_per_s": qps * per_query,
    }
    stab = timing.stability if hasattr(timing, "stability") else None
    input_info = inputs.describe() if hasattr(inputs, "describe") else dict(inputs)
    all_notes = list(notes or []) + list(getattr(inputs, "notes", []) or [])
    if not measurement.stable:
        all_notes.append(
            f"unstable: the last {stab.windows if stab else 3} windows did not agree within "
            f"{(stab.tolerance if stab else 0.1):.0%}"
        )
    resources = dict(resources)
    resources["cpu_percent"] = measurement.cpu_percent  # over the counted windows only
    return {
        "schema_version": RECORD_VERSION,
        "scenario": scenario,
        "system": system,
        "variant": variant,
        "provider": provider,
        "providers_in_use": providers_in_use or [provider],
        "threads": threads,
        "batch": batch,
        "model_bytes": model_bytes,
        "latency_ms": latency,
        "histogram": histogram(measurement.latencies_s),
        "throughput": throughput,
        "stability": {
            "stable": measurement.stable,
            "tolerance": stab.tolerance if stab else 0.1,
            "windows": measurement.windows,
            "counted_windows": measurement.counted_windows,
            "max_windows": stab.max_windows if stab else len(measurement.windows),
        },
        "session": {"create_ms": _ms(session.create_s), "cold_first_ms": _ms(session.cold_first_s)},
        "resources": resources,
        "inputs": input_info,
        "timing": {
            **(timing.describe() if hasattr(timing, "describe") else dict(timing)),
            "calls": measurement.total_calls,
        },
        "headline": headline(scenario, latency, throughput),
        "scenario_result": scenario_result or {},
        "copies": copies,
        "notes": all_notes,
        "measured_at": utc_now(),
        "host": {"node": platform.node(), "machine": platform.machine()},
    }
