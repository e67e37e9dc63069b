"""Data file -> onnxruntime feeds for a bundle's input signature, with errors that say what
is wrong (missing or unexpected columns, shape, dtype) and how to fix it.

Calibration (quantize) and evaluation share it, and accept what export accepts:
CSV, Parquet, NPY or NPZ (edgekit.export.data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edge_agent.serving.validation import RequestError, by_onnx_name, input_aliases
from edgekit.export.data import column_mismatch

NUMERIC_KINDS = "fiub"


def _fmt_shape(shape: list[Any]) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"


def cast(arr: np.ndarray, dtype: str, name: str, purpose: str) -> np.ndarray:
    """Cast `arr` to the input's dtype where that loses nothing that matters, else refuse."""
    arr = np.asarray(arr)
    if dtype == "string":
        return arr.astype(str)
    target = np.dtype(dtype)
    kind = arr.dtype.kind
    problem = None
    if kind not in NUMERIC_KINDS:
        problem = f"holds {arr.dtype} values (text?)"
    elif target.kind in "iu" and kind == "f":
        finite = np.isfinite(arr)
        if not finite.all() or not np.all(arr[finite] == np.round(arr[finite])):
            problem = "holds fractional or missing values"
    elif target.kind == "b" and not np.isin(arr, (0, 1)).all():
        problem = "holds values other than 0/1"
    if problem:
        raise BadInputError(
            f"{purpose}: input {name!r} must be {dtype} but the data {problem}",
            hint=f"give {dtype} values for {name!r}, as in the data the model was exported with",
        )
    return arr.astype(target)


def _check_shape(arr: np.ndarray, spec: dict[str, Any], purpose: str) -> None:
    shape = spec["shape"]
    ok = arr.ndim == len(shape) and all(
        not isinstance(d, int) or d == a for d, a in zip(shape[1:], arr.shape[1:], strict=False)
    )
    if not ok:
        raise BadInputError(
            f"{purpose}: input {spec['name']!r} has shape {tuple(arr.shape)}; "
            f"the model takes {_fmt_shape(shape)} (first axis = rows)",
            hint="give arrays shaped like the data the model was exported with",
        )


def _tabular_columns(signature: dict[str, Any]) -> list[dict[str, Any]]:
    return list(signature.get("columns") or [])


def _from_frame(signature: dict[str, Any], frame: Any, purpose: str) -> dict[str, np.ndarray]:
    inputs = signature["inputs"]
    columns = _tabular_columns(signature)
    wanted = [c["name"] for c in columns] if columns else [i["name"] for i in inputs]
    have = [str(c) for c in frame.columns]
    frame = frame.rename(columns={c: str(c) for c in frame.columns})
    mismatch = column_mismatch(wanted, have)
    if mismatch:
        raise BadInputError(
            f"{purpose}: the columns do not match the model's: {mismatch}",
            hint="give the columns the model was exported with; name the label with `target_column`",
        )
    names = [i["name"] for i in inputs]
    # an input's column: the user's name where skl2onnx renamed it (signature "column")
    column_of = {i["name"]: i.get("column") or i["name"] for i in inputs}
    if set(column_of.values()) == set(wanted):
        # One ONNX input per column (a ColumnTransformer pipeline).
        feeds = {}
        for spec in inputs:
            series = frame[column_of[spec["name"]]]
            col = series.to_numpy()
            if spec["dtype"] == "string":
                col = series.astype(object).where(series.notna(), "").to_numpy()
            arr = cast(col, spec["dtype"], spec["name"], purpose)
            arr = arr.reshape(len(frame), *([1] * (len(spec["shape"]) - 1)))
            _check_shape(arr, spec, purpose)
            feeds[spec["name"]] = arr
        return feeds
    if len(inputs) != 1:
        raise BadInputError(
            f"{purpose}: cannot map a table onto the model's inputs {names}",
            hint="give an NPZ file keyed by input name",
        )
    spec = inputs[0]
    try:
        matrix = frame[wanted].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInputError(
            f"{purpose}: input {spec['name']!r} takes numbers but a column holds text: {exc}",
            hint="give the numeric columns the model was exported with",
        ) from exc
    arr = cast(matrix, spec["dtype"], spec["name"], purpose)
    _check_shape(arr, spec, purpose)
    return {spec["name"]: arr}


def _from_tensors(
    signature: dict[str, Any], tensors: dict[str, np.ndarray], purpose: str
) -> dict[str, np.ndarray]:
    inputs = signature["inputs"]
    names = [i["name"] for i in inputs]
    try:
        tensors = by_onnx_name(tensors, input_aliases(signature))
    except RequestError as exc:
        raise BadInputError(f"{purpose}: {exc.message}") from None
    if all(n in tensors for n in names):
        chosen = {n: tensors[n] for n in names}
    elif len(inputs) == 1 and len(tensors) == 1:
        chosen = {names[0]: next(iter(tensors.values()))}
    else:
        missing = [n for n in names if n not in tensors]
        raise BadInputError(
            f"{purpose}: the arrays {sorted(tensors)} do not provide the model's inputs "
            f"{names} (missing {missing})",
            hint="save an NPZ keyed by input name (name the label array with `target_column`)",
        )
    feeds = {}
    for spec in inputs:
        arr = np.asarray(chosen[spec["name"]])
        _check_shape(arr, spec, purpose)
        feeds[spec["name"]] = cast(arr, spec["dtype"], spec["name"], purpose)
    rows = {len(a) for a in feeds.values()}
    if len(rows) != 1:
        raise BadInputError(f"{purpose}: the inputs have different numbers of rows {sorted(rows)}")
    return feeds


def feeds_from_sample(
    signature: dict[str, Any], sample: Any, purpose: str
) -> dict[str, np.ndarray]:
    """Feeds from an edgekit.export.data.SampleData."""
    if sample.frame is not None:
        if signature.get("input_kind") == "tensor" and len(signature["inputs"]) == 1:
            spec = signature["inputs"][0]
            frame = sample.frame
            if any(frame[c].dtype.kind not in NUMERIC_KINDS for c in frame.columns):
                raise BadInputError(
                    f"{purpose}: the model takes numeric tensors; the data has text columns"
                )
            arr = frame.to_numpy(dtype=np.float64)
            _check_shape(arr, spec, purpose)
            return {spec["name"]: cast(arr, spec["dtype"], spec["name"], purpose)}
        return _from_frame(signature, sample.frame, purpose)
    return _from_tensors(signature, sample.tensors, purpose)


def load_feeds(
    signature: dict[str, Any], path: str | Path, target_column: str | None, purpose: str
) -> tuple[dict[str, np.ndarray], np.ndarray | None, Any]:
    """Read a data file and return (feeds, target or None, SampleData)."""
    from edgekit.export import data as data_io

    text = [c["name"] for c in _tabular_columns(signature) if c.get("kind") == "categorical"]
    sample = data_io.load(path, target_column).with_text_columns(text)
    if target_column is not None and sample.target is None:
        raise BadInputError(
            f"{purpose}: {path} has no column or array named {target_column!r}",
            hint="check `target_column`",
        )
    return feeds_from_sample(signature, sample, purpose), sample.target, sample


def rows_of(feeds: dict[str, np.ndarray]) -> int:
    return int(len(next(iter(feeds.values())))) if feeds else 0


def take(feeds: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {k: v[start:stop] for k, v in feeds.items()}
