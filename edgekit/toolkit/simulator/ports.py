"""REST ports for the simulated devices' agents: N consecutive ports, all free right now."""

from __future__ import annotations

import random
import socket

from edge_agent.errors import CheckFailedError


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_block(n: int, low: int = 20000, high: int = 60000, tries: int = 200) -> int:
    """The first port of `n` consecutive free loopback ports (so runs side by side, tests and
    demos, do not collide on a fixed base)."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(low, high - n)
        if all(_free(base + i) for i in range(n)):
            return base
    raise CheckFailedError(f"found no {n} consecutive free ports between {low} and {high}")
