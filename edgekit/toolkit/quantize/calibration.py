"""Calibration data for static quantization: from a file (what export accepts) or the
bundle's stored samples, checked against the input signature, served in batches through
onnxruntime's CalibrationDataReader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError, BundleError
from edge_agent.hashing import sha256_file
from edgekit.toolkit.quantize.feeds import load_feeds, rows_of, take

# Fewer rows than this give ranges that depend on which rows happened to be picked.
MIN_ROWS = 32
MAX_ROWS = 512
BATCH_ROWS = 16


@dataclass
class CalibrationSet:
    feeds: dict[str, np.ndarray]
    source: dict[str, Any]

    @property
    def rows(self) -> int:
        return rows_of(self.feeds)


def load(
    bundle: Bundle,
    path: str | Path | None = None,
    *,
    target_column: str | None = None,
    min_rows: int = MIN_ROWS,
    max_rows: int = MAX_ROWS,
) -> CalibrationSet:
    """Rows for calibration: `path` if given, else the bundle's stored samples."""
    if path is not None:
        feeds, _, _ = load_feeds(bundle.signature, path, target_column, "calibration data")
        source: dict[str, Any] = {
            "kind": "file",
            "path": str(Path(path).resolve()),
            "sha256": sha256_file(path),
            "target_column": target_column,
        }
        where = f"{path}"
        fix = "give a --calibration file with more rows"
    else:
        try:
            feeds = bundle.sample_inputs()
        except BundleError as exc:
            raise BadInputError(
                f"static quantization needs calibration data and {exc.message}",
                hint="pass `calibration` FILE (CSV, Parquet, NPY or NPZ)",
            ) from exc
        source = {"kind": "samples", "file": bundle.manifest.get("samples")}
        where = "the bundle's stored samples"
        fix = "pass --calibration FILE with more rows"
    rows = rows_of(feeds)
    if rows < min_rows:
        raise BadInputError(
            f"calibration data has {rows} rows ({where}); static quantization needs at least "
            f"{min_rows}",
            hint=fix,
        )
    used = min(rows, max_rows)
    source.update(rows=used, rows_available=rows)
    return CalibrationSet(take(feeds, 0, used), source)


def complete_rows(calib: CalibrationSet, why: str, min_rows: int = MIN_ROWS) -> CalibrationSet:
    """The rows without missing values (NaN) in any float input, for calibrators that cannot
    take them; refused when too few are left."""
    keep = np.ones(calib.rows, dtype=bool)
    for arr in calib.feeds.values():
        if arr.dtype.kind == "f":
            keep &= ~np.isnan(arr.reshape(len(arr), -1)).any(axis=1)
    dropped = int((~keep).sum())
    if not dropped:
        return calib
    left = int(keep.sum())
    if left < min_rows:
        raise BadInputError(
            f"calibration data: {dropped} of {calib.rows} rows have missing values (NaN) and "
            f"{why}; {left} complete rows are left, fewer than the {min_rows} needed",
            hint="use `calibrate` minmax or entropy, or give `calibration` FILE with more "
            "complete rows",
        )
    source = {
        **calib.source,
        "rows": left,
        "rows_dropped_missing_values": dropped,
        "why_dropped": why,
    }
    return CalibrationSet({k: v[keep] for k, v in calib.feeds.items()}, source)


def batch_rows(signature: dict[str, Any]) -> tuple[int, bool]:
    """Rows per calibration batch, and whether the model fixes its batch size."""
    first = [i["shape"][0] for i in signature["inputs"] if i["shape"]]
    fixed = [d for d in first if isinstance(d, int) and d > 0]
    return (fixed[0], True) if fixed else (BATCH_ROWS, False)


def reader_for(signature: dict[str, Any], feeds: dict[str, np.ndarray]) -> FeedsReader:
    batch, fixed = batch_rows(signature)
    return FeedsReader(feeds, batch, fixed=fixed)


class FeedsReader(CalibrationDataReader):
    """Hands out the calibration rows batch by batch."""

    def __init__(
        self, feeds: dict[str, np.ndarray], batch: int = BATCH_ROWS, *, fixed: bool = False
    ) -> None:
        self.feeds = feeds
        self.batch = max(1, batch)
        self.rows = rows_of(feeds)
        # Whole batches only: a fixed batch axis needs them, and the entropy and percentile
        # calibrators stack per-batch arrays, which fails when the last batch is shorter.
        if fixed or self.rows >= self.batch:
            self.rows -= self.rows % self.batch
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self.rows:
            return None
        batch = take(self.feeds, self._next, self._next + self.batch)
        self._next += self.batch
        return batch
