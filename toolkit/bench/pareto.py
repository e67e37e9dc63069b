"""Accuracy against latency: the task's main metric from each variant's evaluation, and the
Pareto front of variants that no other variant beats on both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.scoring.metrics import LOWER_IS_BETTER as EVALUATE_LOWER_IS_BETTER

# evaluate's own list, plus spellings other tools write into an evaluation.
LOWER_IS_BETTER = set(EVALUATE_LOWER_IS_BETTER) | {"logloss", "max_difference"}
PREFERRED = {
    "classification": ("accuracy", "f1", "f1_macro", "f1_weighted", "roc_auc", "balanced_accuracy"),
    "regression": ("r2", "rmse", "mae", "mse"),
    "raw": ("cosine_mean", "cosine_similarity", "label_agreement"),
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping) and isinstance(value.get("value"), (int, float)):
        return float(value["value"])
    return None


def main_metric(evaluation: Mapping[str, Any] | None, task: str) -> tuple[str, float, bool] | None:
    """(name, value, higher_is_better) of the evaluation's main metric, or None.

    The evaluate stage records {metrics: {...}, gate: {metric, value, direction, ...}}: the
    gate's metric is the main one. Otherwise `main_metric` when named (a name, or
    {name, value}), else the first metric the task prefers, from the evaluation or `metrics`.
    """
    if not evaluation:
        return None
    pools = [evaluation, evaluation.get("metrics") or {}]
    gate = evaluation.get("gate") or {}
    if isinstance(gate, Mapping) and gate.get("metric"):
        name = str(gate["metric"])
        value = _number(gate.get("value"))
        if value is None and isinstance(pools[1], Mapping):
            value = _number(pools[1].get(name))
        if value is not None:
            direction = str(gate.get("direction", ""))
            higher = not direction.startswith("lower") if direction else name not in LOWER_IS_BETTER
            return name, value, higher
    named = evaluation.get("main_metric") or evaluation.get("primary_metric")
    candidates: list[str] = []
    if isinstance(named, Mapping) and "name" in named:
        value = _number(named.get("value"))
        if value is not None:
            return str(named["name"]), value, str(named["name"]) not in LOWER_IS_BETTER
        candidates.append(str(named["name"]))
    elif isinstance(named, str):
        candidates.append(named)
    candidates += list(PREFERRED.get(task, ())) + [m for p in PREFERRED.values() for m in p]
    for name in candidates:
        for pool in pools:
            if isinstance(pool, Mapping) and name in pool:
                value = _number(pool[name])
                if value is not None:
                    return name, value, name not in LOWER_IS_BETTER
    return None


def pareto_front(
    points: Sequence[tuple[str, float, float]], higher_is_better: bool = True
) -> list[str]:
    """Names of the points (name, latency, quality) that no other point dominates:
    none is at least as fast and at least as good, and strictly better in one."""
    front = []
    for name, lat, q in points:
        dominated = False
        for other, lat2, q2 in points:
            if other == name:
                continue
            better_q = q2 >= q if higher_is_better else q2 <= q
            strictly = lat2 < lat or (q2 > q if higher_is_better else q2 < q)
            if lat2 <= lat and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append(name)
    return front
