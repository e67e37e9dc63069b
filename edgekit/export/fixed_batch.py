"""Imported ONNX models whose batch dimension is fixed at 1 (Keras/tf2onnx exports, many model zoo
files): parity, evaluation, benchmarks and serving all run more than one row at a time, so the
leading 1 of every input and output is made symbolic — but only when the graph then gives, for a
few rows at once, what it gives for each row alone. A graph that bakes the 1 in (a Reshape to
[1, -1]) is refused with that reason instead of failing later on some batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH = "batch"
CHECK_ROWS = 3


def _leading_one(value_info: Any) -> bool:
    dims = value_info.type.tensor_type.shape.dim
    return bool(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == 1


def fixed_inputs(model: Any) -> list[str]:
    """The graph inputs (not initializers) whose leading dimension is the literal 1, when every
    input has one; empty otherwise."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if inputs and all(_leading_one(i) for i in inputs):
        return [i.name for i in inputs]
    return []


def freed(model: Any) -> Any:
    """A copy with the leading 1 of every input and output made the symbolic ``batch``
    (intermediate shapes, which may carry the 1, are left to inference)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for value in [*copy.graph.input, *copy.graph.output]:
        if _leading_one(value):
            value.type.tensor_type.shape.dim[0].dim_param = BATCH
    del copy.graph.value_info[:]
    return copy


def batch_mismatch(original: Any, candidate: Any, feeds: dict[str, np.ndarray]) -> str | None:
    """Run the first rows one at a time on the original and together on the candidate: None
    when every output agrees, else what went wrong."""
    import onnxruntime as ort

    rows = min(CHECK_ROWS, *(len(v) for v in feeds.values()))
    if rows < 2:
        return None
    try:
        one = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
        many = ort.InferenceSession(
            candidate.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        together = many.run(None, {k: v[:rows] for k, v in feeds.items()})
        alone = [one.run(None, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(rows)]
    except Exception as exc:  # onnxruntime's errors have no common base
        return f"it fails on {rows} rows at once: {str(exc).splitlines()[0][:300]}"
    for j, out in enumerate(together):
        expected = np.concatenate([a[j] for a in alone])
        if out.shape != expected.shape:
            return f"output {j} has shape {list(out.shape)} for {rows} rows, not {list(expected.shape)}"
        if out.dtype.kind in "fc":
            if not np.allclose(out, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
                return f"output {j} differs between {rows} rows at once and one at a time"
        elif not np.array_equal(out, expected):
            return f"output {j} differs between {rows} rows at once and one at a time"
    return None
