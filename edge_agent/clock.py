"""Timestamps as every edgekit document writes them: UTC, whole seconds, ISO 8601 with "Z"."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
