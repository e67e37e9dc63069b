"""Accuracy against latency for the bench report: the task's main metric from each variant's
evaluation record, and the variants on the Pareto front (edgekit.toolkit.scoring.pareto) of the two."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from edge_agent.contracts.evaluation import EvaluationRecord, gate_figures
from edgekit.toolkit.scoring.metrics import LOWER_IS_BETTER as EVALUATE_LOWER_IS_BETTER
from edgekit.toolkit.scoring.pareto import pareto_front

# evaluate's own list, plus spellings other tools write into an evaluation.
LOWER_IS_BETTER = set(EVALUATE_LOWER_IS_BETTER) | {"logloss", "max_difference"}
PREFERRED = {
    "classification": ("accuracy", "f1", "f1_macro", "f1_weighted", "roc_auc", "balanced_accuracy"),
    "regression": ("r2", "rmse", "mae", "mse"),
    "raw": ("cosine_mean", "cosine_similarity", "label_agreement"),
}


def main_metric(evaluation: Mapping[str, Any] | None, task: str) -> tuple[str, float, bool] | None:
    """(name, value, higher_is_better) of an evaluation's main metric, or None.

    The evaluation is edgekit's EvaluationRecord: its gate names the main metric. Without a gate
    (an evaluation of the fp32 reference written by hand), the first metric the task prefers.
    """
    if not evaluation:
        return None
    ev = cast(EvaluationRecord, evaluation)
    if isinstance(ev.get("gate"), Mapping):
        name, value, _ = gate_figures(ev)
        if value is not None:
            direction = str(ev["gate"].get("direction") or "")
            higher = not direction.startswith("lower") if direction else name not in LOWER_IS_BETTER
            return name, value, higher
    metrics = ev.get("metrics") or {}
    for name in [*PREFERRED.get(task, ()), *(m for p in PREFERRED.values() for m in p)]:
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return name, float(value), name not in LOWER_IS_BETTER
    return None


def accuracy_front(points: Sequence[tuple[str, float, float]], higher_is_better: bool) -> list[str]:
    """Names of the (name, latency, quality) points on the Pareto front (scoring.pareto)."""
    axes = {"latency": -1, "quality": +1 if higher_is_better else -1}
    front = pareto_front(points, lambda p: {"latency": p[1], "quality": p[2]}, axes)
    return [name for name, _, _ in front]
