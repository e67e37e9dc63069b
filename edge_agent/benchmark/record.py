"""The benchmark result record: one configuration measured once.

The same record comes from `edgekit bench`, from the agent's self-benchmark (published on
`dt/edgekit/{thing}/bench`) and lands in the manifest under variant["benchmarks"][target],
so every consumer reads one shape. RECORD_SCHEMA (schemas/bench_record.schema.json) documents it; `record_problems` checks it
with jsonschema when installed (the device skips the check, as with the other formats).
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from edge_agent.benchmark.stats import histogram
from edge_agent.clock import utc_now as utc_now  # re-exported: manifest_io.utc_now
from edge_agent.schemas import load_schema

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

# The schema is edge_agent/schemas/bench_record.schema.json; the typed record beside it is
# edge_agent.contracts.bench.BenchRecord (tests/edge_agent/contracts/test_contracts.py keeps them equal).
RECORD_SCHEMA: dict[str, Any] = load_schema("bench_record")


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
