"""A new variant is checked like an export: it must load and run in onnxruntime, and its
outputs are compared with the FP32 variant's on the stored sample rows.

Quantized outputs are not expected to match FP32 to float rounding, so the comparison is
recorded (differences, cosine, label agreement) and judged later by the accuracy gate
(`edgekit evaluate`); only a variant that cannot run, changes output shapes or produces
non-finite values where FP32 does not fails here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LABEL_ROLES = ("label",)
SCORE_ROLES = ("probabilities", "logits")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_output(spec: dict[str, Any], ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    if ref.shape != got.shape:
        return {"kind": "shape", "passed": False, "error": f"shape {got.shape} != fp32 {ref.shape}"}
    role = spec.get("role")
    if role in LABEL_ROLES or ref.dtype.kind in "OUSb" or ref.dtype.kind in "iu":
        agree = float(np.mean(ref.reshape(len(ref), -1) == got.reshape(len(got), -1)))
        return {"kind": "label", "label_agreement": agree, "passed": True}
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    bad = ~np.isfinite(g) & np.isfinite(r)
    diff = np.abs(r - g)
    diff[~np.isfinite(diff)] = np.inf
    out: dict[str, Any] = {
        "kind": "numeric",
        "max_abs_diff": float(np.max(diff)) if diff.size else 0.0,
        "mean_abs_diff": float(np.mean(diff)) if diff.size else 0.0,
        "cosine": cosine(np.nan_to_num(r), np.nan_to_num(g)),
        "non_finite": int(bad.sum()),
        "passed": not bad.any(),
    }
    if not out["passed"]:
        out["error"] = f"{int(bad.sum())} non-finite values where FP32 is finite"
    if role in SCORE_ROLES and r.ndim == 2 and r.shape[1] > 1:
        out["argmax_agreement"] = float(np.mean(r.argmax(1) == g.argmax(1)))
    return out


def compare(
    signature: dict[str, Any],
    reference: dict[str, np.ndarray],
    variant: dict[str, np.ndarray],
    *,
    rows: int,
) -> dict[str, Any]:
    outputs: dict[str, dict[str, Any]] = {}
    for spec in signature["outputs"]:
        name = spec["name"]
        if name not in variant:
            outputs[name] = {"passed": False, "error": "missing from the variant's outputs"}
        else:
            outputs[name] = compare_output(spec, reference[name], variant[name])
    agreement = [
        o.get("label_agreement", o.get("argmax_agreement"))
        for o in outputs.values()
        if o.get("label_agreement", o.get("argmax_agreement")) is not None
    ]
    numeric = [o for o in outputs.values() if o.get("kind") == "numeric"]
    return {
        "reference": "fp32",
        "rows": rows,
        "outputs": outputs,
        "label_agreement": agreement[0] if agreement else None,
        "min_cosine": min((o["cosine"] for o in numeric), default=None),
        "max_abs_diff": max((o["max_abs_diff"] for o in numeric), default=None),
        "passed": all(o["passed"] for o in outputs.values()),
    }


def failure_summary(report: dict[str, Any]) -> str:
    return "; ".join(
        f"{name}: {o.get('error', 'failed')}"
        for name, o in report["outputs"].items()
        if not o["passed"]
    )
