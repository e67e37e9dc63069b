"""``edge-agent batch``: the device-side batch transform. A file or a folder of inputs in,
outputs out, in chunks no bigger than the serving caps, through the same validated path as
every request (so data quality and drift are counted the same way).

Inputs: ``.npz`` (arrays keyed by input name), ``.npy`` (a single-input model), ``.json``
(a KServe v2 request, or ``{input: nested list}``), ``.jsonl`` (one ``{input: row}`` per line)
and ``.csv`` (a header of input names, one row per line; for tabular bundles). Outputs: one
``.npz`` per input file (arrays keyed by output name, plus ``__inference_ids__``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent import atomic, owned
from edge_agent.errors import BadInputError
from edge_agent.progress import progress
from edge_agent.serving.engine import Engine
from edge_agent.serving.validation import RequestError, Validator, by_onnx_name

SUFFIXES = (".npz", ".npy", ".json", ".jsonl", ".csv")


def read_inputs(path: Path, engine: Engine) -> dict[str, np.ndarray]:
    """Arrays keyed by ONNX input name; files may name them by the user's column names."""
    validator = engine.active.validator
    specs = validator.inputs
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        elif suffix == ".npy":
            if len(specs) != 1:
                raise BadInputError(
                    f"{path}: .npy holds one array but the model takes {list(specs)}"
                )
            arrays = {next(iter(specs)): np.load(path, allow_pickle=False)}
        elif suffix == ".json":
            body = json.loads(path.read_text("utf-8"))
            if not isinstance(body, dict):
                raise BadInputError(
                    f"{path}: holds a JSON {_json_kind(body)}, not an object",
                    hint='write {"input name": [rows...]} or a KServe v2 request {"inputs": [...]}',
                )
            if "inputs" in body:
                feeds, _wanted, _id = engine.active.validator.parse_kserve(body)
                return feeds
            arrays = {k: np.asarray(v) for k, v in body.items()}
        elif suffix == ".jsonl":
            arrays = _read_jsonl(path, validator)
        elif suffix == ".csv":
            arrays = _read_csv(path, validator)
        else:
            raise BadInputError(f"{path}: unsupported input type; use one of {', '.join(SUFFIXES)}")
    except (OSError, ValueError, KeyError) as exc:
        raise BadInputError(f"cannot read inputs from {path}: {exc}") from exc
    except RequestError as exc:
        raise BadInputError(f"{path}: {exc.message}") from exc
    arrays = by_onnx_name(arrays, validator.aliases)
    return {k: _shape_rows(v, specs[k].shape) if k in specs else v for k, v in arrays.items()}


def _json_kind(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _read_jsonl(path: Path, validator: Validator) -> dict[str, np.ndarray]:
    """One JSON object a line, keyed by input (or column) name."""
    rows = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict):
                raise BadInputError(
                    f"{path}:{number}: holds a JSON {_json_kind(row)}, not an object",
                    hint='write one {"input or column name": value, ...} object a line',
                )
            rows.append(row)
    keys = rows[0].keys() if rows else ()
    arrays = {}
    for name in validator.inputs:
        key = validator.key_for(name, keys) or name
        missing = next((i for i, r in enumerate(rows) if key not in r), None)
        if missing is not None:
            raise BadInputError(f"{path}: row {missing + 1} has no {key!r}")
        arrays[name] = np.asarray([r[key] for r in rows])
    return arrays


