"""`--method auto`: choose the method and its settings from the model's operators and a
hardware profile, following onnxruntime's quantization guidance, and say why.

- transformer (attention) and recurrent models -> dynamic: activation ranges vary per input,
  and additive attention masks (float min) would wreck a MinMax calibration;
- convolutional models -> static QDQ, per-channel weights;
- dense (MatMul/Gemm) models -> dynamic: no calibration needed, weights dominate;
- x86 without VNNI -> reduce_range (7-bit weights) with unsigned activations: the U8S8
  VPMADDUBSW path saturates 16-bit sums otherwise; with VNNI (and on ARM) signed S8S8 with QDQ.

The hardware argument is a profile dict shaped like edge_agent.hardware.probe(): the local
machine by default, a target's profile when tuning for a device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.quantize.graph import GraphInfo


class NothingToQuantize(BadInputError):
    """`auto` found nothing worth quantizing: an answer, not an error, for `quantize --method
    auto` (exit 0, no variant added); still a BadInputError for callers that need a variant."""


@dataclass
class AutoChoice:
    method: str
    options: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "options": self.options,
            "reasons": self.reasons,
            "hardware": self.hardware,
        }


def hardware_summary(hardware: dict[str, Any]) -> dict[str, Any]:
    platform = hardware.get("platform") or {}
    cpu = hardware.get("cpu") or {}
    features = cpu.get("features") or {}
    arch = platform.get("architecture") or "unknown"
    return {
        "architecture": arch,
        "cpu": cpu.get("model"),
        "x86": arch in ("amd64", "x86"),
        "vnni": bool(
            features.get("avx512_vnni") or features.get("avx_vnni") or features.get("amx")
        ),
        "avx512": bool(features.get("avx512f")),
        "arm_dotprod": bool(features.get("dotprod")),
    }


def choose(graph: GraphInfo, hardware: dict[str, Any]) -> AutoChoice:
    hw = hardware_summary(hardware)
    kind = graph.kind
    reasons = [f"model kind: {kind} ({_op_summary(graph)})"]
    options: dict[str, Any] = {}
    if kind == "tree":
        raise NothingToQuantize(
            "the model is a tree ensemble (ai.onnx.ml TreeEnsemble operators): "
            "onnxruntime.quantization has no integer kernels for it and nothing else in the "
            "graph is worth quantizing",
            hint="keep the FP32 variant; tree ensembles are already fast on CPU",
        )
    if kind == "other":
        raise NothingToQuantize(
            "the model has no operator that onnxruntime quantizes (MatMul, Gemm, Conv, Attention, "
            f"LSTM, ...); its operators are {', '.join(sorted(graph.ops))}",
            hint="keep the FP32 variant",
        )
    if kind in ("attention", "recurrent"):
        method = "dynamic"
        reasons.append(
            f"{kind} model -> dynamic: activation ranges differ from input to input, which "
            "onnxruntime recommends quantizing at run time"
        )
        if graph.extreme_constants:
            reasons.append(
                "static MinMax calibration avoided: float-min/inf constants (additive masks) feed "
                f"{', '.join(graph.extreme_constants[:3])}"
            )
    elif kind == "convolutional":
        if graph.extreme_constants:
            method = "dynamic"
            reasons.append(
                "convolutional, but float-min/inf constants (masks) feed "
                f"{', '.join(graph.extreme_constants[:3])}: a MinMax range would span them and "
                "crush every real value, so dynamic instead of static"
            )
        else:
            method = "static"
            options.update(format="qdq", calibrate="minmax", per_channel=True)
            reasons.append(
                "convolutional model -> static QDQ with per-channel weights (onnxruntime's advice "
                "for CNNs: fused QLinearConv kernels, per-channel keeps accuracy)"
            )
    else:  # dense
        method = "dynamic"
        reasons.append(
            "dense (MatMul/Gemm) model -> dynamic: weights dominate, no calibration data needed"
        )

    hw_options, hw_reason = hardware_options(method, hw)
    options.update(hw_options)
    reasons.append(hw_reason)
    reasons.append("speed is not assumed: `edgekit bench` measures each variant")
    return AutoChoice(method, options, reasons, hw)


def hardware_options(method: str, hw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The INT8 settings the hardware asks for (a hardware_summary), and why.

    Used by `auto` and as the defaults of an explicit `--method static|dynamic`, so a user who
    names the method on an x86 box without VNNI still gets onnxruntime's advice unless they
    set the options themselves."""
    if hw["x86"] and not hw["vnni"]:
        options: dict[str, Any] = {"reduce_range": True}
        if method == "static":
            options.update(activation_type="uint8", weight_type="int8")
        return options, (
            "x86 without VNNI: the U8S8 path (VPMADDUBSW) can saturate 16-bit sums, so "
            "reduce_range (7-bit weights)"
            + (" with uint8 activations" if method == "static" else "")
        )
    why = "VNNI" if hw["vnni"] else hw["architecture"]
    if method == "static":
        return (
            {"activation_type": "int8", "weight_type": "int8"},
            f"{why}: signed S8S8 with QDQ, onnxruntime's recommended default",
        )
    return {}, f"{why}: full-range int8 weights"


def _op_summary(graph: GraphInfo) -> str:
    top = ", ".join(f"{op}×{n}" for op, n in graph.ops.most_common(5))
    return top or "no operators"
