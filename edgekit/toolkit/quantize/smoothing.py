"""Activation smoothing before dynamic INT8 (the SmoothQuant idea, Xiao et al. 2022): a few
input features of a transformer's MatMuls (LayerNorm outliers, GELU tails) are far larger
than the rest, and dynamic quantization gives the whole activation ONE per-tensor uint8
range, so those few features crush the resolution of all others. Dividing feature j of the
activation by s_j and multiplying row j of the weight by s_j leaves x @ W unchanged in FP32,
while moving the outliers into the weights, which are quantized per channel.

s_j = max|x_j|^alpha / max|W_j|^(1 - alpha), measured on the bundle's samples (real tokens
only where the model has an attention mask); one Mul by 1/s is inserted per activation, shared
by the MatMuls that read it (Q, K and V read the same one). Which alpha is kept is decided by
the gate in `--method auto`'s search, not here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.toolkit.quantize import sensitivity

MIN_SCALE, MAX_SCALE = 1e-2, 1e2  # a feature that is all zeros must not blow up its row


def smooth(
    src: Path,
    dst: Path,
    feeds: dict[str, np.ndarray],
    alpha: float,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write the smoothed FP32 model to `dst` (same outputs as `src`); returns what was done."""
    import onnx
    from onnx import helper, numpy_helper

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    model, nodes, got = sensitivity.capture(src, feeds)
    inits = {i.name: i for i in model.graph.initializer}
    uses = Counter(i for n in model.graph.node for i in n.input)
    groups: dict[str, list[tuple[str, str]]] = {}
    for node, (act, weight) in nodes.items():
        groups.setdefault(act, []).append((node, weight))
    keep = None if mask is None else (np.asarray(mask[: sensitivity.MAX_ROWS]) != 0)
    position = {n.name: i for i, n in enumerate(model.graph.node)}
    by_name = {n.name: n for n in model.graph.node}
    inserts: list[tuple[int, Any]] = []
    done, skipped = 0, 0
    for act, users in sorted(groups.items()):
        weights = [w for _, w in users]
        # a weight read by anything else (tied embeddings, a second graph path) cannot change
        if any(uses[w] != weights.count(w) for w in weights):
            skipped += 1
            continue
        x = got[act]
        if keep is not None and x.ndim == 3 and x.shape[:2] == keep.shape:
            x = x[keep]
        amax = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0).astype(np.float64)
        arrays = {w: numpy_helper.to_array(inits[w]).astype(np.float64) for w in set(weights)}
        wmax = np.max([np.abs(a).max(axis=1) for a in arrays.values()], axis=0)
        scale = np.maximum(amax, 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1.0 - alpha)
        scale = np.clip(scale, MIN_SCALE, MAX_SCALE)
        for w, a in arrays.items():
            inits[w].CopyFrom(numpy_helper.from_array((a * scale[:, None]).astype(np.float32), w))
        inv = f"{act}_smooth_inv"
        model.graph.initializer.append(
            numpy_helper.from_array((1.0 / scale).astype(np.float32), inv)
        )
        out = f"{act}_smoothed"
        for node, _ in users:
            by_name[node].input[0] = out
        first = min(position[n] for n, _ in users)
        inserts.append((first, helper.make_node("Mul", [act, inv], [out], name=f"{act}_smooth")))
        done += 1
    for index, node in sorted(inserts, key=lambda p: -p[0]):  # back to front keeps indices
        model.graph.node.insert(index, node)
    onnx.save(model, str(dst))
    return {
        "technique": "activation smoothing (SmoothQuant): outlier features moved into the "
        "per-channel weights before dynamic int8",
        "alpha": alpha,
        "activations_smoothed": done,
        "skipped_shared_weights": skipped,
        "rows": int(min(sensitivity.MAX_ROWS, len(next(iter(feeds.values()))))),
    }
