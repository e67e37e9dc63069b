"""onnxruntime.quantization talks through the root logger (advice, unmatched tensors, type
guesses). edgekit keeps those lines for the record instead of the terminal, where they would
break --json and bury the result."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Keep(logging.Filter):
    def __init__(self, limit: int, width: int, below: int | None) -> None:
        super().__init__()
        self.limit, self.width, self.below = limit, width, below
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.below is not None and record.levelno >= self.below:
            return True  # let it through
        line = record.getMessage().splitlines()[0][: self.width] if record.getMessage() else ""
        if line and line not in self.lines and len(self.lines) < self.limit:
            self.lines.append(line)
        return False


@contextlib.contextmanager
def kept_root_logs(
    *, limit: int = 20, width: int = 300, below: int | None = None
) -> Iterator[list[str]]:
    """Swallow root-logger records (only those below the level `below`, when given) and yield
    the list their first lines (distinct, at most `limit`) are collected into."""
    keep = _Keep(limit, width, below)
    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield keep.lines
    finally:
        root.removeFilter(keep)
