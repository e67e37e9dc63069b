"""Edits of an ONNX graph that more than one exporter makes."""

from __future__ import annotations

from typing import Any


def rename_tensor(model: Any, old: str, new: str) -> None:
    """Every use of tensor ``old`` (node inputs and outputs, graph outputs) becomes ``new``."""
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for out in model.graph.output:
        if out.name == old:
            out.name = new
