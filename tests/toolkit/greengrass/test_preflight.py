"""Compatibility preflight on real (tiny) ONNX models: opset/operators against the pinned
onnxruntime, providers, quantization format against the ISA, memory, threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edge_agent.contracts.bundle import Bundle
from edge_agent.hashing import sha256_file
from edgekit.toolkit.greengrass.names import Platform
from edgekit.toolkit.greengrass.preflight import PreflightInput, run_preflight
from edgekit.toolkit.greengrass.targets import TargetFacts, choose_target, target_facts


def save(tmp: Path, name: str, graph, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp / f"{name}.onnx"
    onnx.save(model, path)
    return path


def qoperator_s8s8(tmp: Path) -> Path:
    """QLinearMatMul with int8 activations and weights (QOperator, S8S8)."""
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "a_s"),
        numpy_helper.from_array(np.array(0, np.int8), "a_zp"),
        numpy_helper.from_array(np.ones((4, 2), np.int8), "w"),
        numpy_helper.from_array(np.array(0.1, np.float32), "w_s"),
        numpy_helper.from_array(np.array(0, np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.2, np.float32), "y_s"),
        numpy_helper.from_array(np.array(0, np.int8), "y_zp"),
    ]
    nodes = [
        helper.make_node(
            "QLinearMatMul", ["x", "a_s", "a_zp", "w", "w_s", "w_zp", "y_s", "y_zp"], ["y"]
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 2])],
        inits,
    )
    return save(tmp, "q", graph)


def fp16_model(tmp: Path) -> Path:
    w = numpy_helper.from_array(np.ones((4, 2), np.float16), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "h",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 2])],
        [w],
    )
    return save(tmp, "h", graph)


def bogus_model(tmp: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"])],
        "b",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return save(tmp, "b", graph, opset=23)


def bundle_of(path: Path, precision: str, quantization: dict | None = None) -> Bundle:
    name = path.stem
    return Bundle(
        path.parent,
        {
            "variants": {
                name: {
                    "file": path.name,
                    "sha256": sha256_file(path),
                    "bytes": path.stat().st_size,
                    "precision": precision,
                    "quantization": quantization,
                }
            },
            "files": {},
        },
    )


def run(
    bundle: Bundle,
    target: str | TargetFacts,
    provider="CPUExecutionProvider",
    options=None,
    pin=None,
) -> dict[str, str]:
    facts = target_facts(target) if isinstance(target, str) else target
    findings = run_preflight(
        PreflightInput(
            bundle,
            next(iter(bundle.variants)),
            f"linux/{facts.architecture}",
            facts.name,
            facts,
            provider,
            options or {},
            pin or ort.__version__,
        )
    )
    worst: dict[str, str] = {}
    for f in findings:  # the worst severity per check
        if worst.get(f.check) != "error":
            worst[f.check] = f.severity
    return worst


def test_qoperator_signed_is_flagged_on_x86_only(tmp_path):
    b = bundle_of(qoperator_s8s8(tmp_path), "int8", {"quant_format": "QOperator"})
    assert run(b, "x86-avx2-gateway") == {"quantization": "warning"}
    assert run(b, "rpi4") == {}


def test_fp16_without_fp16_arithmetic(tmp_path):
    b = bundle_of(fp16_model(tmp_path), "fp16")
    assert run(b, "rpi4") == {"quantization": "warning"}
    assert run(b, "rpi5") == {}


def test_operators_checked_with_the_pinned_runtime(tmp_path):
    b = bundle_of(bogus_model(tmp_path), "fp32")
    assert run(b, "rpi4")["opset"] == "error"  # the installed (pinned) runtime cannot load it
    assert run(b, "rpi4", pin="1.17.0")["opset"] == "error"  # opset 23 > 20 for onnxruntime 1.17


def test_provider_memory_and_threads(tmp_path):
    b = bundle_of(fp16_model(tmp_path), "fp32")
    found = run(b, "rpi4", provider="TensorrtExecutionProvider")
    assert found["provider"] == "error"
    assert run(b, "jetson-orin", provider="TensorrtExecutionProvider")["provider"] == "warning"
    tiny = TargetFacts("tiny", "aarch64", frozenset({"neon", "fp16"}), 64 * 1024**2, 1)
    found = run(b, tiny, options={"intra_op_num_threads": 4})
    assert found == {"memory": "error", "threads": "warning"}


def test_platform_to_target_mapping():
    aarch64, amd64 = Platform("linux", "aarch64"), Platform("linux", "amd64")
    assert choose_target(aarch64, {}, None).target == "rpi4"
    assert choose_target(aarch64, {}, None).selection is None
    sel = {"rpi5": {"variant": "int8"}, "x86-avx512-vnni-server": {"variant": "q"}}
    assert choose_target(aarch64, sel, None).target == "rpi5"
    assert choose_target(amd64, sel, None).target == "x86-avx512-vnni-server"
    assert choose_target(aarch64, sel, "jetson-orin").selection is None
