"""The standard model metrics, every one computed by sklearn.metrics (no hand-written formulas).

Classification: accuracy, precision, recall, F1 (binary; macro and weighted for multiclass),
ROC AUC (one-vs-rest for multiclass), log loss, confusion matrix. Regression: MAE, MSE, RMSE, R².
Without labels: cosine similarity and max difference against FP32.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "log_loss", "max_abs_diff", "mean_abs_diff"})
MAIN_METRIC = {"classification": "accuracy", "regression": "r2"}
NO_TARGET_METRIC = {
    "classification": "label_agreement",
    "regression": "cosine_mean",
    "raw": "cosine_mean",
}


def classification(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, labels: list[Any]
) -> dict[str, Any]:
    """y_true and y_pred are class indices into `labels`; proba is (rows, len(labels))."""
    from sklearn import metrics as m

    k = proba.shape[1]
    idx = list(range(k))
    out: dict[str, Any] = {"accuracy": float(m.accuracy_score(y_true, y_pred))}
    notes: list[str] = []
    if k == 2:
        for name, fn in (
            ("precision", m.precision_score),
            ("recall", m.recall_score),
            ("f1", m.f1_score),
        ):
            out[name] = float(fn(y_true, y_pred, pos_label=1, average="binary", zero_division=0))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["roc_auc"] = float(m.roc_auc_score(y_true, proba[:, 1]))
        except ValueError as exc:
            out["roc_auc"] = None
            notes.append(f"roc_auc: {exc}")
        if out["roc_auc"] is not None and not np.isfinite(out["roc_auc"]):
            out["roc_auc"] = None
            notes.append("roc_auc: undefined, the data holds one class only")
    else:
        for avg in ("macro", "weighted"):
            out[f"precision_{avg}"] = float(
                m.precision_score(y_true, y_pred, labels=idx, average=avg, zero_division=0)
            )
            out[f"recall_{avg}"] = float(
                m.recall_score(y_true, y_pred, labels=idx, average=avg, zero_division=0)
            )
            out[f"f1_{avg}"] = float(
                m.f1_score(y_true, y_pred, labels=idx, average=avg, zero_division=0)
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["roc_auc_ovr"] = float(
                    m.roc_auc_score(y_true, proba, multi_class="ovr", labels=idx)
                )
        except ValueError as exc:  # e.g. a class absent from the data (older scikit-learn)
            out["roc_auc_ovr"] = None
            notes.append(f"roc_auc_ovr: {exc}")
        if out["roc_auc_ovr"] is not None and not np.isfinite(out["roc_auc_ovr"]):
            out["roc_auc_ovr"] = None  # newer scikit-learn returns NaN with a warning
            notes.append("roc_auc_ovr: undefined, a class has no rows in the data")
    out["log_loss"] = float(m.log_loss(y_true, proba, labels=idx))
    out["confusion_matrix"] = m.confusion_matrix(y_true, y_pred, labels=idx).tolist()
    out["confusion_labels"] = [str(label) for label in labels] if labels else [str(i) for i in idx]
    if notes:
        out["notes"] = notes
    return out


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(y_true.shape)
    return {
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
        "mse": float(m.mean_squared_error(y_true, y_pred)),
        "rmse": float(m.root_mean_squared_error(y_true, y_pred)),
        "r2": float(m.r2_score(y_true, y_pred)),
    }


def versus_reference(reference: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Row-wise cosine similarity and absolute differences of a variant's output against FP32."""
    from sklearn.metrics.pairwise import paired_cosine_distances

    ref = np.nan_to_num(np.asarray(reference, dtype=np.float64).reshape(len(reference), -1))
    out = np.nan_to_num(np.asarray(got, dtype=np.float64).reshape(len(got), -1))
    if ref.shape[1] == 1:
        # The cosine of two scalars is only their sign agreement; compare the whole column.
        cos = np.array([_cosine(ref[:, 0], out[:, 0])])
    else:
        cos = 1.0 - paired_cosine_distances(ref, out)
        zero = (np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(out, axis=1) == 0)
        cos[zero] = 1.0
    diff = np.abs(ref - out)
    return {
        "cosine_mean": float(np.mean(cos)),
        "cosine_min": float(np.min(cos)),
        "max_abs_diff": float(np.max(diff)) if diff.size else 0.0,
        "mean_abs_diff": float(np.mean(diff)) if diff.size else 0.0,
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics.pairwise import cosine_similarity

    if not np.any(a) and not np.any(b):
        return 1.0
    return float(cosine_similarity(a.reshape(1, -1), b.reshape(1, -1))[0, 0])


def label_agreement(reference: np.ndarray, got: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(reference, got))


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }


def deltas(metrics: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Change of each scalar metric against the FP32 variant (variant minus FP32)."""
    ours, ref = scalar_metrics(metrics), scalar_metrics(reference)
    return {k: ours[k] - ref[k] for k in ours if k in ref}


def drop(name: str, value: float, reference: float) -> float:
    """How much worse `value` is than `reference` (positive = worse), whatever the direction."""
    return value - reference if name in LOWER_IS_BETTER else reference - value
