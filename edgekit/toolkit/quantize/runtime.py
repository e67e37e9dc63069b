"""Running a variant with onnxruntime on many rows, in chunks the model accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import CheckFailedError
from edgekit.toolkit.quantize.feeds import rows_of, take

CHUNK_ROWS = 256


def session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def chunk_rows(signature: dict[str, Any]) -> tuple[int, bool]:
    """Rows per run, and whether the model fixes its batch size."""
    first = [i["shape"][0] for i in signature["inputs"] if i["shape"]]
    fixed = [d for d in first if isinstance(d, int) and d > 0]
    return (fixed[0], True) if fixed else (CHUNK_ROWS, False)


def _padded(
    feeds: dict[str, np.ndarray], start: int, step: int
) -> tuple[dict[str, np.ndarray], int]:
    """A chunk of exactly `step` rows (the last one padded by repeating its final row)."""
    chunk = take(feeds, start, start + step)
    n = rows_of(chunk)
    if n == step:
        return chunk, n
    pad = {k: np.concatenate([v, np.repeat(v[-1:], step - n, axis=0)]) for k, v in chunk.items()}
    return pad, n


def run(
    path: Path, feeds: dict[str, np.ndarray], signature: dict[str, Any], what: str
) -> dict[str, np.ndarray]:
    """All outputs for all rows; a model that fails to load or run is a failed check (exit 1)."""
    try:
        sess = session(path)
        names = [o.name for o in sess.get_outputs()]
        step, fixed = chunk_rows(signature)
        rows = rows_of(feeds)
        parts: list[list[np.ndarray]] = []
        for start in range(0, rows, step):
            if fixed:
                chunk, n = _padded(feeds, start, step)
                parts.append([o[:n] for o in sess.run(None, chunk)])
            else:
                parts.append(sess.run(None, take(feeds, start, start + step)))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise CheckFailedError(
            f"onnxruntime cannot run {what}: {type(exc).__name__}: {str(exc)[:600]}"
        ) from exc
    if not parts:
        raise CheckFailedError(f"no rows to run {what} on")
    return {n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(names)}
