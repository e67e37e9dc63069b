"""The contracts: each format edgekit writes and reads back has one typed record (a TypedDict,
so the JSON stays plain JSON) and one JSON Schema in edge_agent/schemas, kept equal by a test.

- `documents`: the bundle manifest and the drift baseline (top level);
- `evaluation`: variant["evaluation"], with its one writer and one reader;
- `bench`: the benchmark record;
- `selection`: the tune decision, manifest["selection"][target];
- `telemetry`: the envelope of every device message.
"""

from edge_agent.contracts import bench, documents, evaluation, selection, telemetry
from edge_agent.contracts.bench import BenchRecord
from edge_agent.contracts.documents import BaselineRecord, ManifestRecord
from edge_agent.contracts.evaluation import EvaluationRecord, GateVerdict
from edge_agent.contracts.registry import CONTRACTS, Contract
from edge_agent.contracts.selection import TuneDecision
from edge_agent.contracts.telemetry import TelemetryMessage

__all__ = [
    "CONTRACTS",
    "BaselineRecord",
    "BenchRecord",
    "Contract",
    "EvaluationRecord",
    "GateVerdict",
    "ManifestRecord",
    "TelemetryMessage",
    "TuneDecision",
    "bench",
    "documents",
    "evaluation",
    "selection",
    "telemetry",
]
