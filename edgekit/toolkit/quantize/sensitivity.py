"""Which MatMuls lose most when quantized, measured on the sample rows.

One FP32 run captures every weight MatMul's input; each node's output is then recomputed in
numpy with int8 weights (per channel or per tensor, 7-bit with reduce_range) and uint8
activations quantized per tensor at run time, as onnxruntime's dynamic MatMulInteger does.
The relative error of that output (over real tokens only, when the model has an attention
mask) ranks the nodes; `--method auto` keeps the worst few in float when the whole model
does not pass the gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_ROWS = 16


def weight_matmuls(model: Any) -> dict[str, tuple[str, str]]:
    """node name -> (activation input, weight initializer) for MatMuls with a 2-D weight."""
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    return {
        n.name: (n.input[0], n.input[1])
        for n in model.graph.node
        if n.op_type == "MatMul" and n.name and len(dims.get(n.input[1], [])) == 2
    }


def _quant_weight(w: np.ndarray, per_channel: bool, reduce_range: bool) -> np.ndarray:
    top = 63.0 if reduce_range else 127.0
    scale = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max()
    scale = np.where(scale == 0, 1.0, scale / top)
    return np.clip(np.round(w / scale), -top, top) * scale


def _quant_activation(x: np.ndarray) -> np.ndarray:
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    zero = np.round(-lo / scale)
    return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale


def capture(path: Path, feeds: dict[str, np.ndarray]) -> tuple[Any, dict, dict[str, np.ndarray]]:
    """(model, weight MatMuls, their activation inputs from one FP32 run on MAX_ROWS rows)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    model = onnx.load(str(path))
    nodes = weight_matmuls(model)
    if not nodes:
        return model, nodes, {}
    probe = onnx.load(str(path))
    wanted = sorted({a for a, _ in nodes.values()})
    present = {o.name for o in probe.graph.output}
    for name in wanted:
        if name not in present:
            probe.graph.output.append(
                helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    rows = {k: v[:MAX_ROWS] for k, v in feeds.items()}
    return model, nodes, dict(zip(wanted, session.run(wanted, rows), strict=True))


def rank(
    path: Path,
    feeds: dict[str, np.ndarray],
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    mask: np.ndarray | None = None,
) -> list[tuple[str, float]]:
    """(node, relative output error), worst first."""
    from onnx import numpy_helper

    model, nodes, got = capture(path, feeds)
    if not nodes:
        return []
    weights = {i.name: i for i in model.graph.initializer}
    keep = None if mask is None else (np.asarray(mask[:MAX_ROWS]) != 0)
    errors = []
    for node, (act, weight) in nodes.items():
        x = got[act].astype(np.float64)
        w = numpy_helper.to_array(weights[weight]).astype(np.float64)
        y = x @ w
        yq = _quant_activation(x) @ _quant_weight(w, per_channel, reduce_range)
        diff, ref = y - yq, y
        if keep is not None and y.ndim == 3 and y.shape[:2] == keep.shape:
            diff, ref = diff[keep], ref[keep]
        norm = float(np.linalg.norm(ref))
        errors.append((node, float(np.linalg.norm(diff)) / norm if norm else 0.0))
    return sorted(errors, key=lambda e: -e[1])
