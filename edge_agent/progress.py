"""A progress bar that needs nothing: rich's when importable (workstation), else a plain one on
stderr (device). The agent must never require rich.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class _Plain:
    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __enter__(self) -> _Plain:
        return self

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last > 0.2 or self.done >= self.total:
            self._last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            end = "\r" if self._tty and self.done < self.total else "\n"
            if self._tty or self.done >= self.total:
                self.stream.write(f"{self.label} [{bar:<30}] {self.done}/{self.total}{end}")
                self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        pass


class _Rich:
    def __init__(self, total: int, label: str) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=False)
        self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> _Rich:
        self._progress.start()
        return self

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()


def progress(total: int, label: str, enabled: bool = True) -> Any:
    if not enabled:
        return _Plain(total, label, stream=_Null())
    try:
        return _Rich(total, label)
    except ImportError:
        return _Plain(total, label)


class _Null:
    def write(self, _s: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
