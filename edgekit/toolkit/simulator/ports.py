"""REST ports for the simulated devices' agents: N consecutive ports, all free right now."""

from __future__ import annotations

import random
import socket

from edge_agent.errors import BadInputError, CheckFailedError


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


def check_block(base: int, things: list[str]) -> None:
    """Refuse a fixed base port whose block another process holds, before any device starts:
    each device's agent would exit on the taken port and the rollout fail as COMPONENT_BROKEN
    with the reason only in the device's log."""
    for i, thing in enumerate(things):
        if not _free(base + i):
            raise BadInputError(
                f"port {base + i} ({thing}'s REST port) is in use by another process",
                hint="pass `base_port` 0 for any free block of ports, or another `base_port`",
            )


DEFAULT_BASE = 18080


def default_block(n: int) -> int:
    """18080 and up when those ports are free, else any free block: an agent the user left
    running on 18080 is no reason to fail a simulation that did not ask for that port."""
    return DEFAULT_BASE if all(_free(DEFAULT_BASE + i) for i in range(n)) else free_block(n)
