"""Where a static INT8 (QDQ) variant loses accuracy, with onnxruntime.quantization.qdq_loss_debug:
weight error (create_weight_matching) and activation error before/after each QDQ pair and against
the float model (create_activation_matching, compute_activation_error), as SQNR in dB (lower is
worse). The nodes touching the worst tensors are what `--auto-exclude K` leaves in float.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.contracts.bundle import FP32, Bundle
from edgekit.toolkit.quantize import preprocess
from edgekit.toolkit.quantize.calibration import reader_for
from edgekit.toolkit.quantize.feeds import take
from edgekit.toolkit.quantize.graph import EXTREME_MAGNITUDE
from edgekit.toolkit.quantize.logs import kept_root_logs

DEBUG_ROWS = 32


def debuggable(entry: dict[str, Any]) -> str | None:
    """None if qdq_loss_debug applies to this variant, else why not."""
    q = entry.get("quantization") or {}
    if q.get("method") != "static":
        return "not a static INT8 variant"
    if (q.get("config") or {}).get("format", "qdq") != "qdq":
        return "qdq_loss_debug needs the QDQ format (this variant is QOperator)"
    return None


def sqnr(x: Any, y: Any) -> float:
    """qdq_loss_debug's SQNR (dB), over the values that are finite in both tensors: missing
    values (NaN) in the data are not quantization error. A value finite in one and not the
    other is the worst error there is."""
    a = np.concatenate([np.asarray(t, dtype=np.float64).ravel() for t in _as_list(x)])
    b = np.concatenate([np.asarray(t, dtype=np.float64).ravel() for t in _as_list(y)])
    fa, fb = np.isfinite(a), np.isfinite(b)
    if np.any(fa != fb):
        return -math.inf
    # Mask sentinels (float min) would dominate the norm and hide that every real value was
    # crushed to one quantization step; like NaN they are not signal.
    keep = fa & (np.abs(np.where(fa, a, 0.0)) < EXTREME_MAGNITUDE)
    a, b = a[keep], b[keep]
    eps = np.finfo(np.float64).eps
    signal = max(float(np.linalg.norm(a)), eps)
    noise = max(float(np.linalg.norm(a - b)), eps)
    return 20 * math.log10(signal / noise)


def _as_list(x: Any) -> list[Any]:
    if isinstance(x, np.ndarray | np.generic | float | int):  # a scalar weight dequantizes to one
        return [np.asarray(x)]
    return list(x)


def _finite(x: float) -> float | None:
    return round(float(x), 3) if x is not None and math.isfinite(x) else None


def report(
    bundle: Bundle, variant: str, feeds: dict[str, np.ndarray], top: int = 10
) -> dict[str, Any]:

    # The debug tools log every unmatched weight at ERROR on the root logger.
    with kept_root_logs(limit=5, width=200) as messages:
        result = _report(bundle, variant, feeds, top)
    if messages:
        result["tool_messages"] = messages
    return result


def _report(bundle: Bundle, variant: str, feeds: dict[str, np.ndarray], top: int) -> dict[str, Any]:
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        compute_weight_error,
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    entry = bundle.variant(variant)
    rows = min(DEBUG_ROWS, len(next(iter(feeds.values()))))
    feeds = take(feeds, 0, rows)
    with tempfile.TemporaryDirectory(prefix="edgekit-qdq-debug-") as tmp:
        work = Path(tmp)
        float_path = preprocess.replay(
            bundle.verify_variant(FP32), work, (entry.get("quantization") or {}).get("preprocess")
        )
        qdq_path = bundle.verify_variant(variant)
        weights = compute_weight_error(
            create_weight_matching(str(float_path), str(qdq_path)), err_func=sqnr
        )

        aug_float, aug_qdq = work / "float-aug.onnx", work / "qdq-aug.onnx"
        modify_model_output_intermediate_tensors(str(float_path), str(aug_float))
        modify_model_output_intermediate_tensors(str(qdq_path), str(aug_qdq))
        float_acts = collect_activations(str(aug_float), reader_for(bundle.signature, feeds))
        qdq_acts = collect_activations(str(aug_qdq), reader_for(bundle.signature, feeds))
        matching = create_activation_matching(qdq_acts, float_acts)
        for match in matching.values():
            # a tensor the float model does not expose (one an ai.onnx.ml operator made,
            # typed only for quantization): compared before/after QDQ, not across models
            match.setdefault("float", None)
        errors = compute_activation_error(matching, err_func=sqnr)
        import onnx

        model = onnx.load(str(float_path), load_external_data=False)

    tensors = []
    for name, err in errors.items():
        tensors.append(
            {
                "tensor": name,
                "kind": "activation",
                "qdq_sqnr_db": _finite(err.get("qdq_err")),
                "vs_float_sqnr_db": _finite(err.get("xmodel_err")),
            }
        )
    for name, value in weights.items():
        tensors.append(
            {
                "tensor": name,
                "kind": "weight",
                "qdq_sqnr_db": _finite(value),
                "vs_float_sqnr_db": None,
            }
        )

    def key(t: dict[str, Any]) -> float:
        v = t["qdq_sqnr_db"]
        return -math.inf if v is None else v  # a non-finite error is the worst there is

    tensors.sort(key=key)
    nodes = _rank_nodes(model, tensors)
    return {
        "tool": "onnxruntime.quantization.qdq_loss_debug",
        "rows": rows,
        "measure": "SQNR in dB, lower = larger quantization error; null = values that were "
        "finite in float became non-finite (the worst)",
        "worst_tensors": tensors[:top],
        "worst_nodes": nodes[:top],
    }


def _rank_nodes(model: Any, tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node's worst (lowest) activation SQNR over the tensors it reads or writes, worst
    first. Weights are reported but do not rank nodes: a near-zero bias has a poor SQNR and
    no effect on the output."""
    score: dict[str, float] = {
        t["tensor"]: (-math.inf if t["qdq_sqnr_db"] is None else t["qdq_sqnr_db"])
        for t in tensors
        if t["kind"] == "activation"
    }
    ranked = []
    for node in model.graph.node:
        touched = [(score[n], n) for n in (*node.input, *node.output) if n in score]
        if not node.name or not touched:
            continue
        worst, tensor = min(touched)
        ranked.append(
            {
                "node": node.name,
                "op_type": node.op_type,
                "tensor": tensor,
                "sqnr_db": None if math.isinf(worst) else round(worst, 3),
                "_key": worst,
            }
        )
    ranked.sort(key=lambda r: r["_key"])
    for r in ranked:
        del r["_key"]
    return ranked


def worst_nodes(debug: dict[str, Any], k: int) -> list[str]:
    return [n["node"] for n in debug["worst_nodes"][:k]]
