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


# The ops whose INT8 form is what static quantization is for.
COMPUTE_OPS = CONV_OPS | DENSE_OPS | ATTENTION_OPS | RECURRENT_OPS


def output_head(model: Any) -> dict[str, str]:
    """{node name: why} for the nodes static quantization keeps in float: the non-compute
    nodes after the last compute op (a classifier's Softmax, Add of the last bias, Cast,
    ArgMax, ...) and the ai.onnx.ml operators (ZipMap, TreeEnsemble, Scaler, ...).

    Quantizing the head saves no time (no MatMul/Conv is left to run in INT8) and costs
    output precision; and onnxruntime's QDQ quantizer crashes on a Softmax whose output
    feeds only ai.onnx.ml operators ("Only an existing tensor can be modified").
    """
    nodes = list(model.graph.node)
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    feeds_compute: dict[int, bool] = {}

    def reaches_compute(i: int) -> bool:
        # iterative depth-first search, memoised: graphs have thousands of nodes
        stack = [(i, False)]
        while stack:
            j, expanded = stack.pop()
            if j in feeds_compute:
                continue
            after = [k for out in nodes[j].output for k in consumers.get(out, [])]
            if not expanded:
                stack.append((j, True))
                stack.extend((k, False) for k in after if k not in feeds_compute)
                continue
            feeds_compute[j] = any(
                nodes[k].op_type in COMPUTE_OPS or feeds_compute.get(k, False) for k in after
            )
        return feeds_compute[i]

    head: dict[str, str] = {}
    for i, node in enumerate(nodes):
        if not node.name:
            continue
        if node.domain == "ai.onnx.ml":
            head[node.name] = f"{node.op_type}: an ai.onnx.ml operator, no INT8 kernel"
        elif node.op_type not in COMPUTE_OPS and not reaches_compute(i):
            head[node.name] = f"{node.op_type}: after the last MatMul/Gemm/Conv, nothing to gain"
    return head
