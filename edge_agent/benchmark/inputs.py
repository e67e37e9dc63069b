"""Inputs for a benchmark: several feed sets, drawn from the bundle's stored samples or
generated to the signature with a seed, rotated during timing so a warm cache of one input
does not flatter the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_SETS = 8
_VOCABULARY = np.array(["a", "b", "c", "d"], dtype=object)

_DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


@dataclass
class InputSets:
    """Feed dicts of one batch size; `feeds[i % len(feeds)]` is the i-th query's input."""

    feeds: list[dict[str, np.ndarray]]
    batch: int
    source: str  # "samples" or "generated"
    seed: int
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.feeds)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "sets": len(self.feeds), "seed": self.seed}


def _is_batch_dim(dim: Any) -> bool:
    return dim is None or isinstance(dim, str) or (isinstance(dim, int) and dim < 0)


def _generated_shape(tensor: Mapping[str, Any], batch: int, dim_value: int) -> tuple[int, ...]:
    shape = list(tensor.get("shape") or [])
    if not shape:
        return ()
    first = shape[0]
    if not _is_batch_dim(first) and first != batch:
        raise ValueError(
            f"input {tensor['name']!r} has a fixed first dimension of {first}; "
            f"it cannot take a batch of {batch}"
        )
    rest = [dim_value if _is_batch_dim(d) else int(d) for d in shape[1:]]
    return (batch, *rest)


def _generate(
    tensor: Mapping[str, Any], shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    dtype = tensor["dtype"]
    if dtype == "string":
        return rng.choice(_VOCABULARY, size=shape)
    if dtype not in _DTYPES:
        raise ValueError(f"cannot generate inputs of dtype {dtype!r} for {tensor['name']!r}")
    np_dtype = _DTYPES[dtype]
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(np_dtype)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "uint8":
        return rng.integers(0, 256, size=shape).astype(np_dtype)
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np_dtype)
    return rng.integers(0, 10, size=shape).astype(np_dtype)


def _usable_samples(
    inputs: Sequence[Mapping[str, Any]], samples: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray] | None:
    if not samples:
        return None
    chosen = {}
    for tensor in inputs:
        arr = samples.get(tensor["name"])
        if arr is None or np.ndim(arr) == 0 or len(arr) == 0:
            return None
        chosen[tensor["name"]] = np.asarray(arr)
    rows = {len(a) for a in chosen.values()}
    return chosen if len(rows) == 1 else None


def feeds_for(
    inputs: Sequence[Mapping[str, Any]],
    batch: int,
    *,
    samples: Mapping[str, np.ndarray] | None = None,
    sets: int = DEFAULT_SETS,
    seed: int = 0,
    dim_value: int = 1,
) -> InputSets:
    """`sets` feed dicts of `batch` rows each.

    `inputs` is the signature's input list (name, dtype, shape). Stored samples are used when
    they hold every input; rows are taken in a seeded permutation so each set differs, wrapping
    when the batch is larger than the sample. Otherwise inputs are generated: floats standard
    normal, integers in [0, 10), text from a small vocabulary; symbolic dims other than the
    first become `dim_value`.
    """
    if batch < 1:
        raise ValueError(f"batch size must be >= 1, got {batch}")
    if sets < 1:
        raise ValueError(f"need at least one input set, got {sets}")
    rng = np.random.default_rng(seed)
    stored = _usable_samples(inputs, samples)
    if stored is not None:
        rows = len(next(iter(stored.values())))
        order = rng.permutation(rows)
        count = max(1, min(sets, rows // batch)) if rows >= batch else min(sets, 2)
        feeds = []
        for k in range(count):
            idx = order.take(np.arange(k * batch, (k + 1) * batch), mode="wrap")
            feeds.append({name: np.ascontiguousarray(arr[idx]) for name, arr in stored.items()})
        notes = [] if rows >= batch else [f"{rows} stored rows repeated to fill batch {batch}"]
        return InputSets(feeds, batch, "samples", seed, notes)

    shapes = {t["name"]: _generated_shape(t, batch, dim_value) for t in inputs}
    feeds = [{t["name"]: _generate(t, shapes[t["name"]], rng) for t in inputs} for _ in range(sets)]
    return InputSets(feeds, batch, "generated", seed)
