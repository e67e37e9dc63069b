"""Device profiles: what a simulated device reports as its platform and the limits its
component processes run under.

- platform values as the nucleus reports them (os, architecture, architecture.detail) plus custom
  attributes, used for manifest selection;
- cores: CPU affinity (os.sched_setaffinity in the child) over the first N host CPUs;
- memory: RLIMIT_AS on each component process (an address-space cap, stricter than RSS: Python
  and onnxruntime reserve address space they never touch, so leave headroom);
- threads: OMP_NUM_THREADS for the component (a thread cap for OpenMP-based runtimes);
- slowdown: a fixed factor, applied for real by duty-cycling the component's process groups
  with SIGSTOP/SIGCONT (a process with factor 3 runs one third of each period); reports state
  it as such, it is not a model of any real chip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import asdict, dataclass, field

from edge_agent.errors import BadInputError
from edge_agent.hardware import greengrass_architecture, greengrass_os
from edgekit.toolkit.simulator.processes import ProcessLimits


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    platform: dict[str, str] = field(default_factory=dict)
    cores: int | None = None
    memory_mb: int | None = None
    threads: int | None = None
    slowdown: float = 1.0
    description: str = ""

    def limits(self) -> ProcessLimits:
        cpus = None
        if self.cores:
            host = sorted(os.sched_getaffinity(0))
            cpus = tuple(host[: max(1, min(self.cores, len(host)))])
        mem = self.memory_mb * 1024 * 1024 if self.memory_mb else None
        return ProcessLimits(cpus=cpus, memory_bytes=mem)

    def env(self) -> dict[str, str]:
        return {"OMP_NUM_THREADS": str(self.threads)} if self.threads else {}

    def to_dict(self) -> dict:
        return asdict(self)


def host_platform() -> dict[str, str]:
    return {"os": greengrass_os(), "architecture": greengrass_architecture()}


def _p(**extra: str) -> dict[str, str]:
    return {**host_platform(), **extra}


# Simulated devices run on this host's CPU, so their os/architecture are the host's: a recipe's
# manifest for another architecture is exercised with explicit platform overrides (tests).
PROFILES: dict[str, DeviceProfile] = {
    "host": DeviceProfile("host", _p(), description="this machine, no limits"),
    "gateway": DeviceProfile(
        "gateway",
        _p(),
        cores=2,
        memory_mb=4096,
        threads=2,
        description="x86 edge gateway: 2 cores, 4 GiB",
    ),
    "small": DeviceProfile(
        "small",
        _p(),
        cores=1,
        memory_mb=2048,
        threads=1,
        slowdown=2.0,
        description="small device: 1 core, 2 GiB, 2x slower (duty-cycled)",
    ),
    "pi4": DeviceProfile(
        "pi4",
        _p(**{"com.edgekit.class": "pi4"}),
        cores=1,
        memory_mb=2048,
        threads=1,
        slowdown=3.0,
        description="Raspberry-Pi-4-like budget: 1 core, 2 GiB, 3x slower",
    ),
}


def get_profile(name: str) -> DeviceProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BadInputError(
            f"unknown device profile {name!r}", hint=f"choose from {', '.join(PROFILES)}"
        ) from None


class Throttler:
    """Duty-cycles process groups with SIGSTOP/SIGCONT to slow them by a fixed factor."""

    def __init__(self, factor: float, period_s: float = 0.05) -> None:
        self.factor = factor
        self.period_s = period_s
        self.groups: set[int] = set()
        self._task: asyncio.Task | None = None

    def add(self, pgid: int) -> None:
        self.groups.add(pgid)
        if self.factor > 1.0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._cycle())

    def discard(self, pgid: int) -> None:
        self.groups.discard(pgid)
        self._signal(pgid, signal.SIGCONT)

    def set_factor(self, factor: float) -> None:
        self.factor = factor
        if factor > 1.0 and self._task is None and self.groups:
            self._task = asyncio.get_running_loop().create_task(self._cycle())

    @staticmethod
    def _signal(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    async def _cycle(self) -> None:
        try:
            while self.factor > 1.0:
                run = self.period_s / self.factor
                await asyncio.sleep(run)
                for g in list(self.groups):
                    self._signal(g, signal.SIGSTOP)
                await asyncio.sleep(self.period_s - run)
                for g in list(self.groups):
                    self._signal(g, signal.SIGCONT)
        finally:
            for g in list(self.groups):
                self._signal(g, signal.SIGCONT)
            self._task = None

    async def close(self) -> None:
        self.factor = 1.0
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
