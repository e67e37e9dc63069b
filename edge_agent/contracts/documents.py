"""The two documents of a bundle, typed at their top level: the manifest (edge_agent/contracts/manifest.py
reads and writes it) and the drift baseline (edge_agent/monitoring/baseline.py)."""

from __future__ import annotations

from typing import Any, TypedDict

from edge_agent.contracts.registry import register


class _ManifestRequired(TypedDict):
    schema_version: int
    name: str
    created: str
    task: str  # classification | regression | raw
    signature: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    lineage: dict[str, Any]


class ManifestRecord(_ManifestRequired, total=False):
    updated: str
    baseline: str | None
    samples: str | None
    selection: dict[str, Any]  # target -> TuneDecision
    history: list[dict[str, Any]]


class BaselineRecord(TypedDict):
    schema_version: int
    rows: int
    features: list[dict[str, Any]]
    predictions: list[dict[str, Any]]


register("manifest", ManifestRecord, "manifest")
register("baseline", BaselineRecord, "baseline")
