"""The nucleus's publish throttle: a token bucket per cloud connection.

AwsIotMqttClient limits every connection to 100 publishes per second (IoT Core's per-connection
quota) and 512 KiB/s with Guava's `RateLimiter.create` (SmoothBursty: an idle second stores at
most one second of permits; a request that exceeds what is stored is granted now and makes the
next one wait). The spooler sleeps for the wait before it publishes, so a component that
publishes faster is slowed down, not refused. All components of a device share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PUBLISHES_PER_SECOND = 100.0
BYTES_PER_SECOND = 512.0 * 1024


class RateLimiter:
    """Guava SmoothBursty semantics: `reserve(n)` books n permits and returns the seconds the
    caller must wait first."""

    def __init__(
        self,
        rate: float,
        max_burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.max_stored = rate * max_burst_s
        self.stored = 0.0
        self.clock = clock
        self.next_free = clock()

    def reserve(self, permits: float = 1.0) -> float:
        now = self.clock()
        if now > self.next_free:  # idle time turns into stored permits, up to the burst
            self.stored = min(self.max_stored, self.stored + (now - self.next_free) / self.interval)
            self.next_free = now
        wait = self.next_free - now
        from_stored = min(permits, self.stored)
        self.stored -= from_stored
        self.next_free += (permits - from_stored) * self.interval
        return wait


class PublishThrottle:
    """Both of the nucleus's limiters; the wait is the longer of the two."""

    def __init__(
        self,
        publishes_per_s: float = PUBLISHES_PER_SECOND,
        bytes_per_s: float = BYTES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transactions = RateLimiter(publishes_per_s, clock=clock)
        self.bandwidth = RateLimiter(bytes_per_s, clock=clock)
        self.throttled_s = 0.0  # total time publishes waited

    def reserve(self, payload_bytes: int) -> float:
        wait = max(self.transactions.reserve(1), self.bandwidth.reserve(payload_bytes))
        self.throttled_s += wait
        return wait
