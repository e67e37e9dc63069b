"""The tune decision: manifest["selection"][target], written by `edgekit tune` (and the
pipeline's tune stage), read by the packager (which variant ships) and the agent (the
session options it applies)."""

from __future__ import annotations

from typing import Any, TypedDict

from edge_agent.contracts.registry import register


class SessionOptionsRecord(TypedDict, total=False):
    intra_op_num_threads: int
    inter_op_num_threads: int
    execution_mode: str  # sequential | parallel
    graph_optimization_level: str  # disable | basic | extended | all


class _DecisionRequired(TypedDict):
    variant: str


class TuneDecision(_DecisionRequired, total=False):
    provider: str
    session_options: SessionOptionsRecord
    reason: str
    measured_on: str | None
    mode: str  # measured | profile | device
    objective: str
    latency_budget: str | None
    budget_met: bool | None
    max_drop: float | None
    metrics: dict[str, Any] | None
    front: list[dict[str, Any]]
    search: dict[str, Any] | None
    notes: list[str]
    groups: list[dict[str, Any]]  # --from-fleet: each hardware group's own choice
    tuned_at: str


register("tune decision", TuneDecision, "manifest", "/$defs/selection")
