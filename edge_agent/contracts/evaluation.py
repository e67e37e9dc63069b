"""The evaluation record: what `edgekit evaluate` stores in variant["evaluation"].

Written once (`evaluation_record`, by edgekit/toolkit/evaluate/runner.py) and read once
(`read_evaluation`, by tune's gate and the bench report), so nobody guesses its keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from edge_agent.contracts.registry import register


class _GateRequired(TypedDict):
    metric: str
    passed: bool


class GateVerdict(_GateRequired, total=False):
    """The accuracy gate on the main metric; the reference (fp32) carries reference=True."""

    direction: str  # "higher is better" | "lower is better"
    fp32: float | None
    value: float | None
    max_drop: float
    drop: float | None  # fp32's value minus this one's, in the direction of better
    reason: str | None
    reference: bool


class _EvaluationRequired(TypedDict):
    at: str
    data: dict[str, Any]  # path, sha256, rows, target_column, labelled
    variant: str
    precision: str
    bytes: int
    read_from: str
    metrics: dict[str, Any]  # sklearn.metrics figures by name
    vs_fp32: dict[str, Any]  # agreement with fp32 and the metric deltas
    gate: GateVerdict


class EvaluationRecord(_EvaluationRequired, total=False):
    debug: dict[str, Any]  # qdq_loss_debug report (static INT8 variants that failed or asked)
    auto_exclude: dict[str, Any]  # made by --auto-exclude: from which variant, which nodes


register("evaluation", EvaluationRecord, "evaluation")


def evaluation_record(
    at: str, data: Mapping[str, Any], result: Mapping[str, Any]
) -> EvaluationRecord:
    """The record to store for one variant's evaluation result (the one writer)."""
    return cast(EvaluationRecord, {"at": at, "data": dict(data), **result})


def read_evaluation(variant: Mapping[str, Any]) -> EvaluationRecord | None:
    """A manifest variant's evaluation record, or None when it was not evaluated (the one reader)."""
    ev = variant.get("evaluation")
    if not isinstance(ev, Mapping) or not isinstance(ev.get("gate"), Mapping):
        return None
    return cast(EvaluationRecord, ev)


def gate_figures(ev: EvaluationRecord) -> tuple[str, float | None, float | None]:
    """(main metric, its value, drop against fp32) from the record's gate; the reference's drop
    is 0 and its value comes from its metrics."""
    gate = ev["gate"]
    metric = gate["metric"]
    value = gate.get("value")
    if value is None:
        value = _number((ev.get("metrics") or {}).get(metric))
        if value is None:
            value = _number((ev.get("vs_fp32") or {}).get(metric))
    drop = 0.0 if gate.get("reference") else gate.get("drop")
    return metric, _number(value), _number(drop)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
