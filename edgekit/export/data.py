"""Sample data for export: CSV, Parquet, NPY or NPZ, checked to be what its extension says."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edge_agent.hashing import sha256_file

SUFFIXES = (".csv", ".parquet", ".pq", ".npy", ".npz")


@dataclass
class SampleData:
    """Tabular data (a pandas DataFrame) or named tensors (dict of arrays)."""

    path: Path
    frame: Any | None = None  # pandas.DataFrame
    tensors: dict[str, np.ndarray] | None = None
    target: np.ndarray | None = None
    # a `target_column` the table does not hold (export drops the label only if present): named
    # when the columns then do not match the model's, since a typo there is the likely cause
    absent_target: str | None = None

    @property
    def named(self) -> dict[str, np.ndarray]:
        """The tensors of tensor data (frame is None exactly when tensors is set)."""
        assert self.tensors is not None, "tabular data has no named tensors"
        return self.tensors

    @property
    def rows(self) -> int:
        if self.frame is not None:
            return len(self.frame)
        return int(next(iter(self.named.values())).shape[0])

    def head(self, n: int) -> SampleData:
        if self.frame is not None:
            return SampleData(
                self.path,
                frame=self.frame.iloc[:n].reset_index(drop=True),
                target=None if self.target is None else self.target[:n],
                absent_target=self.absent_target,
            )
        return SampleData(
            self.path,
            tensors={k: v[:n] for k, v in self.named.items()},
            target=None if self.target is None else self.target[:n],
        )

    def with_text_columns(self, columns: list[str]) -> SampleData:
        """The data with `columns` as text. A CSV reader turns a column of codes such as
        06000, 75001 into numbers (6000: the leading zero is gone), so such columns are read
        again from the file as written; other formats keep their types, and a text column
        left numeric is the converter's to refuse."""
        frame = self.frame
        numeric = [
            c for c in columns if frame is not None and c in frame and frame[c].dtype.kind in "fiub"
        ]
        if frame is None or not numeric or self.path.suffix.lower() != ".csv":
            return self
        import pandas as pd

        raw = pd.read_csv(self.path, usecols=numeric, dtype=str).iloc[: len(frame)]
        frame = frame.copy()
        for col in numeric:
            frame[col] = _text_as_object(raw[col]).to_numpy()
        return SampleData(
            self.path, frame=frame, target=self.target, absent_target=self.absent_target
        )

    def fingerprint(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "path": str(self.path),
            "sha256": sha256_file(self.path),
            "rows": self.rows,
        }
        if self.frame is not None:
            info["columns"] = [str(c) for c in self.frame.columns]
        else:
            info["tensors"] = {k: list(v.shape) for k, v in self.named.items()}
        return info


def column_mismatch(expected: list[str], given: list[str], limit: int = 10) -> str | None:
    """'missing [...]; unexpected [...]' when the columns differ, else None.

    Shared by export and quantize's calibration so both name a mismatch the same way; long
    lists are cut at `limit` names.
    """

    def cut(names: list[str]) -> str:
        return f"{names[:limit]}{' …' if len(names) > limit else ''}"

    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    parts = []
    if missing:
        parts.append(f"missing {cut(missing)}")
    if extra:
        parts.append(f"unexpected {cut(extra)}")
    return "; ".join(parts) or None


