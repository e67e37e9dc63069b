"""CPU and memory of the agent process: psutil when installed, /proc otherwise."""

from __future__ import annotations

import os
import resource
import time
from typing import Any


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # ru_maxrss is the peak (KiB on Linux), the best a system without /proc offers
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def rss_bytes() -> int | None:
    """Resident memory of this process now."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return _rss_bytes()


class ProcessStats:
    """CPU percent between two samples (100 = one core busy), CPU seconds and resident memory."""

    def __init__(self) -> None:
        self._last_cpu = self._cpu()
        self._last_wall = time.monotonic()

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system

    def sample(self) -> dict[str, Any]:
        cpu, wall = self._cpu(), time.monotonic()
        span = wall - self._last_wall
        percent = 100.0 * (cpu - self._last_cpu) / span if span > 0 else None
        self._last_cpu, self._last_wall = cpu, wall
        return {"cpu_percent": percent, "cpu_seconds": cpu, "rss_bytes": rss_bytes()}