def _shape_rows(arr: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    # A 1-D column for a [None, 1] input is the common tabular case.
    if arr.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        return arr.reshape(-1, 1)
    return arr


def _read_csv(path: Path, validator: Validator) -> dict[str, np.ndarray]:
    specs = validator.inputs
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise BadInputError(f"{path} has no rows")
    header = rows[0].keys()
    missing = [validator.columns.get(n, n) for n in specs if validator.key_for(n, header) is None]
    if missing:
        raise BadInputError(f"{path} lacks column(s) {missing} the model takes")
    out = {}
    for name, spec in specs.items():
        key = validator.key_for(name, header)
        values = [r[key] for r in rows]
        if spec.is_string:
            out[name] = np.asarray([_MISSING_TEXT if v in NA_VALUES else v for v in values], str)
        else:
            try:
                out[name] = np.asarray([_number(v) for v in values], dtype=np.float64)
            except ValueError as exc:
                raise BadInputError(
                    f"{path}: column {key!r} must hold numbers: {exc}",
                    hint="give numbers, true/false, or leave the cell empty for a missing value",
                ) from None
    return out


# What pandas reads as missing in a CSV (read_csv's default na_values), so a file that export or
# evaluate read gives the agent the same rows: NaN for a number, "" (the bundle's missing text)
# for text. True/False are 1/0, as pandas' bool columns are to the model.
NA_VALUES = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip
_MISSING_TEXT = ""
_BOOLS = {"true": 1.0, "false": 0.0}


def _number(cell: str) -> float:
    if cell in NA_VALUES:
        return float("nan")
    word = cell.strip().lower()
    return _BOOLS[word] if word in _BOOLS else float(cell)


def input_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise BadInputError(f"{path} holds no input files ({', '.join(SUFFIXES)})")
        return files
    if not path.is_file():
        raise BadInputError(f"input {path} does not exist")
    return [path]


IDS_KEY = "__inference_ids__"


def _is_batch_output(path: Path) -> bool:
    """An .npz this command wrote: it carries the inference ids beside the outputs."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return f"{IDS_KEY}.npy" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _npz_path(target: Path) -> Path:
    return target.with_suffix(".npz") if not target.suffix else target


def output_paths(files: list[Path], source: Path, output: Path, protect: list[Path]) -> list[Path]:
    """Where each input's outputs go, refused (exit 2, nothing written) when that would replace
    a file this command did not write, an input, or put outputs into the current folder."""
    inputs = [*files, *protect]
    if not source.is_dir():
        if output.name in ("", ".", "..") or output.is_dir():
            # `-o .` crashed (with_suffix on an empty name), `-o ..` wrote `...npz` and
            # `-o folder` wrote `folder.npz` beside it: none of them what was asked
            raise BadInputError(
                f"-o {output}: is a folder, but a single input file ({source.name}) writes one "
                ".npz file; nothing was changed",
                hint=f"give a file name, e.g. -o {Path(output, source.stem + '-out.npz')}",
            )
        target = _npz_path(output)
        owned.check_file(target, _is_batch_output, "a batch output", inputs)
        return [target]
    owned.check_location(output, [source, *protect])
    targets = [output / f"{f.stem}.npz" for f in files]
    seen: dict[Path, Path] = {}
    for f, target in zip(files, targets, strict=True):
        if target in seen:
            raise BadInputError(
                f"{seen[target].name} and {f.name} would both write {target}",
                hint="rename one of the inputs",
            )
        seen[target] = f
        owned.check_file(target, _is_batch_output, "a batch output", inputs)
    return targets


def transform(
    engine: Engine,
    source: Path,
    output: Path,
    *,
    show_progress: bool = True,
    protect: list[Path] | None = None,
) -> dict[str, Any]:
    """Run every input file through the engine in chunks; write outputs atomically. `protect`
    names more inputs (the bundle) that the outputs may never replace or go into."""
    files = input_files(source)
    targets = output_paths(files, source, output, list(protect or []))
    loaded = [(f, read_inputs(f, engine)) for f in files]
    total = sum(len(next(iter(a.values()))) for _, a in loaded)
    chunk = engine.config.max_batch
    many = source.is_dir()
    if many:
        output.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"files": [], "rows": 0, "errors": 0}
    with progress(total, "batch", enabled=show_progress) as bar:
        for (file, arrays), target in zip(loaded, targets, strict=True):
            rows = len(next(iter(arrays.values())))
            collected: dict[str, list[np.ndarray]] = {}
            ids: list[str] = []
            for start in range(0, rows, chunk):
                part = {k: v[start : start + chunk] for k, v in arrays.items()}
                try:
                    iid, names, outs = engine.infer(part)
                except RequestError as exc:
                    raise BadInputError(
                        f"{file} rows {start}..{start + len(next(iter(part.values()))) - 1}: {exc.message}"
                    ) from exc
                for name, arr in zip(names, outs, strict=True):
                    collected.setdefault(name, []).append(np.asarray(arr))
                ids.extend([iid] * len(next(iter(part.values()))))
                bar.advance(len(next(iter(part.values()))))
            _write_npz(target, {k: np.concatenate(v) for k, v in collected.items()}, ids)
            summary["files"].append({"input": str(file), "output": str(target), "rows": rows})
            summary["rows"] += rows
    return summary


def _write_npz(target: Path, arrays: dict[str, np.ndarray], ids: list[str]) -> None:
    import io

    # onnxruntime returns text labels as object arrays, which np.savez pickles: the reader
    # would need allow_pickle=True. Fixed-width unicode loads with numpy's safe default.
    arrays = {k: v.astype(str) if v.dtype == object else v for k, v in arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{IDS_KEY: np.asarray(ids, dtype=str)})  # type: ignore[arg-type]  # numpy's stub
    atomic.write_bytes(target, buf.getvalue())
