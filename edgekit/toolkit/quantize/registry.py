"""The quantization methods: each module registers one Method (a typed config and one run
function), like Olive's passes. Adding a method means adding a module, not editing an if-chain.
The registry imports no method: edgekit/toolkit/quantize/__init__.py imports the built-in ones, so they
have registered whenever anything of edgekit.toolkit.quantize is in use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError

QUANT_TYPES = ("int8", "uint8")


@dataclass
class MethodContext:
    """What a method's run function gets besides its config."""

    source: Path  # the model to convert (pre-processed for INT8 methods)
    output: Path  # where to write the new variant
    signature: dict[str, Any]
    calibration: Callable[[], Any] | None = None  # -> a fresh CalibrationDataReader
    workdir: Path | None = None


@dataclass(frozen=True)
class Method:
    name: str
    config_type: type
    run: Callable[[Any, MethodContext], dict[str, Any]]  # returns what to record
    precision: Callable[[Any], str]
    default_name: Callable[[Any], str]
    integer: bool  # INT8 through onnxruntime.quantization: its output must hold quantized ops
    needs_calibration: bool
    description: str
    # What the pipeline asks the method instead of knowing it by name:
    needs_preprocess: bool = False  # run onnxruntime's quant_pre_process on the model first
    # why it cannot convert an ai.onnx.ml tree ensemble (it refuses one up front)
    trees: str = (
        "onnxruntime.quantization has no integer kernels for ai.onnx.ml TreeEnsemble operators"
    )
    # the calibration set adjusted to the config (config, CalibrationSet) -> CalibrationSet
    prepare_calibration: Callable[[Any, Any], Any] | None = None
    # why its output changed nothing (path) -> reason, or None when it did change the model
    unchanged: Callable[[Path], str | None] | None = None


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    _METHODS[method.name] = method
    return method


def names() -> list[str]:
    return list(_METHODS)


def get(name: str) -> Method:
    if name not in _METHODS:
        raise BadInputError(
            f"unknown quantization method {name!r}",
            hint=f"choose one of: {', '.join([*_METHODS, 'auto'])}",
        )
    return _METHODS[name]


def build_config(method: Method, options: dict[str, Any]) -> Any:
    """The method's config from options; options that do not apply to it are refused."""
    fields = {f.name for f in dataclasses.fields(method.config_type)}
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        flags = ", ".join("--" + u.replace("_", "-") for u in unknown)
        raise BadInputError(
            f"{flags} do{'es' if len(unknown) == 1 else ''} not apply to the {method.name} method",
            hint=f"{method.name} takes: {', '.join(sorted(fields))}",
        )
    return method.config_type(**given)


def config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def check_choice(value: str, allowed: tuple[str, ...], option: str) -> None:
    if value not in allowed:
        raise BadInputError(f"{option} {value!r} is not one of {', '.join(allowed)}")


def quant_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[name]


def op_types_to_quantize(
    registry_ops: set[str], present: set[str], excluded: list[str]
) -> list[str] | None:
    """onnxruntime's default op list minus the excluded ones (None: keep its default)."""
    if not excluded:
        return None
    return sorted((registry_ops & present) - set(excluded))
