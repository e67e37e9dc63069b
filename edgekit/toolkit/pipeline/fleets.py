"""Where `deploy: {to: fleet, fleet: NAME}` sends a component: fleets registered by name in this
process (a simulated fleet kept running by the closed loop, a test double of a real one).

A deployer takes a greengrass-build folder and a component version and rolls it out canary first;
it returns what happened per device and whether the rollout succeeded.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any, Protocol


class Deployer(Protocol):
    identity: str  # goes into the deploy stage's cache key: a new fleet is a new deployment

    def deploy(
        self, build_dir: Path, component: str, version: str, canary: int, merge: dict[str, Any]
    ) -> dict[str, Any]: ...


FLEETS: dict[str, Deployer] = {}


def register_fleet(name: str, deployer: Deployer) -> None:
    FLEETS[name] = deployer


def unregister_fleet(name: str) -> None:
    FLEETS.pop(name, None)


def free_port_block(n: int, tries: int = 50) -> int:
    """A base port with `n` consecutive free ports on 127.0.0.1 (devices' REST servers)."""
    for _ in range(tries):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no block of {n} free ports found")
