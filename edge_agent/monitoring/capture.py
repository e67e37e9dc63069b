"""Optional data capture: a fraction of requests and responses to bounded, rotating JSON-lines
files (``capture-0.jsonl`` newest … ``capture-{files-1}.jsonl`` oldest), for re-training.
Runs on the monitor thread, never on the inference path. Off by default.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

# A captured request, as the monitor expands it (``Monitor._expanded``): (received, started,
# finished, rows, inference id, feeds by name, outputs in ``names`` order, names)
Captured = tuple[float, float, float, int, str, dict[str, np.ndarray], list[np.ndarray], list[str]]


class Capture:
    def __init__(
        self,
        folder: str | Path,
        fraction: float,
        max_bytes: int,
        files: int,
        seed: int | None = None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fraction = fraction
        self.max_bytes = max_bytes
        self.files = max(1, files)
        self.written = 0
        self._rng = random.Random(seed)

    @property
    def current(self) -> Path:
        return self.folder / "capture-0.jsonl"

    def maybe_write(self, batch: list[Captured]) -> None:
        lines = []
        for _received, _s, _f, _rows, iid, feeds, outputs, names in batch:
            if self._rng.random() >= self.fraction:
                continue
            record = {
                "inference_id": iid,
                "time": time.time(),
                "inputs": {k: _jsonable(v) for k, v in feeds.items()},
                "outputs": {n: _jsonable(v) for n, v in zip(names, outputs, strict=True)},
            }
            lines.append(json.dumps(record, separators=(",", ":")) + "\n")
        for line in lines:
            self._write(line.encode("utf-8"))

    def _write(self, data: bytes) -> None:
        current = self.current
        if current.exists() and current.stat().st_size + len(data) > self.max_bytes:
            self._rotate()
        with open(current, "ab") as fh:
            fh.write(data)
        self.written += 1

    def _rotate(self) -> None:
        oldest = self.folder / f"capture-{self.files - 1}.jsonl"
        oldest.unlink(missing_ok=True)
        for i in range(self.files - 2, -1, -1):
            src = self.folder / f"capture-{i}.jsonl"
            if src.exists():
                src.replace(self.folder / f"capture-{i + 1}.jsonl")


def _jsonable(arr: Any) -> Any:
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        cells: Any = np.where(np.isfinite(arr), arr.astype(object), None)
        return cells.tolist()
    return arr.astype(str).tolist() if arr.dtype.kind in "USO" else arr.tolist()
