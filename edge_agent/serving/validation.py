"""Strict request validation: nothing reaches onnxruntime unless its names, dtypes, ranks, fixed
dimensions, sizes and values are what the model declares and the caps allow.

Every problem is a ``RequestError`` with a kind (for the error counters) and a message that names
the input and says what was expected; the REST layer turns it into HTTP 400 (413 for too large).

Inputs go by their ONNX names or by the user's column names where those differ (skl2onnx makes
`od280/od315` into `od280_od315`; the signature records `column` per input): ``input_aliases``
reads that from the signature and the Validator maps either onto the ONNX name.

KServe v2 requests are parsed strictly: a tensor's ``datatype`` must be the model input's (no
silent casts), and tensors may come as JSON ``data`` or as raw bytes of the binary tensor data
extension (``parameters.binary_data_size``, decoded by ``edge_agent.serving.wire``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# KServe v2 / Open Inference Protocol datatypes.
KSERVE_TO_NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.str_,
}
ORT_TO_KSERVE = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


class RequestError(Exception):
    """A request the agent refuses; ``kind`` is one of telemetry.ERROR_KINDS."""

    def __init__(self, message: str, kind: str = "bad_request", *, wrong_type: bool = False):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.wrong_type = wrong_type
        # the contract: every refused request is a 400 with the reason, 413 when over a cap
        self.status = 413 if kind == "too_large" else 400


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # KServe name
    dtype: Any  # numpy dtype (np.str_ for strings)
    shape: tuple[int | None, ...]  # None = dynamic

    @property
    def is_string(self) -> bool:
        return self.datatype == "BYTES"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": [-1 if d is None else d for d in self.shape],
        }


def spec_from_ort(node: Any) -> TensorSpec:
    datatype = ORT_TO_KSERVE.get(node.type)
    if datatype is None:
        raise ValueError(f"tensor {node.name} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or []))
    return TensorSpec(node.name, datatype, np.dtype(KSERVE_TO_NUMPY[datatype]), shape)


@dataclass(frozen=True)
class Limits:
    max_batch: int = 256
    max_elements: int = 4_000_000
    max_request_bytes: int = 32 * 1024 * 1024
    reject_nan: bool = False
    reject_inf: bool = True


def input_aliases(signature: dict[str, Any]) -> dict[str, str]:
    """{user's column name: ONNX input name} for the inputs whose ONNX name differs from the
    column the user knows them by (the manifest signature's ``column``)."""
    names = {i["name"] for i in signature.get("inputs") or []}
    return {
        i["column"]: i["name"]
        for i in signature.get("inputs") or []
        if i.get("column") and i["column"] != i["name"] and i["column"] not in names
    }


def input_ranges(signature: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """{ONNX input name: (low, high)} from the manifest signature's ``range`` (token ids)."""
    return {
        i["name"]: (int(i["range"][0]), int(i["range"][1]))
        for i in signature.get("inputs") or []
        if i.get("range")
    }


def by_onnx_name(feeds: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """`feeds` keyed by ONNX input names: user column names replaced; a value given under both
    names is refused rather than one silently dropped."""
    if not aliases or not any(k in aliases for k in feeds):
        return feeds
    out: dict[str, Any] = {}
    for key, value in feeds.items():
        name = aliases.get(key, key)
        if name in out:
            raise RequestError(f"input {name!r} is given twice (as {key!r} and as {name!r})")
        out[name] = value
    return out


# what a nested-list feed may hold (None: a missing value in a tabular column)
_SCALARS = (int, float, bool, str, bytes, np.generic, type(None))


class Validator:
    """Checks feeds against one model's inputs; rebuilt on every model swap.

    ``check`` is the in-process entry point: a closure built once per model (and again when the
    limits change) that runs the common request, well-formed numpy feeds with fixed trailing
    dimensions, in a handful of attribute reads, and hands anything else to ``check_feeds``.
    Both apply the same rules; the closure only decides faster that a request passes them.
    """

    def __init__(
        self,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        limits: Limits,
        aliases: dict[str, str] | None = None,
        ranges: dict[str, tuple[int, int]] | None = None,
    ):
        self.inputs = {s.name: s for s in inputs}
        # integer inputs with a valid range (token ids: the rows of the embedding table)
        self.ranges = {n: r for n, r in (ranges or {}).items() if n in self.inputs}
        self.outputs = {s.name: s for s in outputs}
        self._order = [s.name for s in inputs]
        # user column name -> ONNX input name (input_aliases), only for inputs of this model
        self.aliases = {
            user: onnx
            for user, onnx in (aliases or {}).items()
            if onnx in self.inputs and user not in self.inputs
        }
        self.columns = {onnx: user for user, onnx in self.aliases.items()}
        self._expected = ", ".join(self.columns.get(n, n) for n in self._order)
        # Fast path for the common request: right names, exact dtype, fixed trailing dims.
        self._fast: list[tuple[str, Any, int, tuple[int, ...], bool]] = [
            (s.name, s.dtype, len(s.shape), _fixed(s.shape[1:]), bool(s.dtype.kind == "f"))
            for s in inputs
            if s.shape and s.shape[0] is None and None not in s.shape[1:]
        ]
        if len(self._fast) != len(inputs) or self.ranges:
            self._fast = []
        self.limits = limits  # builds self.check

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        self.check = _compile_check(self._fast, limits, self.check_feeds)

    def onnx_name(self, name: str) -> str | None:
        """The ONNX input a name (ONNX or the user's column) refers to, or None."""
        if name in self.inputs:
            return name
        return self.aliases.get(name)

    def key_for(self, onnx: str, keys: Any) -> str | None:
        """Which of `keys` (a file's columns, a JSON object's keys) gives ONNX input `onnx`:
        its own name or the user's column name."""
        if onnx in keys:
            return onnx
        user = self.columns.get(onnx)
        return user if user is not None and user in keys else None

    # -- numpy feeds (in-process path, batch mode) -------------------------------------------
    def _plain_array(self, name: str, value: Any) -> np.ndarray:
        """A feed that is not an ndarray, as one: numpy-compatible containers (pandas, torch)
        convert themselves; nested lists and tuples of scalars are counted against the element
        cap first. Anything else is refused: np.asarray would expand a lazy sequence such as
        range(10**10) into tens of gigabytes before any cap is checked."""
        if not (hasattr(value, "__array__") or hasattr(value, "__array_interface__")):
            cap, count, stack = self.limits.max_elements, 0, [value]
            while stack:
                item = stack.pop()
                if isinstance(item, (list, tuple)):
                    over = count + len(item) > cap
                    if not over:
                        stack.extend(item)
                elif isinstance(item, _SCALARS):
                    count += 1
                    over = count > cap
                else:
                    raise RequestError(
                        f"input {name!r} holds a {type(item).__name__}: send a numpy array or "
                        "nested lists of numbers (or strings)"
                    )
                if over:
                    raise RequestError(
                        f"input {name!r} has over {cap} elements, the cap "
                        "(max_elements in the agent's configuration raises it)",
                        "too_large",
                    )
        try:
            return np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise RequestError(f"input {name!r} is not a regular array: {exc}") from None

    def check_feeds(self, feeds: Any) -> tuple[dict[str, np.ndarray], int]:
        """Return feeds ready for session.run and the batch size; raise RequestError."""
        if not isinstance(feeds, dict):
            raise RequestError("inputs must be a mapping of input name to array")
        feeds = by_onnx_name(feeds, self.aliases)
        if len(feeds) != len(self.inputs) or any(k not in self.inputs for k in feeds):
            self._name_problem(feeds)
        out: dict[str, np.ndarray] = {}
        batch: int | None = None
        elements = 0
        for name, spec in self.inputs.items():
            arr = feeds[name]
            if type(arr) is not np.ndarray:
                arr = self._plain_array(name, arr)
            arr = self._dtype(spec, arr)
            n = self._shape(spec, arr.shape)
            if batch is None:
                batch = n
            elif n != batch and n is not None:
                raise RequestError(
                    f"input {name!r} has batch size {n} but another input has {batch}; "
                    "all inputs must have the same number of rows"
                )
            elements += arr.size
            if arr.dtype.kind == "f":
                self._finite(name, arr)
            elif name in self.ranges:
                self._in_range(name, arr)
            out[name] = arr
        batch = batch or 1
        if batch > self.limits.max_batch:
            raise RequestError(
                f"batch of {batch} rows exceeds the cap of {self.limits.max_batch}; send "
                "smaller batches or raise the cap (edge-agent serve --max-batch N, or max_batch "
                "in the agent's configuration)",
                "too_large",
            )
        if elements > self.limits.max_elements:
            raise RequestError(
                f"request has {elements} elements, over the cap of {self.limits.max_elements} "
                "(max_elements in the agent's configuration raises it)",
                "too_large",
            )
        return out, batch

    def _name_problem(self, feeds: dict[str, Any]) -> None:
        unknown = [str(k) for k in feeds if k not in self.inputs]
        missing = [self.columns.get(k, k) for k in self._order if k not in feeds]
        parts = []
        if unknown:
            parts.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if missing:
            parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
        raise RequestError(f"{'; '.join(parts)}; the model takes: {self._expected}")

    def _dtype(self, spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
        if arr.dtype == spec.dtype:
            return arr
        kind = arr.dtype.kind
        if spec.is_string:
            if kind in "US":
                return arr.astype(str)
            if kind == "O" and all(isinstance(v, str) for v in arr.flat):
                return arr.astype(str)
        elif spec.dtype.kind == "b":
            if kind == "b":
                return arr
        elif kind in "biuf" and not (kind == "f" and spec.dtype.kind in "iu"):
            # ints into floats, narrower/wider ints and floats; never floats into ints
            if kind in "iu" and spec.dtype.kind in "iu":
                info = np.iinfo(spec.dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise RequestError(
                        f"input {spec.name!r} has values outside the range of {spec.datatype}"
                    )
            with np.errstate(over="ignore"):  # FP64 beyond FP32's range: inf, refused next
                return arr.astype(spec.dtype)
        raise RequestError(
            f"input {spec.name!r} has type {arr.dtype} but the model expects {spec.datatype}",
            wrong_type=True,
        )

    def _shape(self, spec: TensorSpec, shape: tuple[int, ...]) -> int | None:
        if len(shape) != len(spec.shape):
            raise RequestError(
                f"input {spec.name!r} has rank {len(shape)} (shape {list(shape)}) but the model "
                f"expects rank {len(spec.shape)} (shape {spec.describe()['shape']}, -1 = any)"
            )
        for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
            if want is not None and got != want:
                raise RequestError(
                    f"input {spec.name!r} has size {got} on axis {axis} but the model needs "
                    f"{want} (expected shape {spec.describe()['shape']})"
                )
        if shape and shape[0] == 0:
            raise RequestError(f"input {spec.name!r} has no rows")
        if 0 in shape[1:]:  # a dynamic axis of size 0 (an empty sequence): the model would fail
            raise RequestError(
                f"input {spec.name!r} has size 0 on axis {shape.index(0, 1)} (shape "
                f"{list(shape)}); every axis needs at least one element"
            )
        return shape[0] if shape and spec.shape and spec.shape[0] is None else None

    def _in_range(self, name: str, arr: np.ndarray) -> None:
        low, high = self.ranges[name]
        if arr.size and (arr.min() < low or arr.max() > high):
            bad = arr[(arr < low) | (arr > high)].ravel()[:3].tolist()
            raise RequestError(
                f"input {name!r} holds {bad} outside [{low}, {high}], the ids the model's "
                "embedding table has (a token id from another tokenizer or vocabulary?)"
            )

    def _finite(self, name: str, arr: np.ndarray) -> None:
        limits = self.limits
        if not (limits.reject_nan or limits.reject_inf):
            return
        with np.errstate(over="ignore", invalid="ignore"):  # inf - inf is NaN: looked at next
            total = float(np.add.reduce(arr, axis=None, dtype=np.float64))
        if math.isfinite(total):
            return  # every value is finite: the common case costs one reduction
        if limits.reject_nan and np.isnan(arr).any():
            raise RequestError(f"input {name!r} contains NaN (not allowed by reject_nan)")
        if limits.reject_inf and np.isinf(arr).any():
            raise RequestError(f"input {name!r} contains infinite values (not allowed)")

    # -- KServe v2 JSON -------------------------------------------------------------------------
    def parse_kserve(
        self, body: Any, binary: dict[int, memoryview] | None = None
    ) -> tuple[dict[str, np.ndarray], list[str] | None, str | None]:
        """A v2 inference request body (already JSON-decoded) → (feeds, outputs wanted, id).

        ``binary`` maps an input's position to its raw bytes when the request used the binary
        tensor data extension (see ``edge_agent.serving.wire.split_inputs``).
        """
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object with an 'inputs' list")
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise RequestError("request needs a non-empty 'inputs' list")
        feeds: dict[str, np.ndarray] = {}
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise RequestError(
                    f"inputs[{i}] must be an object with name, shape, datatype, data"
                )
            name = item.get("name")
            if not isinstance(name, str):
                raise RequestError(f"inputs[{i}].name must be a string")
            spec = self.inputs.get(self.onnx_name(name) or name)
            if spec is None:
                raise RequestError(f"unknown input {name!r}; the model takes: {self._expected}")
            if spec.name in feeds:
                raise RequestError(f"input {name!r} is given twice")
            raw = binary.get(i) if binary else None
            feeds[spec.name] = self._kserve_tensor(spec, item, raw)
        wanted = self._wanted_outputs(body.get("outputs"))
        rid = body.get("id")
        if rid is not None and not isinstance(rid, str):
            raise RequestError("request 'id' must be a string")
        return feeds, wanted, rid

    def _kserve_tensor(
        self, spec: TensorSpec, item: dict[str, Any], raw: memoryview | None = None
    ) -> np.ndarray:
        datatype, shape, data = item.get("datatype"), item.get("shape"), item.get("data")
        if not isinstance(datatype, str) or datatype not in KSERVE_TO_NUMPY:
            raise RequestError(
                f"input {spec.name!r} has unknown datatype {datatype!r}; expected {spec.datatype}",
                wrong_type=True,
            )
        if datatype != spec.datatype:  # no silent casts: the client says what it sends
            raise RequestError(
                f"input {spec.name!r} has datatype {datatype} but the model expects "
                f"{spec.datatype}; send {spec.datatype}",
                wrong_type=True,
            )
        if (
            not isinstance(shape, list)
            or not shape
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise RequestError(f"input {spec.name!r} needs 'shape' as a list of non-negative ints")
        if len(shape) != len(spec.shape):  # before numpy sees it: it refuses more than 64 dims
            raise RequestError(
                f"input {spec.name!r} has rank {len(shape)} but the model expects rank "
                f"{len(spec.shape)} (shape {spec.describe()['shape']}, -1 = any)"
            )
        count = math.prod(shape)
        if count > self.limits.max_elements:
            raise RequestError(
                f"input {spec.name!r} declares {count} elements, over the cap of "
                f"{self.limits.max_elements}",
                "too_large",
            )
        if raw is not None:
            if data is not None:
                raise RequestError(
                    f"input {spec.name!r} has both 'data' and binary_data_size; send one"
                )
            from edge_agent.serving.wire import decode_tensor

            return decode_tensor(raw, datatype, count, spec.name).reshape(shape)
        if not isinstance(data, list):
            raise RequestError(f"input {spec.name!r} needs 'data' as a (flat or nested) list")
        flat = _flatten(data, count, spec.name)
        if len(flat) != count:
            raise RequestError(
                f"input {spec.name!r} has {len(flat)} values but shape {shape} needs {count}"
            )
        want = np.dtype(KSERVE_TO_NUMPY[datatype])
        if datatype == "BYTES":
            if not all(isinstance(v, str) for v in flat):
                raise RequestError(
                    f"input {spec.name!r} (BYTES) must hold strings", wrong_type=True
                )
            arr = np.asarray(flat, dtype=str)
        else:
            if not all(type(v) in (int, float, bool) for v in flat):
                flat = _nulls_as_nan(flat, want, spec.name, datatype)
            if datatype == "BOOL" and not all(type(v) is bool for v in flat):
                raise RequestError(
                    f"input {spec.name!r} (BOOL) must hold true/false", wrong_type=True
                )
            if want.kind in "iu" and not all(type(v) is int for v in flat):
                raise RequestError(
                    f"input {spec.name!r} ({datatype}) must hold integers", wrong_type=True
                )
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    arr = np.asarray(flat, dtype=want)
            except (OverflowError, ValueError) as exc:
                raise RequestError(f"input {spec.name!r}: {exc}") from None
            if want.kind in "iu" and any(int(a) != v for a, v in zip(arr.flat, flat, strict=True)):
                raise RequestError(f"input {spec.name!r} has values outside {datatype}'s range")
        return arr.reshape(shape)

    def _wanted_outputs(self, outputs: Any) -> list[str] | None:
        if outputs is None:
            return None
        if not isinstance(outputs, list):
            raise RequestError("'outputs' must be a list of {name}")
        names = []
        for item in outputs:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or name not in self.outputs:
                raise RequestError(
                    f"unknown output {name!r}; the model returns: {', '.join(self.outputs)}"
                )
            names.append(name)
        return names


def _nulls_as_nan(flat: list[Any], want: np.dtype, name: str, datatype: str) -> list[Any]:
    """JSON has no NaN: a float input's missing values come as null (what JSON.stringify and
    Python's strict encoders, httpx's among them, send). They become NaN, which the imputers
    of a tabular model read as missing and which `reject_nan` still refuses; anything else
    that is not a number is refused."""
    numbers = (int, float, bool)
    if want.kind == "f" and all(v is None or type(v) in numbers for v in flat):
        return [math.nan if v is None else v for v in flat]
    hint = ""
    if want.kind != "f" and any(v is None for v in flat):
        hint = "; null (a missing value) is taken only by a float input"
    raise RequestError(f"input {name!r} ({datatype}) must hold numbers{hint}", wrong_type=True)


def _flatten(data: list[Any], cap: int, name: str) -> list[Any]:
    """Row-major flatten of nested lists, refusing to walk more than ``cap`` values."""
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
            if len(out) > cap:
                raise RequestError(f"input {name!r} has more values than its shape allows")
        else:
            stack.pop()
    return out


# np.vdot without its __array_function__ dispatch (a fifth of its cost on a 256-value row);
# the public one where numpy does not expose the implementation.
_VDOT = getattr(np.vdot, "_implementation", np.vdot)
# Up to this many values a float32/float64 feed is checked for NaN/inf by its bytes instead of
# vdot: right after a session run numpy's call path is cold, and on a 256-value row vdot cost
# ~1.5 µs of CPU, the byte scan ~0.4 µs less (paired rounds, docs/benchmarks.md "Agent
# performance"). The scan's stride copy grows by ~1 ns a value where vdot barely grows, so
# larger feeds keep vdot.
BYTE_SCAN_VALUES = 512


def _byte_scan_layout(dtype: np.dtype) -> tuple[int, int] | None:
    """(offset, step) of each value's most significant byte in a C-order copy, for the dtypes
    whose NaN and infinities are all in that byte's 0x7F/0xFF (float32 and float64, little
    endian); None for the rest (float16's exponent is not byte aligned)."""
    if dtype.kind != "f" or dtype.itemsize not in (4, 8) or sys.byteorder != "little":
        return None
    if dtype.byteorder not in ("=", "<", "|"):
        return None
    return dtype.itemsize - 1, dtype.itemsize


def _fixed(dims: Any) -> tuple[int, ...]:
    """Trailing dims already known to hold no None (the fast path's precondition)."""
    return tuple(int(d) for d in dims)


def _compile_check(
    fast: list[tuple[str, Any, int, tuple[int, ...], bool]],
    limits: Limits,
    full: Callable[[Any], tuple[dict[str, np.ndarray], int]],
) -> Callable[[Any], tuple[dict[str, np.ndarray], int]]:
    """The per-model validator closure: expected names, dtypes, ranks, trailing dims and caps
    bound as locals. It accepts only what the full path would accept unchanged (same array
    objects, no conversion) and sends everything else, bad requests included, to ``full``,
    which explains the problem.

    Non-finite values: ``vdot(x, x)`` is finite exactly when every value is finite and no
    square overflows (NaN and ±inf propagate through products and sums), and it costs half of
    an ``isfinite(x).all()``; an overflow only sends the request to the full path, which checks
    in float64. Small float32/float64 feeds are scanned by their bytes instead: a value is NaN
    or infinite only if its most significant byte (sign and the exponent's top 7 bits) is 0x7F
    or 0xFF, so a feed with neither byte there is finite; one with (a non-finite value, or a
    finite one of magnitude 2**127 or more for float32, 2**1009 for float64) goes to the full
    path, which decides.
    """
    if not fast:
        return full
    max_batch, max_elements = limits.max_batch, limits.max_elements
    check_values = limits.reject_nan or limits.reject_inf
    ndarray, vdot, isfinite = np.ndarray, _VDOT, math.isfinite
    if len(fast) == 1:
        name, dtype, rank, tail, is_float = fast[0]
        scan = check_values and is_float
        per_row = math.prod(tail)
        # arr.size == rows * per_row, so the element cap is a cap on rows
        max_rows = min(max_batch, max_elements // per_row) if per_row else max_batch
        layout = _byte_scan_layout(np.dtype(dtype)) if scan and per_row else None
        top, step = layout or (0, 1)
        byte_rows = BYTE_SCAN_VALUES // per_row if layout else 0

        def check_one(feeds: Any) -> tuple[dict[str, np.ndarray], int]:
            if type(feeds) is dict and len(feeds) == 1:
                arr = feeds.get(name)
                if type(arr) is ndarray and arr.dtype is dtype and arr.ndim == rank:
                    shape = arr.shape
                    rows = shape[0]
                    if shape[1:] == tail and 0 < rows <= max_rows:
                        if not scan:
                            return feeds, rows
                        if rows <= byte_rows:
                            high = arr.tobytes()[top::step]
                            if 0x7F not in high and 0xFF not in high:
                                return feeds, rows
                        elif isfinite(vdot(arr, arr)):
                            return feeds, rows
            return full(feeds)

        return check_one

    def check_many(feeds: Any) -> tuple[dict[str, np.ndarray], int]:
        if type(feeds) is not dict or len(feeds) != len(fast):
            return full(feeds)
        batch = -1
        elements = 0
        for name, dtype, rank, tail, is_float in fast:
            arr = feeds.get(name)
            if type(arr) is not ndarray or arr.dtype is not dtype or arr.ndim != rank:
                return full(feeds)
            shape = arr.shape
            if shape[1:] != tail or shape[0] == 0 or (batch != -1 and shape[0] != batch):
                return full(feeds)
            batch = shape[0]
            elements += arr.size
            if is_float and check_values and not isfinite(vdot(arr, arr)):
                return full(feeds)
        if batch > max_batch or elements > max_elements:
            return full(feeds)
        return feeds, batch

    return check_many


def encode_outputs(
    specs: dict[str, TensorSpec], names: list[str], arrays: list[np.ndarray]
) -> list[dict[str, Any]]:
    """Model outputs as v2 response tensors (flat row-major data)."""
    out = []
    for name, arr in zip(names, arrays, strict=True):
        arr = np.asarray(arr)
        spec = specs.get(name)
        datatype = spec.datatype if spec else datatype_of(arr)
        data = arr.astype(str).ravel().tolist() if datatype == "BYTES" else arr.ravel().tolist()
        if arr.dtype.kind == "f":
            data = [None if not math.isfinite(v) else v for v in data]
        out.append({"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data})
    return out


def datatype_of(arr: np.ndarray) -> str:
    for name, dtype in KSERVE_TO_NUMPY.items():
        if name != "BYTES" and arr.dtype == np.dtype(dtype):
            return name
    return "BYTES"
