"""New data for a triggered run: the agents' captured requests (edge_agent.monitoring.capture JSON lines,
``capture-*.jsonl``) gathered from the devices' capture folders, turned back into a data set with
the model's input names, labelled when labels are given, and split into rows to train on and
rows to judge the new version with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError


@dataclass
class Gathered:
    frame: Any  # pandas DataFrame, one column per model input (tabular models)
    files: list[Path]
    records: int  # captured requests read (before removing repeats)

    @property
    def rows(self) -> int:
        return len(self.frame)


def capture_files(patterns: Iterable[str | Path]) -> list[Path]:
    """Files named by folders (searched for capture-*.jsonl at any depth) or glob patterns."""
    found: list[Path] = []
    for pattern in patterns:
        p = Path(pattern)
        if p.is_dir():
            found += sorted(p.rglob("capture-*.jsonl"))
        elif p.is_file():
            found.append(p)
        else:
            anchor = Path(p.anchor or ".")
            rel = str(p.relative_to(anchor)) if p.is_absolute() else str(p)
            found += sorted(f for f in anchor.glob(rel) if f.is_file())
    return sorted(set(found))


def _cell(value: Any) -> Any:
    """One captured tensor row as a scalar cell (tabular inputs are [1] or [1, 1])."""
    arr = np.asarray(value, dtype=object).ravel()
    if arr.size != 1:
        raise BadInputError(
            "captured inputs hold tensors, not table columns",
            hint="the closed loop gathers captures for tabular models; pass your own data set",
        )
    v = arr[0]
    return np.nan if v is None else v


def _rows(inputs: dict[str, Any], columns: list[str] | None) -> list[dict[str, Any]]:
    """A captured request's rows as {column: value}: one input per column, or one [N, k]
    features tensor unpacked with the bundle's column names."""
    if len(inputs) == 1 and columns:
        arr = np.asarray(next(iter(inputs.values())), dtype=object)
        if arr.ndim == 2 and arr.shape[1] == len(columns) and len(columns) > 1:
            return [
                {c: (np.nan if v is None else v) for c, v in zip(columns, row, strict=True)}
                for row in arr
            ]
    return [
        {k: _cell(np.asarray(v, dtype=object)[i]) for k, v in inputs.items()}
        for i in range(_batch(inputs))
    ]


def gather(
    patterns: Iterable[str | Path], since: float | None = None, columns: list[str] | None = None
) -> Gathered:
    """Every captured request newer than `since`, one row per distinct input (repeats dropped).
    `columns`: the bundle's table columns (signature.columns), for models fed one tensor."""
    import pandas as pd

    files = capture_files(patterns)
    rows: list[dict[str, Any]] = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut by rotation or a crash
                if since is not None and float(rec.get("time", 0)) < since:
                    continue
                rows += _rows(rec.get("inputs") or {}, columns)
    frame = pd.DataFrame(rows)
    n = len(frame)
    if n:
        frame = frame.drop_duplicates(ignore_index=True)
        for col in frame.columns:
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum():
                frame[col] = converted
    return Gathered(frame, files, n)


def _batch(inputs: dict[str, Any]) -> int:
    for v in inputs.values():
        return len(v) if isinstance(v, list) else 1
    return 0


Labeler = Callable[[Any], Any]


def label(frame: Any, labels: Labeler | Path | None, column: str) -> Any:
    """Add the `column` of labels: from a function of the frame (e.g. a human-review export or,
    in the simulation, the ground truth), or a CSV holding the same input columns plus `column`."""
    import pandas as pd

    if labels is None:
        return frame
    if callable(labels):
        values = np.asarray(labels(frame.copy()))
        if values.shape[0] != len(frame):
            raise BadInputError(
                f"the labels function returned {values.shape[0]} labels for {len(frame)} rows"
            )
        out = frame.copy()
        out[column] = values
    else:
        table = pd.read_csv(labels)
        if column not in table.columns:
            raise BadInputError(f"labels file {labels} has no {column!r} column")
        keys = [c for c in frame.columns if c in table.columns]
        out = frame.merge(table[keys + [column]].drop_duplicates(keys), on=keys, how="left")
    return out[out[column].notna()].reset_index(drop=True)


def split(frame: Any, holdout: float) -> tuple[Any, Any]:
    """Rows to train on and rows to evaluate on, by a hash of each row (stable across runs)."""
    digests = [
        int(hashlib.sha256(json.dumps(r, default=str).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        for r in frame.astype(object).to_dict("records")
    ]
    held = np.asarray(digests) < holdout
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)