def _check_magic(path: Path, suffix: str) -> None:
    """Refuse a file whose first bytes contradict its extension, before a reader guesses."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    expected = {".parquet": b"PAR1", ".pq": b"PAR1", ".npy": b"\x93NUMPY", ".npz": b"PK"}.get(
        suffix
    )
    wrong = (expected and not head.startswith(expected)) or (suffix == ".csv" and b"\x00" in head)
    if wrong:
        raise BadInputError(
            f"{path} is not a {suffix[1:].upper()} file (its first bytes are {head[:6]!r})",
            hint="check the file or give it the extension of its real format",
        )


def _text_as_object(series: Any) -> Any:
    """Text columns as object dtype with NaN for missing, whatever the reader produced
    (pandas' `str` dtype, Arrow strings, categoricals, None): the form scikit-learn sees
    when it is trained on a DataFrame, so the native side of parity sees the same."""
    import pandas as pd

    if series.dtype.kind in "fiub":
        return series
    values = series.astype(object)
    return values.where(pd.notna(values), np.nan)


def _split_npy_column(
    path: Path, table: np.ndarray, target_column: str
) -> tuple[np.ndarray, np.ndarray]:
    """An NPY file has no column names: --target-column is a column index (-1 for the last)."""
    try:
        index = int(target_column)
    except ValueError:
        raise BadInputError(
            f"{path} is an NPY array without column names; `target_column` {target_column!r} "
            "must be a column index",
            hint="pass the label's column index (for example -1 for the last column), "
            "or save an NPZ with the label under its own key",
        ) from None
    if table.ndim != 2 or not -table.shape[1] <= index < table.shape[1]:
        raise BadInputError(
            f"`target_column` {index} is not a column of the {table.shape} array in {path}",
            hint="an NPY label column needs a 2-D table",
        )
    index %= table.shape[1]
    return np.delete(table, index, axis=1), table[:, index]


def _refuse_other_separator(path: Path, frame: Any) -> None:
    """A CSV written with ';' or tabs (Excel in many locales) reads as one column whose name
    holds every header: say so, rather than list every column as missing."""
    if path.suffix.lower() != ".csv" or frame.shape[1] != 1:
        return
    header = str(frame.columns[0])
    sep = next((s for s in (";", "\t", "|") if s in header), None)
    if sep is not None:
        shown = "tab" if sep == "\t" else repr(sep)
        raise BadInputError(
            f"{path} is separated by {shown}, not commas: it reads as one column {header[:60]!r}",
            hint="save it with commas (pandas' to_csv default, or 'CSV UTF-8 (comma delimited)' "
            "in a spreadsheet), or as Parquet",
        )


def load(path: str | Path, target_column: str | None = None) -> SampleData:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(
            f"data file {path} does not exist",
            hint="check the `data` path (CSV, Parquet, NPY, NPZ)",
        )
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise BadInputError(
            f"data file {path} has an unsupported type {suffix!r}",
            hint="use CSV, Parquet, NPY or NPZ",
        )
    _check_magic(path, suffix)
    if suffix in (".csv", ".parquet", ".pq"):
        import pandas as pd

        try:
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except (UnicodeDecodeError, ValueError, pd.errors.ParserError, OSError) as exc:
            raise BadInputError(f"cannot read {path} as {suffix[1:].upper()}: {exc}") from exc
        if frame.empty:
            raise BadInputError(f"data file {path} has no rows")
        frame.columns = [str(c) for c in frame.columns]
        _refuse_other_separator(path, frame)
        target = None
        if target_column is not None and target_column in frame.columns:
            target = _text_as_object(frame[target_column]).to_numpy()
            frame = frame.drop(columns=[target_column])
        if frame.shape[1] == 0:
            raise BadInputError(f"data file {path} has no feature columns")
        for col in frame.columns:
            if frame[col].dtype.kind not in "fiub":
                frame[col] = _text_as_object(frame[col])
        absent = target_column if target_column is not None and target is None else None
        return SampleData(path, frame=frame, target=target, absent_target=absent)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise BadInputError(
            f"cannot read {path}: {exc}",
            hint="object arrays are refused (they need pickle); save plain numeric arrays",
        ) from exc
    if suffix == ".npy":
        tensors = {"input": loaded}
    else:
        with loaded:
            tensors = {k: loaded[k] for k in loaded.files}
    if not tensors or any(a.ndim == 0 for a in tensors.values()):
        raise BadInputError(f"{path} must hold arrays with a leading batch axis")
    target = None
    if target_column is not None:
        if suffix == ".npz" and target_column in tensors:
            target = tensors.pop(target_column)
            if not tensors:
                raise BadInputError(f"{path} holds only the target array {target_column!r}")
        elif suffix == ".npy":
            tensors["input"], target = _split_npy_column(path, tensors["input"], target_column)
    rows = {a.shape[0] for a in tensors.values()}
    if len(rows) != 1:
        raise BadInputError(f"arrays in {path} have different numbers of rows: {sorted(rows)}")
    return SampleData(path, tensors=tensors, target=target)
