"""Find the external-data file names an ONNX model refers to, without the onnx package.

The agent must refuse a model whose initializers point outside the bundle (``../../etc/x``) or
to files the manifest does not vouch for, before onnxruntime opens anything. The device has no
``onnx`` package, so this walks the protobuf wire format directly: ModelProto.graph (7) →
GraphProto.initializer (5) / sparse_initializer (15) / node (1) → NodeProto.attribute (5) →
AttributeProto.t (5) / tensors (10) / g (6) / graphs (11) → TensorProto.external_data (13) →
StringStringEntryProto {key (1), value (2)}; functions (ModelProto 25) hold nodes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edge_agent.errors import BundleError

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BundleError("ONNX file is truncated (bad varint)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BundleError("ONNX file is malformed (varint too long)")


def _fields(
    buf: memoryview,
) -> Iterator[tuple[int, int, Any]]:  # Any: an int (varint) or a memoryview (length-delimited)
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise BundleError("ONNX file is truncated (field runs past the end)")
            yield number, wire, buf[pos : pos + size]
            pos += size
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:
            raise BundleError(f"ONNX file is malformed (wire type {wire})")


def _tensor_locations(tensor: memoryview) -> Iterator[str]:
    for number, wire, value in _fields(tensor):
        if number == 13 and wire == _LEN:
            entry = {
                n: bytes(v).decode("utf-8", "replace") for n, w, v in _fields(value) if w == _LEN
            }
            if entry.get(1) == "location":
                yield entry.get(2, "")


def _graph_locations(graph: memoryview) -> Iterator[str]:
    for number, wire, value in _fields(graph):
        if wire != _LEN:
            continue
        if number == 5:  # initializer
            yield from _tensor_locations(value)
        elif number == 15:  # sparse_initializer: values (1) and indices (2) are tensors
            for n, w, v in _fields(value):
                if n in (1, 2) and w == _LEN:
                    yield from _tensor_locations(v)
        elif number == 1:  # node
            yield from _node_locations(value)


def _node_locations(node: memoryview) -> Iterator[str]:
    for number, wire, value in _fields(node):
        if number == 5 and wire == _LEN:  # attribute
            for n, w, v in _fields(value):
                if w != _LEN:
                    continue
                if n in (5, 10):
                    yield from _tensor_locations(v)
                elif n in (6, 11):
                    yield from _graph_locations(v)


def external_data_locations(model_bytes: bytes) -> list[str]:
    """Every ``location`` named by an external-data tensor anywhere in the model."""
    found: list[str] = []
    for number, wire, value in _fields(memoryview(model_bytes)):
        if wire != _LEN:
            continue
        if number == 7:
            found.extend(_graph_locations(value))
        elif number == 25:  # FunctionProto: node (7)
            for n, w, v in _fields(value):
                if n == 7 and w == _LEN:
                    found.extend(_node_locations(v))
    return sorted(set(found))
