"""The KServe v2 HTTP body, JSON or with the binary tensor data extension.

The extension (Triton's, and what ``tritonclient.http`` sends by default): the header
``Inference-Header-Content-Length: N`` says the first N bytes of the body are the JSON request;
the raw tensor bytes follow, in the order of the inputs whose ``parameters.binary_data_size``
says how many bytes each takes. Numbers are little-endian in row-major order, BOOL one byte per
element, BYTES each element as a 4-byte little-endian length then the bytes. Responses use the
same layout for the outputs the client asked to get in binary (``parameters.binary_data_output``
on the request, or ``parameters.binary_data`` per requested output).

Everything here runs on a worker thread (JSON parsing and copying are CPU work) and raises
``RequestError`` for whatever a client can get wrong.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np

from edge_agent.serving.validation import (
    KSERVE_TO_NUMPY,
    RequestError,
    TensorSpec,
    datatype_of,
    encode_outputs,
)

HEADER_LENGTH = "inference-header-content-length"
ENCODINGS = ("gzip", "deflate", "identity")


def decompress(raw: bytes | bytearray, encoding: str | None, cap: int) -> bytes | bytearray:
    """Undo ``Content-Encoding`` (gzip/deflate, as tritonclient can send), never past ``cap``."""
    if not encoding or encoding == "identity":
        return raw
    if encoding not in ("gzip", "deflate"):
        exc = RequestError(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
        exc.status = 415  # Unsupported Media Type, as RFC 9110 answers an unknown coding
        raise exc
    wbits = 31 if encoding == "gzip" else 15
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, cap + 1)
    except zlib.error as exc:
        raise RequestError(f"the {encoding} body does not decompress: {exc}") from None
    if len(out) > cap:
        raise RequestError(f"the decompressed body exceeds the cap of {cap} bytes", "too_large")
    if not inflater.eof:
        raise RequestError(f"the {encoding} body is truncated")
    return out


def split_body(raw: bytes | bytearray, header_length: str | None) -> tuple[Any, memoryview | None]:
    """The JSON request and, with the binary extension, the bytes after it."""
    if header_length is None:
        return _json(raw), None
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(raw):
        raise RequestError(
            f"Inference-Header-Content-Length {header_length!r} must be a byte count within "
            f"the body's {len(raw)} bytes"
        )
    n = int(text)
    view = memoryview(raw)
    return _json(bytes(view[:n])), view[n:]


def _json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RequestError(
            f"request body is not valid JSON: {exc} (binary tensors need the "
            "Inference-Header-Content-Length header)"
        ) from None


def split_inputs(body: Any, tail: memoryview | None) -> dict[int, memoryview]:
    """Input position → its raw bytes, checking that the sizes add up to the bytes sent."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        if tail is not None and len(tail):
            raise RequestError("binary tensor data came without an 'inputs' list")
        return {}
    out: dict[int, memoryview] = {}
    offset = 0
    available = len(tail) if tail is not None else 0
    for i, item in enumerate(body["inputs"]):
        params = item.get("parameters") if isinstance(item, dict) else None
        if not isinstance(params, dict) or "binary_data_size" not in params:
            continue
        size = params["binary_data_size"]
        if type(size) is not int or size < 0:
            raise RequestError(f"inputs[{i}].parameters.binary_data_size must be a byte count")
        if tail is None:
            raise RequestError(
                f"inputs[{i}] has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        if offset + size > available:
            raise RequestError(
                f"inputs[{i}] needs {size} bytes at offset {offset} but only {available} "
                "bytes of binary data follow the JSON header"
            )
        out[i] = tail[offset : offset + size]
        offset += size
    if offset != available:
        raise RequestError(
            f"{available} bytes of binary data follow the JSON header but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    return out


def decode_tensor(raw: memoryview, datatype: str, count: int, name: str) -> np.ndarray:
    """Raw extension bytes → a flat array of ``count`` elements (a private, writable copy)."""
    if datatype == "BYTES":
        return _decode_bytes(raw, count, name)
    dtype = np.dtype(KSERVE_TO_NUMPY[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"input {name!r} ({datatype}) has {len(raw)} bytes of binary data but its shape "
            f"needs {count} × {dtype.itemsize} = {count * dtype.itemsize}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count).astype(dtype.newbyteorder("="))
    if datatype == "BOOL" and arr.size and int(arr.view(np.uint8).max()) > 1:
        raise RequestError(f"input {name!r} (BOOL) holds bytes other than 0 and 1")
    return arr


def _decode_bytes(raw: memoryview, count: int, name: str) -> np.ndarray:
    values: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end or len(values) >= count:
            raise RequestError(f"input {name!r} (BYTES) has malformed binary data")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > end:
            raise RequestError(f"input {name!r} (BYTES) has an element past the data's end")
        try:
            values.append(bytes(raw[offset : offset + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError(
                f"input {name!r} (BYTES) holds an element that is not UTF-8"
            ) from None
        offset += length
    if len(values) != count:
        raise RequestError(f"input {name!r} has {len(values)} values but its shape needs {count}")
    return np.asarray(values, dtype=str)


def binary_outputs(body: Any, names: list[str]) -> set[str]:
    """The outputs the client wants as raw bytes."""
    params = body.get("parameters") if isinstance(body, dict) else None
    everything = isinstance(params, dict) and params.get("binary_data_output") is True
    wanted: set[str] = set(names) if everything else set()
    requested = body.get("outputs") if isinstance(body, dict) else None
    for item in requested if isinstance(requested, list) else []:
        p = item.get("parameters") if isinstance(item, dict) else None
        if isinstance(p, dict) and "binary_data" in p:
            (wanted.add if p["binary_data"] is True else wanted.discard)(item.get("name"))
    return wanted


def encode_raw(arr: np.ndarray, datatype: str) -> bytes:
    """One tensor as the binary extension and gRPC's raw contents carry it: little-endian
    row-major, BYTES elements length-prefixed."""
    if datatype == "BYTES":
        parts = []
        for value in arr.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def encode_response(
    head: dict[str, Any],
    specs: dict[str, TensorSpec],
    names: list[str],
    arrays: list[np.ndarray],
    binary: set[str],
) -> tuple[bytes, int | None]:
    """The response body and, when any output went binary, the JSON header's length."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, arr in zip(names, arrays, strict=True):
        arr = np.asarray(arr)
        if name not in binary:
            outputs.extend(encode_outputs(specs, [name], [arr]))
            continue
        spec = specs.get(name)
        datatype = spec.datatype if spec else datatype_of(arr)
        raw = encode_raw(arr, datatype)
        outputs.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    header = json.dumps(
        {**head, "outputs": outputs}, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
