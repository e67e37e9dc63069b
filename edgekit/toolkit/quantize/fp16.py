"""FP16: weights and arithmetic in half precision with onnxconverter-common, inputs and outputs
kept float32 (keep_io_types) so callers feed the same arrays as to FP32.

ai.onnx.ml operators and others without FP16 kernels stay in float32 (the converter's block list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.toolkit.quantize.registry import Method, MethodContext, register


@dataclass
class FP16Config:
    keep_io_types: bool = True
    nodes_to_exclude: list[str] = field(default_factory=list)
    op_types_to_exclude: list[str] = field(default_factory=list)


# The converter can leave a node with float32 and float16 inputs where a blocked operator
# feeds it (a Concat after scikit-learn's Scaler); onnxruntime names the node when loading.
_TYPE_CONFLICT = re.compile(r"Type Error: .*?node \((?P<node>[^)]+)\)")
MAX_RETRIES = 10


def _load_error(path: Any) -> str | None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        return str(exc)
    return None


def run(config: FP16Config, ctx: MethodContext) -> dict[str, Any]:
    import onnx
    from onnxconverter_common import float16

    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(config.op_types_to_exclude))
    nodes = list(config.nodes_to_exclude)
    kept_for_types: list[str] = []
    for _ in range(MAX_RETRIES):
        model = onnx.load(str(ctx.source))
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=config.keep_io_types,
            op_block_list=block,
            node_block_list=nodes or None,
        )
        onnx.save(converted, str(ctx.output))
        error = _load_error(ctx.output)
        match = _TYPE_CONFLICT.search(error or "")
        if not match or match["node"] in nodes:
            break
        nodes.append(match["node"])
        kept_for_types.append(match["node"])
    kept = sorted({n.op_type for n in model.graph.node if n.op_type in block})
    record: dict[str, Any] = {
        "tool": "onnxconverter_common.float16.convert_float_to_float16",
        "kept_float32_op_types": kept,
    }
    if kept_for_types:
        record["kept_float32_nodes"] = {
            "nodes": kept_for_types,
            "why": "they mix float32 outputs of blocked operators with float16 tensors",
        }
    return record


def _unchanged(path: Path) -> str | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return None
    return "FP16 conversion changed nothing: every operator of this model stays float32"


register(
    Method(
        name="fp16",
        config_type=FP16Config,
        run=run,
        precision=lambda c: "fp16",
        default_name=lambda c: "fp16",
        integer=False,
        needs_calibration=False,
        description="half-precision weights and arithmetic, float32 inputs and outputs",
        trees="onnxconverter-common keeps ai.onnx.ml TreeEnsemble operators in float32, so FP16 "
        "would change nothing",
        unchanged=_unchanged,
    )
)
