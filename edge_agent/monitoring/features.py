"""Turn model inputs and outputs into the named 1-D features that drift monitoring tracks.

Export (to build the baseline) and the agent (to bin live traffic) both call this, so a
feature means the same thing on the workstation and on every device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Above this many values per row a tensor is watched through per-row summaries,
# not one feature per element (an image has thousands of pixels).
MAX_ELEMENT_FEATURES = 64
SUMMARIES = ("mean", "std", "min", "max")
# Scores per class (logits, probabilities) are also watched as the predicted class index.
CLASS_SCORE_ROLES = ("logits", "probabilities")
ARGMAX = "argmax"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # numeric | categorical
    tensor: str
    index: int | None = None
    summary: str | None = None

    def source(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "index": self.index, "summary": self.summary}

    @classmethod
    def from_baseline(cls, entry: dict[str, Any]) -> FeatureSpec:
        src = entry["source"]
        return cls(
            entry["name"], entry["kind"], src["tensor"], src.get("index"), src.get("summary")
        )


def _is_string(arr: np.ndarray) -> bool:
    return arr.dtype.kind in ("U", "S", "O")


def specs_for(
    tensors: list[dict[str, Any]], arrays: dict[str, np.ndarray], *, prediction: bool = False
) -> list[FeatureSpec]:
    """Decide which features to track for these tensors, from the signature and example data."""
    specs: list[FeatureSpec] = []
    has_label = any(t.get("role") == "label" and t["name"] in arrays for t in tensors)
    for tensor in tensors:
        name = tensor["name"]
        if name not in arrays:
            continue
        # a feature goes by the user's column name; `tensor` keeps the ONNX name it reads
        shown = tensor.get("column") or name
        arr = np.asarray(arrays[name])
        per_row = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
        role = tensor.get("role")
        categorical = _is_string(arr) or (prediction and role == "label")
        if categorical:
            if per_row == 1:
                specs.append(FeatureSpec(shown, "categorical", name))
            continue  # multi-valued string tensors are not tracked
        if prediction and role in CLASS_SCORE_ROLES and has_label:
            continue  # the predicted label already carries the class distribution
        if prediction and role in CLASS_SCORE_ROLES and arr.ndim == 2 and per_row > 1:
            specs.append(FeatureSpec(f"{name}:{ARGMAX}", "categorical", name, summary=ARGMAX))
        if per_row == 1:
            specs.append(FeatureSpec(shown, "numeric", name))
        elif arr.ndim == 2 and per_row <= MAX_ELEMENT_FEATURES:
            specs.extend(
                FeatureSpec(f"{name}[{i}]", "numeric", name, index=i) for i in range(per_row)
            )
        else:
            specs.extend(FeatureSpec(f"{name}:{s}", "numeric", name, summary=s) for s in SUMMARIES)
    return specs


def values_for(spec: FeatureSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """One value per row for this feature (strings for categorical, float64 for numeric)."""
    arr = np.asarray(arrays[spec.tensor])
    rows = arr.shape[0] if arr.ndim else 1
    if spec.summary == ARGMAX:  # predicted class index, as text like any category
        classes: np.ndarray = np.argmax(arr.reshape(rows, -1), axis=1)
        return classes.astype(str)
    if spec.kind == "categorical":
        return np.asarray(arr).reshape(rows, -1)[:, 0].astype(str)
    flat = arr.reshape(rows, -1).astype(np.float64, copy=False)
    if spec.summary is not None:
        with np.errstate(invalid="ignore"):
            summary: np.ndarray = (
                getattr(np, f"nan{spec.summary}")(flat, axis=1)
                if flat.shape[1]
                else np.full(rows, np.nan)
            )
            return summary
    return flat[:, spec.index if spec.index is not None else 0]
