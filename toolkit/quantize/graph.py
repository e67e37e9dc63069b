"""What a model is made of, as far as quantization cares: operator counts, the kind of model
(convolutional, attention, recurrent, dense, tree ensemble) and tensors that would wreck
MinMax calibration.

Read from the ONNX graph only, so the same analysis serves `--method auto`, refusals and reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONV_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"})
DENSE_OPS = frozenset({"MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"})
ATTENTION_OPS = frozenset(
    {"Attention", "MultiHeadAttention", "GroupQueryAttention", "EmbedLayerNormalization"}
)
RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})
TREE_OPS = frozenset(
    {"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}  # ai.onnx.ml
)
# Float constants beyond this magnitude are masks (float min, -inf), not data: one such value
# stretches a MinMax range so far that every real value quantizes to the same step.
EXTREME_MAGNITUDE = 1e30


@dataclass
class GraphInfo:
    ops: Counter = field(default_factory=Counter)
    domains: set[str] = field(default_factory=set)
    # Ops with both inputs computed at run time: the attention products q·kᵀ and p·v.
    activation_matmuls: int = 0
    extreme_constants: list[str] = field(default_factory=list)  # consumer node names
    weight_params: int = 0
    opset: int | None = None

    def count(self, ops: frozenset[str]) -> int:
        return sum(self.ops[o] for o in ops)

    @property
    def compute_ops(self) -> int:
        """Operators whose weights or arithmetic INT8 quantization can speed up or shrink."""
        return self.count(CONV_OPS | DENSE_OPS | ATTENTION_OPS | RECURRENT_OPS)

    @property
    def has_trees(self) -> bool:
        return self.count(TREE_OPS) > 0

    @property
    def kind(self) -> str:
        """recurrent | attention | convolutional | dense | tree | other, most specific first."""
        if self.count(RECURRENT_OPS):
            return "recurrent"
        if self.count(ATTENTION_OPS) or (self.activation_matmuls >= 2 and self.ops["Softmax"]):
            return "attention"
        if self.has_trees:
            return "tree"
        if self.count(CONV_OPS):
            return "convolutional"
        if self.count(DENSE_OPS):
            return "dense"
        return "other"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ops": dict(self.ops.most_common()),
            "domains": sorted(self.domains),
            "conv_ops": self.count(CONV_OPS),
            "dense_ops": self.count(DENSE_OPS),
            "activation_matmuls": self.activation_matmuls,
            "extreme_constants": self.extreme_constants[:20],
            "weight_params": self.weight_params,
            "opset": self.opset,
        }


def _constant_arrays(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    arrays[node.output[0]] = numpy_helper.to_array(attr.t)
                elif attr.name == "value_float":
                    arrays[node.output[0]] = np.asarray(attr.f, dtype=np.float32)
    return arrays


def analyse(model: Any) -> GraphInfo:
    """Analyse an onnx.ModelProto (or a path to one)."""
    import onnx

    if isinstance(model, str | Path):
        model = onnx.load(str(model))
    constants = _constant_arrays(model)
    info = GraphInfo()
    info.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    for node in model.graph.node:
        info.ops[node.op_type] += 1
        info.domains.add(node.domain or "ai.onnx")
        if node.op_type in ("MatMul", "Einsum") and all(i not in constants for i in node.input[:2]):
            info.activation_matmuls += 1
        for name in node.input:
            arr = constants.get(name)
            if (
                arr is not None
                and arr.dtype.kind == "f"
                and arr.size
                and node.op_type != "Constant"
                and np.max(np.abs(arr.astype(np.float64))) >= EXTREME_MAGNITUDE
            ):
                info.extreme_constants.append(node.name or node.op_type)
                break
    info.weight_params = int(
        sum(int(np.prod(i.dims)) for i in model.graph.initializer if len(i.dims) >= 2)
    )
    return info
