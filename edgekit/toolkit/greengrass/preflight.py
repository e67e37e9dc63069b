"""Compatibility preflight: will this variant run, and run well, on this platform's target with
the onnxruntime the component pins? Run before package and before deploy.

Each check is a function registered in CHECKS; it returns findings (error or warning, with the
reason). Errors stop packaging unless --ignore-preflight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.greengrass.targets import TargetFacts

MIB = 1024**2
RUNTIME_OVERHEAD = 64 * MIB  # python + numpy + onnxruntime shared objects, measured order
CPU = "CPUExecutionProvider"
# Providers the PyPI `onnxruntime` wheel (the one the component pins) ships on Linux.
PYPI_ONNXRUNTIME_PROVIDERS = (CPU, "AzureExecutionProvider")
PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu (or NVIDIA's JetPack wheel on Jetson)",
    "TensorrtExecutionProvider": "onnxruntime-gpu with TensorRT (or NVIDIA's JetPack wheel)",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
}
# Highest ai.onnx opset each onnxruntime release runs (onnxruntime's compatibility table).
ORT_MAX_OPSET = {
    (1, 14): 18,
    (1, 15): 19,
    (1, 16): 19,
    (1, 17): 20,
    (1, 18): 21,
    (1, 19): 21,
    (1, 20): 21,
    (1, 21): 22,
    (1, 22): 22,
    (1, 23): 23,
}
QOPERATOR_OPS = {
    "QLinearConv",
    "QLinearMatMul",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    "QLinearConcat",
    "QLinearLeakyRelu",
    "QLinearSigmoid",
    "QGemm",
}
DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"}


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    check: str
    platform: str
    target: str
    message: str
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreflightInput:
    bundle: Bundle
    variant: str
    platform: str  # "linux/aarch64"
    target: str
    facts: TargetFacts | None
    provider: str
    session_options: dict[str, Any]
    ort_version: str  # the version the component pins


Check = Callable[[PreflightInput], list[Finding]]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def _finding(inp: PreflightInput, severity: str, name: str, message: str, hint: str | None = None):
    return Finding(severity, name, inp.platform, inp.target, message, hint)


@cache
def _graph_facts(path: str, sha: str) -> dict[str, Any]:
    """Opsets, operators, float16 use and quantization layout of one ONNX file (cached by digest)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(path, load_external_data=False)
    g = model.graph
    ops = {(n.domain or "ai.onnx", n.op_type) for n in g.node}
    inits = {i.name: i for i in g.initializer}
    signed_act = None
    for n in g.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits:
            signed_act = inits[n.input[2]].data_type == TensorProto.INT8
            break
        if n.op_type in QOPERATOR_OPS and len(n.input) > 2 and n.input[2] in inits:
            signed_act = inits[n.input[2]].data_type == TensorProto.INT8
            break
    op_types = {op for _, op in ops}
    if op_types & DYNAMIC_OPS:
        layout, signed_act = "dynamic", False  # DynamicQuantizeLinear makes uint8
    elif op_types & QOPERATOR_OPS:
        layout = "QOperator"
    elif "QuantizeLinear" in op_types and "DequantizeLinear" in op_types:
        layout = "QDQ"
    else:
        layout = None
    fp16 = any(i.data_type == TensorProto.FLOAT16 for i in g.initializer) or any(
        v.type.tensor_type.elem_type == TensorProto.FLOAT16 for v in g.input
    )
    activation_bytes = 0
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for v in inferred.graph.value_info:
            dims = v.type.tensor_type.shape.dim
            n = 1
            for d in dims:
                n *= d.dim_value if d.dim_value > 0 else 1
            activation_bytes += n * 4
    except Exception:  # shape inference is a best effort for the arena estimate
        pass
    return {
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "ops": sorted(ops),
        "layout": layout,
        "signed_activations": signed_act,
        "fp16": fp16,
        "activation_bytes": activation_bytes,
        "initializer_bytes": sum(len(i.raw_data) for i in g.initializer),
    }


