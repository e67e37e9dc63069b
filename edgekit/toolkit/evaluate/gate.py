"""The accuracy gate: a quantized variant may lose at most --max-drop of the task's main
metric against FP32 (accuracy for classifiers, R² for regressors, agreement with FP32 without
labels; any reported metric by --metric). Rejections are recorded in the manifest with why.
"""

from __future__ import annotations

import math
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.scoring import metrics as M

DEFAULT_MAX_DROP = 0.01
REASON_PREFIX = "accuracy gate: "


def main_metric(task: str, has_target: bool, override: str | None, available: list[str]) -> str:
    if override:
        if override not in available:
            raise BadInputError(
                f"`metric` {override!r} is not one of the computed metrics",
                hint=f"choose from: {', '.join(sorted(available))}",
            )
        return override
    if has_target and task in M.MAIN_METRIC:
        return M.MAIN_METRIC[task]
    return M.NO_TARGET_METRIC.get(task, "cosine_mean")


def judge(metric: str, value: Any, reference: Any, max_drop: float, variant: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "metric": metric,
        "direction": "lower is better" if metric in M.LOWER_IS_BETTER else "higher is better",
        "fp32": reference,
        "value": value,
        "max_drop": max_drop,
    }
    if value is None or reference is None or not math.isfinite(value):
        result.update(
            drop=None,
            passed=False,
            reason=f"{REASON_PREFIX}{metric} could not be computed for {variant}",
        )
        return result
    d = M.drop(metric, value, reference)
    result["drop"] = d
    result["passed"] = d <= max_drop + 1e-12
    result["reason"] = (
        None
        if result["passed"]
        else f"{REASON_PREFIX}{metric} {reference:.4g} (fp32) -> {value:.4g}, a drop of {d:.4g} "
        f"> --max-drop {max_drop:g}"
    )
    return result


def apply(entry: dict[str, Any], gate: dict[str, Any]) -> None:
    """Mark the manifest entry rejected (or clear an earlier gate rejection)."""
    if not gate["passed"]:
        entry["rejected"] = True
        entry["reject_reason"] = gate["reason"]
    elif str(entry.get("reject_reason") or "").startswith(REASON_PREFIX):
        entry["rejected"] = False
        entry["reject_reason"] = None
