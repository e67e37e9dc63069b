"""A simulated fleet: N devices in one asyncio loop sharing one cloud, and rollouts of a
deployment across them in waves with an abort threshold (a canary, as IoT Jobs abortConfig)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.toolkit.simulator.catalog import Catalog
from edgekit.toolkit.simulator.cloud import Cloud
from edgekit.toolkit.simulator.deployment import Deployment, DeploymentResult, deploy
from edgekit.toolkit.simulator.device import Device
from edgekit.toolkit.simulator.lifecycle import Timeouts
from edgekit.toolkit.simulator.profiles import DeviceProfile


def wave_sizes(spec: list[int | str] | list[int], n: int) -> list[int]:
    sizes: list[int] = []
    done = 0
    for w in spec:
        s = str(w)
        k = math.ceil(n * float(s[:-1]) / 100) if s.endswith("%") else int(s)
        k = max(0, min(k, n - done))
        if k:
            sizes.append(k)
            done += k
    if done < n:
        sizes.append(n - done)
    return sizes


@dataclass
class RolloutResult:
    results: dict[str, DeploymentResult]
    skipped: list[str]
    waves: list[list[str]]
    aborted: bool
    reason: str = ""

    @property
    def failed(self) -> list[str]:
        return [t for t, r in self.results.items() if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "aborted": self.aborted,
            "reason": self.reason,
            "waves": self.waves,
            "skipped": self.skipped,
            "results": {t: asdict(r) for t, r in self.results.items()},
        }


class SimFleet:
    def __init__(
        self, run_dir: str | Path, cloud: Cloud, catalog: Catalog, timeouts: Timeouts
    ) -> None:
        self.run_dir = Path(run_dir)
        self.cloud = cloud
        self.catalog = catalog
        self.timeouts = timeouts
        self.devices: dict[str, Device] = {}

    async def add_device(self, thing: str, profile: DeviceProfile, **kw: Any) -> Device:
        dev = Device(
            thing,
            self.run_dir / "devices" / thing,
            self.cloud.link(thing),
            profile=profile,
            timeouts=self.timeouts,
            **kw,
        )
        await dev.start()
        self.devices[thing] = dev
        return dev

    async def rollout(
        self,
        make: Callable[[str], Deployment],
        waves: list[int | str] | None = None,
        abort_threshold: float = 0.5,
        min_executed: int = 1,
    ) -> RolloutResult:
        things = list(self.devices)
        sizes = wave_sizes(list(waves or [1]), len(things))
        results: dict[str, DeploymentResult] = {}
        plan: list[list[str]] = []
        i = 0
        for k in sizes:
            wave = things[i : i + k]
            i += k
            plan.append(wave)
            outs = await asyncio.gather(
                *(deploy(self.devices[t], self.catalog, make(t)) for t in wave)
            )
            results.update({r.thing: r for r in outs})
            failed = sum(1 for r in results.values() if not r.ok)
            if (
                len(results) >= min_executed
                and failed / len(results) >= abort_threshold
                and i < len(things)
            ):
                return RolloutResult(
                    results,
                    things[i:],
                    plan,
                    True,
                    f"{failed}/{len(results)} devices failed (threshold {abort_threshold:.0%})",
                )
        return RolloutResult(results, [], plan, False)

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.devices.values()), return_exceptions=True)
        await self.cloud.close()
