"""onnxruntime's quantization guidance as rules over a machine's ISA and providers.

The shipped profiles state their preferences by hand; `local` derives them with these rules
(and a test checks that the rules agree with every shipped profile's first choice).

The guidance (onnxruntime "Quantize ONNX models"): QDQ with signed activations and weights
(S8S8) is the default and first choice; on x86-64 with AVX2 or AVX-512 but no VNNI, use U8S8
with reduce_range (7-bit weights) to avoid saturating the 16-bit intermediate of pmaddubsw; with
VNNI reduce_range is not needed; on GPUs prefer FP16, and for TensorRT INT8 a QDQ model with
symmetric scales. FP16 on a CPU pays only where the CPU has FP16 arithmetic.
"""

from __future__ import annotations

from typing import Any

X86 = ("amd64", "x86")
ARM = ("aarch64", "arm")
VNNI = ("avx512_vnni", "avx_vnni", "amx")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider")


def _s8s8(why: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "int8-static",
        "format": "QDQ",
        "activation_type": "int8",
        "weight_type": "int8",
        "per_channel": True,
        "reduce_range": False,
        **extra,
        "why": why,
    }


def derive_quantization(
    architecture: str, features: set[str] | frozenset[str], providers: list[str]
) -> dict[str, Any]:
    """The `quantization` section of a profile for a machine with these facts."""
    prefer: list[dict[str, Any]] = []
    avoid: list[dict[str, str]] = []
    cpu_fp16 = "fp16" in features

    if "TensorrtExecutionProvider" in providers:
        prefer.append(
            _s8s8(
                "TensorRT runs INT8 from QDQ models with symmetric S8S8 scales",
                symmetric=True,
                providers=["TensorrtExecutionProvider"],
            )
        )
    gpu = [p for p in providers if p in GPU_PROVIDERS]
    if gpu:
        prefer.append(
            {"kind": "fp16", "providers": gpu, "why": "GPUs run FP16 natively; FP16 first on GPUs"}
        )
    if "OpenVINOExecutionProvider" in providers and not gpu:
        prefer.append(
            _s8s8(
                "OpenVINO turns QDQ S8S8 models into INT8 execution",
                providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"],
            )
        )

    if architecture in X86:
        if any(f in features for f in VNNI):
            prefer.append(_s8s8("this CPU has VNNI: QDQ S8S8 is fast and needs no reduce_range"))
            dyn: dict[str, Any] = {"kind": "int8-dynamic", "weight_type": "int8"}
        elif "avx2" in features or "avx512f" in features:
            prefer.append(
                {
                    **_s8s8("AVX2/AVX-512 without VNNI: U8S8 with reduce_range avoids saturation"),
                    "activation_type": "uint8",
                    "reduce_range": True,
                }
            )
            dyn = {
                "kind": "int8-dynamic",
                "activation_type": "uint8",
                "weight_type": "int8",
                "reduce_range": True,
            }
        else:
            dyn = {"kind": "int8-dynamic", "weight_type": "int8", "reduce_range": True}
        prefer.append({**dyn, "why": "INT8 weights without calibration data"})
    else:
        prefer.append(_s8s8("QDQ S8S8 is onnxruntime's first choice on ARM64"))
        prefer.append(
            {"kind": "int8-dynamic", "weight_type": "int8", "why": "INT8 weights, no calibration"}
        )

    if cpu_fp16 and not gpu:
        prefer.append({"kind": "fp16", "why": "this CPU has FP16 arithmetic"})
    elif not gpu:
        avoid.append(
            {"kind": "fp16", "reason": "no FP16 arithmetic on this CPU, so FP16 is not faster"}
        )
    prefer.append({"kind": "fp32", "why": "the reference"})
    return {"prefer": prefer, "avoid": avoid}
