"""Durations and rates as people type them, parsed in one place for the agent and `edgekit`.

A duration takes a unit (`500ms`, `60s`, `2m`, `1h`; a bare number is seconds); a rate is per
second (`50`, `50/s`, `50qps`), and a duration given where a rate is due is refused rather than
misread.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*")
_RATE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(/s|/sec|qps|rps)?\s*")

DURATION_HELP = "a duration: 500ms, 60s, 2m"
RATE_HELP = "per second: 50 or 50/s"


def parse_duration(text: str | float | None) -> float | None:
    """Seconds, or None for None; ValueError that says what to type otherwise."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = _DURATION_RE.fullmatch(str(text).lower())
    if not m or m.group(2) not in ("", *_UNITS):
        raise ValueError(
            f"{text!r} is not a duration; give a number with a unit: 500ms, 60s, 2m or 1h"
        )
    return float(m.group(1)) * _UNITS.get(m.group(2), 1.0)


def parse_rate(text: str | float | None) -> float | None:
    """Per second, or None for None; ValueError for anything else (a duration included)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = _RATE_RE.fullmatch(str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a rate; give requests per second, e.g. 50 or 50/s")
    return float(m.group(1))
