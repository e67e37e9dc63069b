"""Static INT8: weights and activations quantized ahead of time from calibration data.

QDQ format by default (QuantizeLinear/DequantizeLinear pairs that the runtime fuses),
QOperator (QLinearConv, QLinearMatMul, ...) by option. onnxruntime's advice for CNNs.

Nodes the static path cannot or need not quantize stay in float by themselves: the output
head (graph.output_head: a classifier's Softmax, ZipMap, Cast, tree ensembles) up front, and
a node the quantizer still crashes on is excluded and the run repeated (a few times at most).
Both are recorded in the variant's quantization details; the gate then judges the variant on
its metrics like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.toolkit.quantize.failures import failing_node
from edgekit.toolkit.quantize.graph import output_head
from edgekit.toolkit.quantize.registry import (
    QUANT_TYPES,
    Method,
    MethodContext,
    check_choice,
    op_types_to_quantize,
    quant_type,
    register,
)

FORMATS = ("qdq", "qoperator")
# Re-runs after excluding a node the quantizer crashed on (each one calibrates again).
MAX_RETRIES = 3
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
        check_choice(self.format, FORMATS, "`format`")
        check_choice(self.calibrate, CALIBRATIONS, "`calibrate`")
        check_choice(self.activation_type, QUANT_TYPES, "`activation_type`")
        check_choice(self.weight_type, QUANT_TYPES, "`weight_type`")


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
    model = onnx.load(str(ctx.source), load_external_data=False)
    present = {n.op_type for n in model.graph.node}
    source = _typed(model, ctx)
    op_types = op_types_to_quantize(
        set(QDQRegistry) | set(QLinearOpsRegistry), present, config.op_types_to_exclude
    )
    fmt = QuantFormat.QDQ if config.format == "qdq" else QuantFormat.QOperator
    kept = {n: why for n, why in output_head(model).items() if n not in config.nodes_to_exclude}
    for attempt in range(MAX_RETRIES + 1):
        try:
            quantize_static(
                str(source),
                str(ctx.output),
                ctx.calibration(),
                quant_format=fmt,
                op_types_to_quantize=op_types,
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                activation_type=quant_type(config.activation_type),
                weight_type=quant_type(config.weight_type),
                nodes_to_exclude=[*config.nodes_to_exclude, *kept] or None,
                calibrate_method=_calibration_method(config.calibrate),
                # ai.onnx.ml operators (scikit-learn pipelines) leave tensors untyped.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            break
        except Exception as exc:  # the quantizer raises many types on graphs it cannot handle
            node = failing_node(exc)
            name = getattr(node, "name", None)
            if attempt == MAX_RETRIES or not name or name in kept:
                raise
            kept[name] = f"{node.op_type}: the static quantizer failed on it ({str(exc)[:120]})"
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "op_types_to_quantize": op_types or "onnxruntime default",
        "kept_float": kept,
    }


def _typed(model: Any, ctx: MethodContext) -> Any:
    """The model to quantize, with a type on every intermediate tensor.

    ONNX shape inference gives no type to what ai.onnx.ml operators (a scikit-learn Scaler)
    produce, and quant_pre_process drops the Cast that used to type it: the quantizer then
    leaves the MatMul after it unquantized. One calibration batch through onnxruntime tells
    each tensor's element type and rank, written into a copy as value_info."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    graph = model.graph
    known = {v.name for v in [*graph.value_info, *graph.input, *graph.output]}
    known |= {i.name for i in graph.initializer}
    untyped = [o for n in graph.node for o in n.output if o and o not in known]
    if not untyped or model.ByteSize() > 1_500_000_000:
        return ctx.source
    assert ctx.calibration is not None  # static INT8 always calibrates (checked by its run)
    first = ctx.calibration().get_next()
    if first is None:
        return ctx.source
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.ValueInfoProto(name=n) for n in untyped)
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        arrays = session.run(untyped, first)
    except Exception:  # not every intermediate can be fetched; the quantizer then decides
        return ctx.source
    for name, arr in zip(untyped, arrays, strict=True):
        arr = np.asarray(arr)
        if arr.dtype.kind in "fiub":
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph.value_info.append(helper.make_tensor_value_info(name, elem, [None] * arr.ndim))
    typed = (ctx.workdir or ctx.output.parent) / "typed.onnx"
    onnx.save(model, str(typed))
    return typed


def _precision(c: StaticConfig) -> str:
    if c.activation_type == c.weight_type:
        return c.weight_type
    return "mixed"


def _prepare_calibration(config: StaticConfig, calib: Any) -> Any:
    """The percentile calibrator histograms every row: rows with missing values are dropped."""
    from edgekit.toolkit.quantize import calibration

    if config.calibrate != "percentile":
        return calib
    return calibration.complete_rows(
        calib, "onnxruntime's percentile calibrator cannot histogram them"
    )


register(
    Method(
        name="static",
        config_type=StaticConfig,
        run=run,
        precision=_precision,
        default_name=lambda c: "int8-static" if c.format == "qdq" else "int8-static-qop",
        integer=True,
        needs_calibration=True,
        needs_preprocess=True,
        prepare_calibration=_prepare_calibration,
        description="INT8 weights and activations from calibration (QDQ or QOperator)",
    )
)
