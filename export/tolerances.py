"""Parity tolerances by model family.

Smooth models (linear, SVM, MLP, neural nets) agree with their ONNX form to float32 rounding.
Tree ensembles compare float32 thresholds where scikit-learn compares float64, so a few rows
near a split point land in another leaf: they are judged by label agreement and by the share
of rows outside a looser tolerance, not by the single worst row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-4
    rtol: float = 1e-3
    max_mismatch_rate: float = 0.0  # share of rows allowed outside atol + rtol*|ref|
    min_label_agreement: float = 0.995

    def override(self, atol: float | None = None, rtol: float | None = None) -> Tolerance:
        changes: dict[str, Any] = {}
        if atol is not None:
            changes["atol"] = atol
        if rtol is not None:
            changes["rtol"] = rtol
        return replace(self, **changes)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULTS: dict[str, Tolerance] = {
    "linear": Tolerance(atol=1e-4, rtol=1e-3, min_label_agreement=0.995),
    "svm": Tolerance(atol=1e-3, rtol=1e-3, min_label_agreement=0.995),
    "neighbors": Tolerance(atol=1e-4, rtol=1e-3, max_mismatch_rate=0.01, min_label_agreement=0.99),
    "mlp": Tolerance(atol=1e-4, rtol=1e-3, min_label_agreement=0.995),
    "tree": Tolerance(atol=1e-3, rtol=1e-3, max_mismatch_rate=0.02, min_label_agreement=0.98),
    "torch": Tolerance(atol=1e-4, rtol=1e-3, min_label_agreement=0.995),
    "onnx": Tolerance(atol=1e-5, rtol=1e-4),
    "other": Tolerance(),
}


def for_family(family: str) -> Tolerance:
    return DEFAULTS.get(family, DEFAULTS["other"])
