"""Gemm -> MatMul + Add, so onnxruntime's dynamic quantizer (which has MatMulInteger but no
Gemm kernel) can quantize torch Linear layers, which the exporter writes as Gemm.

A graph rewrite with identical float results, not a quantizer: the quantizing is left to
onnxruntime.quantization.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def gemm_to_matmul(model: Any, skip_nodes: set[str] | None = None) -> int:
    """Rewrite, in place, every Gemm whose B (and C) are constants; returns how many."""
    from onnx import helper, numpy_helper

    skip_nodes = skip_nodes or set()
    inits = {i.name: i for i in model.graph.initializer}
    new_nodes = []
    replaced: set[str] = set()
    count = 0
    for node in model.graph.node:
        attrs = _attrs(node) if node.op_type == "Gemm" else {}
        b = node.input[1] if node.op_type == "Gemm" else None
        c = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
        if (
            node.op_type != "Gemm"
            or node.name in skip_nodes
            or attrs.get("transA", 0)
            or b not in inits
            or (c and c not in inits)
        ):
            new_nodes.append(node)
            continue
        replaced.update(n for n in (b, c) if n)
        weight = numpy_helper.to_array(inits[b])
        if attrs.get("transB", 0):
            weight = weight.T
        weight = np.ascontiguousarray(weight * np.asarray(attrs.get("alpha", 1.0), weight.dtype))
        base = node.name or f"gemm{count}"
        w_name = f"{b}__matmul_{count}"
        model.graph.initializer.append(numpy_helper.from_array(weight, w_name))
        if c:
            bias = numpy_helper.to_array(inits[c]) * np.asarray(
                attrs.get("beta", 1.0), dtype=np.float32
            )
            c_name = f"{c}__bias_{count}"
            model.graph.initializer.append(
                numpy_helper.from_array(bias.astype(numpy_helper.to_array(inits[c]).dtype), c_name)
            )
            mm_out = f"{node.output[0]}__matmul"
            new_nodes.append(
                helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=base)
            )
            new_nodes.append(
                helper.make_node("Add", [mm_out, c_name], [node.output[0]], name=f"{base}_bias")
            )
        else:
            new_nodes.append(
                helper.make_node("MatMul", [node.input[0], w_name], [node.output[0]], name=base)
            )
        count += 1
    if count:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        used = {i for n in model.graph.node for i in n.input}
        used |= {o.name for o in model.graph.output}
        keep = [i for i in model.graph.initializer if i.name in used or i.name not in replaced]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return count
