"""A variant's raw outputs -> what the metrics need: class indices and probabilities for
classifiers (from a probabilities output, or softmax of logits for torch classifiers),
values for regressors, the raw output otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.toolkit.scoring import pooling


@dataclass
class Predictions:
    task: str
    scores: np.ndarray  # the main numeric output, (rows, k)
    classes: np.ndarray | None = None  # predicted class index per row
    proba: np.ndarray | None = None  # (rows, n_classes), rows sum to 1
    values: np.ndarray | None = None  # regression values (rows,) or (rows, k)
    source: str = ""  # which output and how it was read


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.nan_to_num(p.astype(np.float64), nan=0.0), 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    return np.divide(p, total, out=np.full_like(p, 1.0 / p.shape[1]), where=total > 0)


def _one_hot(predicted: np.ndarray, labels: list[Any]) -> np.ndarray:
    """Predicted label values as one-hot rows over `labels` (numerically when both are
    numbers: skl2onnx gives float classes as int64)."""
    index = {str(label): i for i, label in enumerate(labels)}
    numeric = {float(lab): j for j, lab in enumerate(labels) if _is_num(lab)}
    out = np.zeros((len(predicted), len(labels)))
    for row, value in enumerate(predicted):
        i = index.get(str(value))
        if i is None and _is_num(value):
            i = numeric.get(float(value))
        if i is not None:
            out[row, i] = 1.0
    return out


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _by_role(signature: dict[str, Any], role: str) -> dict[str, Any] | None:
    return next((o for o in signature["outputs"] if o.get("role") == role), None)


def read(
    signature: dict[str, Any],
    task: str,
    outputs: dict[str, np.ndarray],
    feeds: dict[str, np.ndarray] | None = None,
) -> Predictions:
    rows = len(next(iter(outputs.values())))
    if task == "classification":
        labels = signature.get("labels") or []
        prob_spec = _by_role(signature, "probabilities")
        logit_spec = _by_role(signature, "logits")
        if prob_spec is not None:
            raw = outputs[prob_spec["name"]].reshape(rows, -1).astype(np.float64)
            proba, how = _normalise(raw), f"{prob_spec['name']} (probabilities)"
        elif logit_spec is not None:
            raw = outputs[logit_spec["name"]].reshape(rows, -1).astype(np.float64)
            if raw.shape[1] == 1:  # one logit: a binary classifier with a sigmoid
                p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))
                proba = np.stack([1 - p1, p1], axis=1)
                how = f"sigmoid of {logit_spec['name']} (one logit)"
            else:
                proba, how = softmax(raw), f"softmax of {logit_spec['name']} (logits)"
        elif (label_spec := _by_role(signature, "label")) is not None and labels:
            # no scores (LinearSVC, Perceptron, SVC without probability=True): the predicted
            # labels score accuracy and F1; probabilities are their one-hot form
            raw = _one_hot(outputs[label_spec["name"]].reshape(rows), labels)
            proba, how = raw, f"{label_spec['name']} (labels only: no scores, one-hot)"
        else:
            raise BadInputError(
                "the classifier has no probabilities, logits or label output to score",
                hint="re-export it so the manifest names a probabilities/logits output",
            )
        if labels and proba.shape[1] != len(labels):
            raise BadInputError(
                f"the model outputs {proba.shape[1]} class scores but the manifest lists "
                f"{len(labels)} labels"
            )
        return Predictions(task, raw, classes=proba.argmax(axis=1), proba=proba, source=how)
    first = signature["outputs"][0]
    if task == "regression":
        spec = _by_role(signature, "value") or first
        values = outputs[spec["name"]].reshape(rows, -1).astype(np.float64)
        return Predictions(
            task,
            values,
            values=values[:, 0] if values.shape[1] == 1 else values,
            source=spec["name"],
        )
    embedded = pooling.pooled(signature, outputs, feeds or {})
    if embedded is not None:  # an encoder: one pooled vector per sentence
        return Predictions(task, embedded[0], source=embedded[1])
    raw = outputs[first["name"]].reshape(rows, -1).astype(np.float64)
    return Predictions(task, raw, source=first["name"])


def target_indices(target: np.ndarray, labels: list[Any]) -> np.ndarray:
    """Map label values (or class indices when the labels are names) to class indices."""
    target = np.asarray(target).reshape(-1)
    lookup = {str(label): i for i, label in enumerate(labels)}
    as_str = target.astype(str)
    if all(v in lookup for v in np.unique(as_str)):
        return np.array([lookup[v] for v in as_str], dtype=np.int64)
    if target.dtype.kind in "iu" or (
        target.dtype.kind == "f"
        and np.all(np.isfinite(target))
        and np.all(target == np.round(target))
    ):
        idx = target.astype(np.int64)
        if idx.min() >= 0 and idx.max() < len(labels):
            return idx
    unknown = sorted(str(v) for v in set(np.unique(as_str)) - set(lookup))[:10]
    raise BadInputError(
        f"the target holds classes {', '.join(repr(u) for u in unknown)} that the model does "
        f"not know (its labels are {', '.join(map(str, labels[:20]))})",
        hint="check `target_column` and that the data belongs to this model",
    )
