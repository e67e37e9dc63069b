"""ZipMap outputs of an imported ONNX classifier, made plain tensors.

skl2onnx (and tools built on it) end a classifier with ZipMap by default: the probabilities come
out as a sequence of maps {class: probability}, one per row. That is not a tensor, so neither
the KServe v2 protocol, the quantizer nor the monitor can carry it; the probabilities are the
ZipMap's input, a float tensor [N, classes]. This removes the node, gives its input the output's
name (clients keep the name) and returns the class labels the ZipMap held, in column order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekit.export.onnx_edit import rename_tensor

ML_DOMAIN = "ai.onnx.ml"


@dataclass
class Unzipped:
    labels: list[Any] | None = None
    outputs: list[str] = field(default_factory=list)  # graph outputs that were ZipMaps

    @property
    def changed(self) -> bool:
        return bool(self.outputs)


def _labels(node: Any) -> list[Any] | None:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == "classlabels_int64s":
            return [int(v) for v in helper.get_attribute_value(attr)]
        if attr.name == "classlabels_strings":
            return [v.decode("utf-8") for v in helper.get_attribute_value(attr)]
    return None


def remove_zipmaps(model: Any) -> Unzipped:
    """In place: every ZipMap that produces a graph output is dropped and its input tensor
    renamed to that output; the output becomes float [N, classes]."""
    from onnx import TensorProto, helper

    graph = model.graph
    outputs = {o.name: i for i, o in enumerate(graph.output)}
    result = Unzipped()
    for node in list(graph.node):
        if node.op_type != "ZipMap" or node.domain != ML_DOMAIN or node.output[0] not in outputs:
            continue
        source, name = node.input[0], node.output[0]
        labels = _labels(node)
        graph.node.remove(node)
        rename_tensor(model, source, name)  # its producer now writes the output's name
        classes = len(labels) if labels else None
        graph.output[outputs[name]].CopyFrom(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, classes])
        )
        for info in list(graph.value_info):
            if info.name in (source, name):
                graph.value_info.remove(info)
        result.outputs.append(name)
        result.labels = result.labels or labels
    return result
