"""Peak resident memory and CPU use around a measurement.

On Linux the kernel's high-water mark (VmHWM) is reset through /proc/self/clear_refs before
each configuration, so the peak belongs to that configuration. Elsewhere the peak comes from
psutil when present, else getrusage's lifetime maximum, and the record says which.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_rss() -> int | None:
    """Resident set size of this process now, in bytes."""
    rss = _status_kb("VmRSS")
    if rss is not None:
        return rss
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # psutil missing or refused
        return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> tuple[int | None, str]:
    """(bytes, source) of the peak resident memory."""
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    try:
        import psutil

        info = psutil.Process().memory_info()
        peak = getattr(info, "peak_wset", None)  # Windows keeps a peak
        if peak:
            return int(peak), "psutil peak_wset"
    except Exception:
        pass
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return int(maxrss) * scale, "getrusage (process lifetime)"
    except Exception:
        return None, "unavailable"


@dataclass
class ResourceMeter:
    """Start before the session is created; stop after the timed loop."""

    started_wall: float = 0.0
    started_cpu: float = 0.0
    rss_before: int | None = None
    peak_reset: bool = False

    def start(self) -> ResourceMeter:
        self.peak_reset = reset_peak()
        self.rss_before = current_rss()
        self.started_cpu = time.process_time()
        self.started_wall = time.perf_counter()
        return self

    def cpu_window(self) -> tuple[float, float]:
        """(process CPU seconds, wall seconds) since start."""
        return time.process_time() - self.started_cpu, time.perf_counter() - self.started_wall

    def stop(self) -> dict[str, Any]:
        cpu_s, wall_s = self.cpu_window()
        peak, source = peak_rss()
        if not self.peak_reset and source == "VmHWM":
            source = "VmHWM (not reset)"
        # What this configuration added on top of the process (libraries, other sessions):
        # meaningful only when the peak was reset at start, else the peak may predate it.
        increase = (
            max(0, peak - self.rss_before)
            if self.peak_reset and source == "VmHWM" and peak is not None and self.rss_before
            else None
        )
        return {
            "peak_rss_bytes": peak,
            "peak_rss_source": source,
            "peak_rss_increase_bytes": increase,
            "rss_before_bytes": self.rss_before,
            "rss_after_bytes": current_rss(),
            "cpu_seconds": cpu_s,
            "wall_seconds": wall_s,
            # 100 means one core busy the whole time; threads can take it above 100.
            "cpu_percent": 100.0 * cpu_s / wall_s if wall_s > 0 else None,
            "usable_cores": _usable_cores(),
        }


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
