"""Parity: the native model and onnxruntime on the same rows, compared per output.

Unlike Optimum, a difference beyond tolerance is a failure, not a warning: the caller
turns a failed report into exit code 1 and writes no bundle.

Each output is judged by its kind: labels by agreement; probabilities and values by an
absolute difference, allowed atol + rtol·scale, where the scale is the output's range
(1 for probabilities), never the value itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.export.tolerances import Tolerance


def output_scale(ref: np.ndarray, role: str | None) -> float:
    """The size of an output that its tolerance scales with: 1 for probabilities (they live in
    [0, 1]), else the range of the native values (their largest magnitude when constant, 1
    when all zero). Never a value's own magnitude: a relative error on a value near zero says
    nothing about the model, and it used to fail forests on probabilities of 1e-12."""
    if role == "probabilities":
        return 1.0
    finite = ref[np.isfinite(ref)]
    if finite.size == 0:
        return 1.0
    spread = float(finite.max() - finite.min())
    return spread or float(np.abs(finite).max()) or 1.0


def _compare_numeric(
    ref: np.ndarray, got: np.ndarray, tol: Tolerance, role: str | None = None
) -> dict[str, Any]:
    """Rows out of |diff| ≤ atol + rtol·scale (scale: output_scale) and the share allowed."""
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    got = np.asarray(got, dtype=np.float64).reshape(len(got), -1)
    if ref.shape != got.shape:
        return {
            "kind": "numeric",
            "passed": False,
            "error": f"shape {got.shape} != native {ref.shape}",
        }
    finite = np.isfinite(ref) & np.isfinite(got)
    # NaN or inf must be the same on both sides; only finite pairs have a difference
    with np.errstate(invalid="ignore"):
        special_ok = (ref == got) | (np.isnan(ref) & np.isnan(got))
    special_rows = np.any(~finite & ~special_ok, axis=1)
    diff = np.abs(np.where(finite, ref, 0.0) - np.where(finite, got, 0.0))
    scale = output_scale(ref, role)
    bound = tol.atol + tol.rtol * scale
    bad_rows = np.any(diff > bound, axis=1) | special_rows
    mismatch = float(bad_rows.mean()) if len(bad_rows) else 0.0
    worst = float(diff.max()) if diff.size else 0.0
    return {
        "kind": "probabilities" if role == "probabilities" else "numeric",
        "max_abs_diff": worst,
        "scale": scale,
        "max_diff_of_scale": worst / scale,
        "bound": bound,
        "mismatch_rate": mismatch,
        "nonfinite_mismatch_rows": int(special_rows.sum()),
        "atol": tol.atol,
        "rtol": tol.rtol,
        "max_mismatch_rate": tol.max_mismatch_rate,
        "passed": mismatch <= tol.max_mismatch_rate,
    }


def same_labels(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per row, whether two label arrays agree: numerically when both are numbers or bools
    (skl2onnx emits float and bool classes as int64), as text otherwise."""
    if ref.dtype.kind in "biuf" and got.dtype.kind in "biuf":
        same: np.ndarray = ref.astype(np.float64) == got.astype(np.float64)
        return same
    text: np.ndarray = ref.astype(str) == got.astype(str)
    return text


def _compare_labels(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> dict[str, Any]:
    ref = np.asarray(ref).reshape(-1)
    got = np.asarray(got).reshape(-1)
    if ref.shape != got.shape:
        return {
            "kind": "label",
            "passed": False,
            "error": f"shape {got.shape} != native {ref.shape}",
        }
    agreement = float(np.mean(same_labels(ref, got))) if ref.size else 1.0
    return {
        "kind": "label",
        "label_agreement": agreement,
        "min_label_agreement": tol.min_label_agreement,
        "passed": agreement >= tol.min_label_agreement,
    }


def compare(
    outputs: list[dict[str, Any]],
    native: dict[str, np.ndarray],
    onnx: dict[str, np.ndarray],
    tol: Tolerance,
) -> dict[str, Any]:
    """Compare every output the native model also produced; the report says what was compared."""
    per_output = {}
    for spec in outputs:
        name = spec["name"]
        if name not in native:
            continue
        if name not in onnx:
            per_output[name] = {"passed": False, "error": "missing from the ONNX outputs"}
            continue
        if spec.get("role") == "label" or spec.get("dtype") == "string":
            per_output[name] = _compare_labels(native[name], onnx[name], tol)
        else:
            per_output[name] = _compare_numeric(native[name], onnx[name], tol, spec.get("role"))
    rows = len(next(iter(native.values()))) if native else 0
    return {
        "rows": int(rows),
        "tolerance": tol.as_dict(),
        "outputs": per_output,
        "passed": bool(per_output) and all(o["passed"] for o in per_output.values()),
    }


def failure_summary(report: dict[str, Any]) -> str:
    bad = []
    for name, r in report["outputs"].items():
        if r["passed"]:
            continue
        if "error" in r:
            bad.append(f"{name}: {r['error']}")
        elif r["kind"] == "label":
            bad.append(
                f"{name}: label agreement {r['label_agreement']:.4f} < {r['min_label_agreement']}"
            )
        else:
            bad.append(
                f"{name}: max abs diff {r['max_abs_diff']:.3g} ({r['max_diff_of_scale']:.2%} of "
                f"its {'[0, 1] range' if r['kind'] == 'probabilities' else 'range'}; allowed "
                f"{r['bound']:.3g} = atol {r['atol']:g} + rtol {r['rtol']:g}·{r['scale']:.3g}), "
                f"{r['mismatch_rate']:.2%} rows out of tolerance (allowed {r['max_mismatch_rate']:.2%})"
            )
    return "; ".join(bad) or "no output was compared"