def graph_facts(bundle: Bundle, variant: str) -> dict[str, Any]:
    path = bundle.verify_variant(variant)
    return _graph_facts(str(path), bundle.variant(variant)["sha256"])


def _version_tuple(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def installed_ort_version() -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return ort.__version__


@check("opset")
def opset_and_operators(inp: PreflightInput) -> list[Finding]:
    facts = graph_facts(inp.bundle, inp.variant)
    out: list[Finding] = []
    opset = facts["opsets"].get("ai.onnx")
    if inp.ort_version == installed_ort_version():
        # The pinned runtime is the one installed here: load the model for real.
        import onnxruntime as ort

        try:
            ort.InferenceSession(str(inp.bundle.verify_variant(inp.variant)), providers=[CPU])
        except Exception as exc:  # onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0][:300]
            out.append(
                _finding(
                    inp,
                    "error",
                    "opset",
                    f"onnxruntime {inp.ort_version} (pinned) cannot load variant "
                    f"{inp.variant!r}: {first}",
                    "re-export with a lower --opset or replace the unsupported operator",
                )
            )
        return out
    known = ORT_MAX_OPSET.get(_version_tuple(inp.ort_version))
    if opset is not None and known is not None and opset > known:
        out.append(
            _finding(
                inp,
                "error",
                "opset",
                f"variant {inp.variant!r} uses ai.onnx opset {opset}; onnxruntime "
                f"{inp.ort_version} runs opsets up to {known}",
                f"re-export with --opset {known} or pin a newer onnxruntime",
            )
        )
    return out


@check("provider")
def providers(inp: PreflightInput) -> list[Finding]:
    out: list[Finding] = []
    facts = inp.facts
    if facts is not None and inp.provider not in facts.providers:
        out.append(
            _finding(
                inp,
                "error",
                "provider",
                f"the selection uses {inp.provider}, which target {inp.target} does not have "
                f"(it has {', '.join(facts.providers)})",
                "re-run tune for this target or pass --target PLATFORM=TARGET",
            )
        )
    if inp.provider not in PYPI_ONNXRUNTIME_PROVIDERS:
        package = PROVIDER_PACKAGES.get(inp.provider, "a provider-specific onnxruntime build")
        out.append(
            _finding(
                inp,
                "warning",
                "provider",
                f"{inp.provider} is not in the PyPI onnxruntime wheel the component installs; "
                f"it needs {package} on the device, else the agent runs on {CPU}",
                "install that build on the device image, or select a CPU variant",
            )
        )
    return out


def _quant_record(variant: dict[str, Any]) -> dict[str, Any]:
    q = variant.get("quantization") or {}
    fmt = str(q.get("format") or q.get("quant_format") or "")
    act = str(q.get("activation_type") or "").lower().replace("quanttype.", "").replace("q", "")
    return {
        "format": ("QDQ" if fmt.lower().endswith("qdq") else "QOperator") if fmt else None,
        "signed": (act == "int8") if act else None,
        "reduce_range": q.get("reduce_range"),
    }


@check("quantization")
def quantization_vs_isa(inp: PreflightInput) -> list[Finding]:
    facts = inp.facts
    if facts is None:
        return []
    variant = inp.bundle.variant(inp.variant)
    graph = graph_facts(inp.bundle, inp.variant)
    record = _quant_record(variant)
    layout = graph["layout"] or record["format"]
    signed = graph["signed_activations"]
    if signed is None:
        signed = record["signed"]
    out: list[Finding] = []
    x86 = facts.architecture in ("amd64", "x86")
    on_cpu = inp.provider == CPU
    if x86 and on_cpu and layout == "QOperator" and signed:
        out.append(
            _finding(
                inp,
                "warning",
                "quantization",
                f"variant {inp.variant!r} is QOperator with signed (S8S8) activations: onnxruntime "
                "runs that slowly on x86-64",
                "quantize with QDQ format, or with uint8 activations (U8S8)",
            )
        )
    vnni = bool(facts.features & {"avx512_vnni", "avx_vnni", "amx"})
    if (
        x86
        and on_cpu
        and layout in ("QDQ", "QOperator")
        and signed is False
        and not vnni
        and record["reduce_range"] is False
    ):
        out.append(
            _finding(
                inp,
                "warning",
                "quantization",
                f"U8S8 without reduce_range on {inp.target} (AVX2, no VNNI) can saturate the "
                "16-bit intermediate sums and lose accuracy",
                "quantize with reduce_range=True for x86 targets without VNNI",
            )
        )
    fp16 = variant.get("precision") == "fp16" or graph["fp16"]
    if fp16 and on_cpu and "fp16" not in facts.features:
        out.append(
            _finding(
                inp,
                "warning",
                "quantization",
                f"variant {inp.variant!r} is FP16 but {inp.target} has no FP16 arithmetic: the CPU "
                "provider casts to FP32 and it runs no faster (often slower) than fp32",
                "use the fp32 or an int8 variant on this target",
            )
        )
    return out


@check("memory")
def memory(inp: PreflightInput) -> list[Finding]:
    facts = inp.facts
    if facts is None:
        return []
    variant = inp.bundle.variant(inp.variant)
    graph = graph_facts(inp.bundle, inp.variant)
    # Weights once as loaded and once pre-packed/arena, intermediate tensors at batch 1, runtime.
    estimate = 2 * int(variant["bytes"]) + graph["activation_bytes"] + RUNTIME_OVERHEAD
    measured = [
        int(v)
        for bench in (variant.get("benchmarks") or {}).values()
        if isinstance(bench, dict)
        for key in ("peak_rss_bytes", "peak_memory_bytes", "rss_bytes")
        if isinstance((v := bench.get(key)), (int, float))
    ]
    basis = "estimate"
    if measured:
        estimate, basis = max(measured), "measured peak"
    budget = facts.model_memory_budget
    if estimate > budget:
        sev = "error"
    elif estimate > 0.8 * budget:
        sev = "warning"
    else:
        return []
    return [
        _finding(
            inp,
            sev,
            "memory",
            f"variant {inp.variant!r} needs about {estimate / MIB:.0f} MiB ({basis}: model, arena "
            f"and runtime); {inp.target} leaves {budget / MIB:.0f} MiB for the model",
            "pick a smaller (int8) variant or a target with more memory",
        )
    ]


# Linux architectures the PyPI onnxruntime wheel exists for (manylinux x86_64 and aarch64).
PYPI_ONNXRUNTIME_ARCHITECTURES = ("amd64", "aarch64")


@check("install")
def installable(inp: PreflightInput) -> list[Finding]:
    arch = inp.platform.rpartition("/")[2]
    if arch in PYPI_ONNXRUNTIME_ARCHITECTURES:
        return []
    return [
        _finding(
            inp,
            "error",
            "install",
            f"onnxruntime {inp.ort_version} publishes no wheel for {inp.platform} on PyPI "
            "(nor a source build pip could make): Install cannot set up the agent's runtime",
            "run a 64-bit OS on the device (aarch64), or serve an onnxruntime wheel from the "
            "devices' pip index and pass --ignore-preflight",
        )
    ]


@check("threads")
def threads(inp: PreflightInput) -> list[Finding]:
    facts = inp.facts
    n = int(inp.session_options.get("intra_op_num_threads") or 0)
    if facts is None or n <= facts.cores:
        return []
    return [
        _finding(
            inp,
            "warning",
            "threads",
            f"session options ask for {n} intra-op threads; {inp.target} has {facts.cores} cores",
            "re-run tune for this target, or lower intra_op_num_threads",
        )
    ]


def run_preflight(inp: PreflightInput) -> list[Finding]:
    findings: list[Finding] = []
    if inp.facts is None:
        findings.append(
            _finding(
                inp,
                "warning",
                "target",
                f"no hardware facts for target {inp.target!r}: ISA, memory and provider checks "
                "skipped",
                "add a target profile (edgekit.toolkit.targets) or pass --target PLATFORM=TARGET",
            )
        )
    for fn in CHECKS.values():
        findings.extend(fn(inp))
    return findings
