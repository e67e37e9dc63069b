"""Dynamic INT8: weights quantized ahead of time, activations at run time (no calibration).

onnxruntime's advice for transformers, recurrent nets and dense (MatMul) models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekit.toolkit.quantize import gemm
from edgekit.toolkit.quantize.registry import (
    QUANT_TYPES,
    Method,
    MethodContext,
    check_choice,
    op_types_to_quantize,
    quant_type,
    register,
)


@dataclass
class DynamicConfig:
    per_channel: bool = False
    reduce_range: bool = False
    weight_type: str = "int8"
    nodes_to_exclude: list[str] = field(default_factory=list)
    op_types_to_exclude: list[str] = field(default_factory=list)
    # MatMuls kept out of per-tensor dynamic int8 and given 8-bit weights in blocks instead
    # (MatMulNBits, accuracy level 4: int8 arithmetic with activations quantized per block),
    # for the layers whose activation range per-tensor quantization serves badly
    blockwise_nodes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choice(self.weight_type, QUANT_TYPES, "`weight_type`")


def run(config: DynamicConfig, ctx: MethodContext) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    model = onnx.load(str(ctx.source))
    kept = set(config.nodes_to_exclude) | set(config.blockwise_nodes)
    rewritten = gemm.gemm_to_matmul(model, skip_nodes=kept)
    present = {n.op_type for n in model.graph.node}
    op_types = op_types_to_quantize(set(IntegerOpsRegistry), present, config.op_types_to_exclude)
    quantize_dynamic(
        model,
        str(ctx.output),
        op_types_to_quantize=op_types,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=quant_type(config.weight_type),
        nodes_to_exclude=sorted(kept) or None,
        # ai.onnx.ml operators (scikit-learn pipelines) leave tensors without an inferred type.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    record: dict[str, Any] = {
        "tool": "onnxruntime.quantization.quantize_dynamic",
        "activation_type": "uint8 (computed at run time by DynamicQuantizeLinear)",
        "op_types_to_quantize": op_types or "onnxruntime default",
    }
    if config.blockwise_nodes:
        record["blockwise"] = blockwise(ctx.output, config.blockwise_nodes)
    if rewritten:
        record["gemm_rewritten"] = {
            "count": rewritten,
            "why": "onnxruntime's dynamic quantizer has no Gemm kernel; Gemm with a constant "
            "weight became MatMul + Add so it can be quantized",
        }
    return record


BLOCK_SIZE = 128


def blockwise(path: Any, nodes: list[str]) -> dict[str, Any]:
    """Give `nodes` (float MatMuls in the file at `path`) 8-bit block-quantized weights."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = onnx.load(str(path))
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=4, bits=8
    )
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=8,
        block_size=BLOCK_SIZE,
        is_symmetric=True,
        accuracy_level=4,
        nodes_to_include=list(nodes),
        algo_config=config,
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(path), False)
    done = sum(1 for n in onnx.load(str(path)).graph.node if n.op_type == "MatMulNBits")
    return {
        "tool": "onnxruntime.quantization.matmul_nbits_quantizer (bits 8, accuracy level 4)",
        "block_size": BLOCK_SIZE,
        "nodes": len(nodes),
        "converted": done,
    }


register(
    Method(
        name="dynamic",
        config_type=DynamicConfig,
        run=run,
        precision=lambda c: "int8" if c.weight_type == "int8" else "uint8",
        default_name=lambda c: "int8-dynamic",
        integer=True,
        needs_calibration=False,
        needs_preprocess=True,
        description="INT8 weights, activations quantized at run time",
    )
)
