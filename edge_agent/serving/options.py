"""The REST server's settings (from the agent's configuration; defaults fit a small device)."""

from __future__ import annotations

import os
from dataclasses import dataclass

MiB = 1024 * 1024


def default_workers() -> int:
    """Threads that decode, run the model and encode: the cores, at most 4 (the model's own
    intra-op threads use the cores too, and JSON work holds the GIL)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class RestOptions:
    max_request_bytes: int = 32 * MiB  # one body (Content-Length cap; 413 above it)
    max_inflight_bytes: int = 64 * MiB  # all bodies in flight together (503 above it)
    workers: int = 0  # 0 = default_workers()
    max_connections: int = 256  # uvicorn's limit_concurrency (503 + Retry-After above it)
    backlog: int = 1024  # listen queue (the kernel caps it at net.core.somaxconn)
    keepalive_s: float = 5.0  # an idle keep-alive connection closes after this
    request_timeout_s: float = 30.0  # deadline for receiving a whole request (408)
    shutdown_timeout_s: float = 5.0  # stop() waits this long for requests in flight
    drain_max_bytes: int = 64 * MiB  # a refused body up to this size is read and dropped
    retry_after_s: int = 1
    access_log: bool = False

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else default_workers()
