"""ONNX element types <-> the dtype names the manifest uses."""

from __future__ import annotations

from typing import Any

import numpy as np

ONNX_TO_NAME = {
    1: "float32",
    11: "float64",
    10: "float16",
    7: "int64",
    6: "int32",
    3: "int8",
    2: "uint8",
    9: "bool",
    8: "string",
}


def tensor_spec(value_info: Any) -> dict[str, Any]:
    """Manifest tensor entry from an ONNX ValueInfoProto."""
    from edge_agent.errors import BadInputError

    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        what = {"sequence_type": "a sequence", "map_type": "a map"}.get(str(kind), str(kind))
        raise BadInputError(
            f"{value_info.name!r} is {what}, not a tensor: edgekit serves tensors only",
            hint="end the graph in tensors (skl2onnx: options={'zipmap': False}; a ZipMap "
            "output is converted on import)",
        )
    ttype = value_info.type.tensor_type
    dtype = ONNX_TO_NAME.get(ttype.elem_type)
    if dtype is None:
        raise BadInputError(
            f"tensor {value_info.name!r} has an ONNX element type ({ttype.elem_type}) edgekit does not handle"
        )
    shape: list[Any] = []
    for dim in ttype.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            shape.append(dim.dim_param)
        else:
            shape.append(None)
    return {"name": value_info.name, "dtype": dtype, "shape": shape}


def numpy_dtype(name: str) -> Any:
    return np.str_ if name == "string" else np.dtype(name)
