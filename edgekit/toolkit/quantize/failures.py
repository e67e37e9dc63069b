"""A quantizer crash turned into an error that names the node and what to try instead.

Kept apart from the pipeline so the methods (static retries around failing nodes) can use it
without importing the pipeline that imports them.
"""

from __future__ import annotations

from typing import Any

from edge_agent.errors import BadInputError


def failing_node(exc: BaseException) -> Any:
    """The ONNX node the quantizer was working on when it failed (its innermost frame that
    holds a `node`), to name in the error."""
    import traceback

    found = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        node = frame.f_locals.get("node")
        if hasattr(node, "op_type") and hasattr(node, "name"):
            found = node
    return found


def calibrated_tensor(exc: BaseException) -> str | None:
    """The tensor a histogram calibrator was collecting when it failed (its `tensor` local)."""
    import traceback

    found = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        tensor = frame.f_locals.get("tensor")
        if isinstance(tensor, str) and "calibrat" in frame.f_code.co_filename:
            found = tensor
    return found


def quantizer_failure(method: str, config: Any, exc: BaseException) -> BadInputError:
    """An onnxruntime.quantization crash as a message that says where and what to try."""
    tensor = calibrated_tensor(exc)
    if tensor is not None and "not finite" in str(exc):
        # percentile/entropy histogram a tensor holding ±inf: an attention mask filled with -inf
        return BadInputError(
            f"the {method} quantizer cannot calibrate tensor {tensor!r}: it holds infinite "
            f"values (an attention mask filled with -inf?), which the "
            f"{getattr(config, 'calibrate', 'histogram')} calibrator cannot histogram",
            hint="use `calibrate` minmax (and let `edgekit evaluate` judge it), or "
            "`method` dynamic, which auto picks for attention models",
        )
    node = failing_node(exc)
    where = f" at node {node.name!r} ({node.op_type})" if node is not None else ""
    tries = []
    if node is not None and node.name:
        tries.append(f"`exclude_nodes` {node.name}")
    if node is not None:
        tries.append(f"`exclude_op_types` {node.op_type}")
    if getattr(config, "format", None) == "qoperator":
        tries.insert(0, "the QDQ format (drop `format` qoperator), which handles more graphs")
    hint = (
        "try " + ", or ".join(tries)
        if tries
        else ("exclude the failing nodes (`exclude_nodes`) or op types (`exclude_op_types`)")
    )
    return BadInputError(
        f"the {method} quantizer cannot handle this model{where}: "
        f"{type(exc).__name__}: {str(exc)[:600]}",
        hint=hint,
    )
