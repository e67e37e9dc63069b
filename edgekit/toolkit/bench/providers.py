"""Execution providers: short names, discovery, and a one-line reason for each one skipped.

A provider the installed onnxruntime does not offer is skipped, not an error: a benchmark
matrix written for a GPU box still runs (on the rest) on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass

CPU = "CPUExecutionProvider"

# short name -> onnxruntime provider name
ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "cann": "CANNExecutionProvider",
    "vitisai": "VitisAIExecutionProvider",
    "rknpu": "RknpuExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
    "azure": "AzureExecutionProvider",
}

# Which onnxruntime package brings a provider, for the skip reason.
PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu (with TensorRT)",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "QNNExecutionProvider": "onnxruntime-qnn",
    "ROCMExecutionProvider": "onnxruntime-rocm",
    "MIGraphXExecutionProvider": "onnxruntime-migraphx",
}

# Providers that run nothing locally: benchmarking them would measure the CPU fallback.
NOT_LOCAL = {
    "AzureExecutionProvider": "it calls remote Azure endpoints and runs no local nodes "
    "(timing it would measure the CPU fallback)",
}

# Providers whose inputs and outputs live in device memory: timed with I/O binding.
DEVICE_MEMORY = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}


@dataclass(frozen=True)
class Skipped:
    what: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"what": self.what, "reason": self.reason}


def short_name(provider: str) -> str:
    for alias, full in ALIASES.items():
        if full == provider:
            return alias
    return provider.removesuffix("ExecutionProvider").lower()


def available() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _known() -> set[str]:
    import onnxruntime as ort

    return set(ort.get_all_providers()) | set(ALIASES.values())


def resolve(requested: list[str] | None) -> tuple[list[str], list[Skipped]]:
    """Requested names ('cpu', 'cuda', 'CUDAExecutionProvider' or 'all') -> (usable, skipped)."""
    offered = available()
    names = requested or ["cpu"]
    wanted: list[str] = []
    skipped: list[Skipped] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name.lower() == "all":
            for p in offered:
                if p in NOT_LOCAL:
                    skipped.append(Skipped(p, f"skipped: {NOT_LOCAL[p]}"))
                elif p not in wanted:
                    wanted.append(p)
            continue
        full = ALIASES.get(name.lower(), name)
        if full not in _known():
            skipped.append(
                Skipped(
                    name,
                    f"unknown execution provider {name!r}; known short names: "
                    + ", ".join(sorted(set(ALIASES))),
                )
            )
        elif full in NOT_LOCAL:
            skipped.append(Skipped(full, f"skipped: {NOT_LOCAL[full]}"))
        elif full not in offered:
            pkg = PACKAGES.get(full)
            hint = f"; install {pkg} to use it" if pkg else ""
            skipped.append(
                Skipped(
                    full,
                    f"not available in this onnxruntime build (it offers {', '.join(offered)}){hint}",
                )
            )
        elif full not in wanted:
            wanted.append(full)
    return wanted, skipped
