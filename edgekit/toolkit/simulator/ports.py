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


def check_block(base: int, n: int) -> None:
    """Refuse a fixed block with a port already taken: each device's agent would exit 2 on
    start ("port in use"), and the run would only say the component broke."""
    busy = [p for p in range(base, base + n) if not _free(p)]
    if busy:
        shown = ", ".join(str(p) for p in busy[:5]) + (" ..." if len(busy) > 5 else "")
        raise BadInputError(
            f"REST port(s) {shown} of the devices' block {base}-{base + n - 1} are in use "
            "on this machine",
            hint="pick another `base_port`, or 0 for any free block",
        )


def free_block(n: int, low: int = 20000, high: int = 60000, tries: int = 200) -> int:
    """The first port of `n` consecutive free loopback ports (so runs side by side, tests and
    demos, do not collide on a fixed base)."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(low, high - n)
        if all(_free(base + i) for i in range(n)):
            return base
    raise CheckFailedError(f"found no {n} consecutive free ports between {low} and {high}")
