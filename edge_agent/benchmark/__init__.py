"""The measurement core shared by `edgekit bench` and the on-device agent's self-benchmark.

It needs only numpy and onnxruntime (psutil if present), so a device measures itself with
exactly the harness the workstation uses and the two sets of numbers are comparable.

- `stats`: latency statistics (nearest-rank percentiles) and a compact histogram;
- `stability`: perf_analyzer-style windows, stable when the last three agree;
- `inputs`: feed sets drawn from stored samples or generated to the signature, rotated;
- `resources`: peak resident memory and CPU use around a measurement;
- `runner`: session creation, cold first inference, the timed loop, the single-stream run;
- `record`: the result record every consumer reads (schema and builder).
"""

from edge_agent.benchmark.inputs import InputSets, feeds_for
from edge_agent.benchmark.measures import Measurement, SessionTiming, TimingConfig
from edge_agent.benchmark.record import RECORD_SCHEMA, RECORD_VERSION, record_problems
from edge_agent.benchmark.runner import (
    create_session,
    measure,
    run_single_stream,
)
from edge_agent.benchmark.stability import StabilityConfig, is_stable
from edge_agent.benchmark.stats import PERCENTILES, latency_stats, percentile

__all__ = [
    "PERCENTILES",
    "RECORD_SCHEMA",
    "RECORD_VERSION",
    "InputSets",
    "Measurement",
    "SessionTiming",
    "StabilityConfig",
    "TimingConfig",
    "create_session",
    "feeds_for",
    "is_stable",
    "latency_stats",
    "measure",
    "percentile",
    "record_problems",
    "run_single_stream",
]
