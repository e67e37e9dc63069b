"""Parity tolerances by model family, set from measured differences (README, "Parity").

A row is out of tolerance when any value differs by more than atol + rtol * scale, where the
scale is the output's range (1 for probabilities; edgekit.export.parity.output_scale): a relative error
on a value near zero is never the verdict. Labels are judged by agreement.
Smooth models (linear, SVM, MLP, neural nets) agree with their ONNX form to float32 rounding:
measured worst cases are ~1e-6 absolute on probabilities and ~3e-6 relative on regression
values, so atol 1e-4 / rtol 1e-4 leaves a wide margin and still catches a real bug.
Neighbours compare float32 distances: a near-tie can swap a neighbour, so 1 % of rows may differ.
Trees and forests cast to float32 before their splits as scikit-learn does (the steps before
them run in float64 up to that cast: sklearn_exporter.cast_before_trees), so they agree to float32
summation (measured: 6e-5 on a 30-tree regressor over a range of 300). HistGradientBoosting bins
float64 inputs against float64 thresholds where ONNX uses float32 ones, so a row within float32
rounding of a split lands in another leaf (measured: 1 row in 300 on a pipeline): trees are
judged by label agreement, a looser value tolerance and the share of rows outside it (1 %),
not by the worst row.
Conv nets accumulate in a different order in onnxruntime than in torch: rtol 1e-3.
Labels of smooth models may flip only for a row sitting on the decision boundary (0.1 %).
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
    "linear": Tolerance(atol=1e-4, rtol=1e-4, min_label_agreement=0.999),
    "svm": Tolerance(atol=1e-4, rtol=1e-4, min_label_agreement=0.999),
    "neighbors": Tolerance(atol=1e-4, rtol=1e-4, max_mismatch_rate=0.01, min_label_agreement=0.99),
    "mlp": Tolerance(atol=1e-4, rtol=1e-4, min_label_agreement=0.999),
    "tree": Tolerance(atol=1e-3, rtol=1e-3, max_mismatch_rate=0.01, min_label_agreement=0.99),
    "torch": Tolerance(atol=1e-4, rtol=1e-3, min_label_agreement=0.999),
    "onnx": Tolerance(atol=1e-5, rtol=1e-4, min_label_agreement=0.999),
    "other": Tolerance(),
}


def for_family(family: str) -> Tolerance:
    return DEFAULTS.get(family, DEFAULTS["other"])
