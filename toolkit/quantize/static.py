"""Static INT8: weights and activations quantized ahead of time from calibration data.

QDQ format by default (QuantizeLinear/DequantizeLinear pairs that the runtime fuses),
QOperator (QLinearConv, QLinearMatMul, ...) by option. onnxruntime's advice for CNNs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.quantize.registry import (
    QUANT_TYPES,
    Method,
    MethodContext,
    check_choice,
    op_types_to_quantize,
    quant_type,
    register,
)

FORMATS = ("qdq", "qoperator")
CALIBRATIONS = ("minmax", "entropy", "percentile")


@dataclass
class StaticConfig:
    format: str = "qdq"
    calibrate: str = "minmax"
    per_channel: bool = False
    reduce_range: bool = False
    activation_type: str = "int8"
    weight_type: str = "int8"
    nodes_to_exclude: list[str] = field(default_factory=list)
    op_types_to_exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choice(self.format, FORMATS, "--format")
        check_choice(self.calibrate, CALIBRATIONS, "--calibrate")
        check_choice(self.activation_type, QUANT_TYPES, "--activation-type")
        check_choice(self.weight_type, QUANT_TYPES, "--weight-type")


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def run(config: StaticConfig, ctx: MethodContext) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    if ctx.calibration is None:
        raise RuntimeError("static quantization was called without calibration data")
    present = {n.op_type for n in onnx.load(str(ctx.source), load_external_data=False).graph.node}
    op_types = op_types_to_quantize(
        set(QDQRegistry) | set(QLinearOpsRegistry), present, config.op_types_to_exclude
    )
    fmt = QuantFormat.QDQ if config.format == "qdq" else QuantFormat.QOperator
    quantize_static(
        str(ctx.source),
        str(ctx.output),
        ctx.calibration(),
        quant_format=fmt,
        op_types_to_quantize=op_types,
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        activation_type=quant_type(config.activation_type),
        weight_type=quant_type(config.weight_type),
        nodes_to_exclude=list(config.nodes_to_exclude) or None,
        calibrate_method=_calibration_method(config.calibrate),
        # ai.onnx.ml operators (scikit-learn pipelines) leave tensors without an inferred type.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "op_types_to_quantize": op_types or "onnxruntime default",
    }


def _precision(c: StaticConfig) -> str:
    if c.activation_type == c.weight_type:
        return c.weight_type
    return "mixed"


register(
    Method(
        name="static",
        config_type=StaticConfig,
        run=run,
        precision=_precision,
        default_name=lambda c: "int8-static" if c.format == "qdq" else "int8-static-qop",
        integer=True,
        needs_calibration=True,
        description="INT8 weights and activations from calibration (QDQ or QOperator)",
    )
)
