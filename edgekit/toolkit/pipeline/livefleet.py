"""A simulated fleet that stays up while pipelines run: devices in the local Greengrass core
emulator (the unmodified packaged agent), the fleet collector with alert routes, background load
that can drift, and new component versions rolled out canary first. It is the deployer behind
`deploy: {to: fleet}` in the closed-loop demo and its test.

It uses the simulator's parts (SimFleet, InProcessCloud, the load driver, the wheel cache) and the
fleet's collector as they are; its own asyncio loop runs on a thread so that a pipeline triggered
by an alert (on the collector's action thread) can deploy while load keeps flowing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.pipeline.fleets import free_port_block

if TYPE_CHECKING:
    from edgekit.toolkit.simulator.deployment import ComponentUpdate


@dataclass
class DeviceAlert:
    t: float
    thing: str
    version: str | None
    rule: str
    state: str
    subject: str | None


@dataclass
class LiveFleet:
    run_dir: Path
    devices: int = 2
    merge: dict[str, Any] = field(default_factory=dict)  # agent configuration for every device
    capture: bool = True  # agents capture every request to run_dir/captures/<thing>
    rules: Any = None  # edgekit.toolkit.fleet.rules.RulesConfig for the collector (alert routes)
    timeout_scale: float = 1.0

    def __post_init__(self) -> None:
        # capture folders go to the agents, which run in their own work folders: absolute
        self.run_dir = Path(self.run_dir).absolute()
        self.identity = f"{self.run_dir.resolve()}@{time.time():.0f}"
        self.alerts: list[DeviceAlert] = []
        self.deployments: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="live-fleet", daemon=True
        )
        self._thread.start()
        self._fleet: Any = None
        self._ports: dict[str, int] = {}
        self._load_task: concurrent.futures.Future[None] | None = None
        self.drifted = False
        self.qps = 0.0
        self.loads: list[Any] = []
        self.data: Any = None
        self.collector: Any = None
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------
    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def things(self) -> list[str]:
        return [f"sim-{i + 1:03d}" for i in range(self.devices)]

    def capture_dir(self, thing: str | None = None) -> Path:
        base = self.run_dir / "captures"
        return base / thing if thing else base

    def _on_cloud(self, thing: str, topic: str, payload: bytes) -> None:
        if not topic.endswith("/alerts"):
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        for a in (msg.get("body") or {}).get("alerts") or []:
            self.alerts.append(
                DeviceAlert(
                    time.time(),
                    thing,
                    msg.get("component_version"),
                    a.get("rule"),
                    a.get("state"),
                    a.get("subject"),
                )
            )

    async def _start(self, build_dir: Path, component: str) -> None:
        from edgekit.toolkit.fleet.sim import attach_collector
        from edgekit.toolkit.simulator import wheelcache
        from edgekit.toolkit.simulator.catalog import Catalog
        from edgekit.toolkit.simulator.cloud import InProcessCloud
        from edgekit.toolkit.simulator.fleet import SimFleet
        from edgekit.toolkit.simulator.lifecycle import Timeouts
        from edgekit.toolkit.simulator.profiles import get_profile
        from edgekit.toolkit.simulator.runner import prepare_wheel_cache

        self.run_dir.mkdir(parents=True, exist_ok=True)
        cloud = InProcessCloud()
        cloud.add_listener(self._on_cloud)
        self.collector = attach_collector(cloud, self.run_dir, self.rules)
        cache_dir, _report = prepare_wheel_cache(build_dir, component, None)
        env = wheelcache.pip_env(cache_dir) if cache_dir else {}
        self._fleet = SimFleet(
            self.run_dir, cloud, Catalog(), Timeouts().scaled(self.timeout_scale)
        )
        base = free_port_block(self.devices)
        for i, thing in enumerate(self.things):
            self._ports[thing] = base + i
            await self._fleet.add_device(thing, get_profile("host"), extra_env=env)

    # -- Deployer --------------------------------------------------------------------------------
    def deploy(
        self,
        build_dir: Path,
        component: str,
        version: str,
        canary: int = 1,
        merge: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Roll `component` `version` out: `canary` devices first, the rest only when they
        succeeded (a failed canary aborts; the nucleus rolls the device back)."""
        with self._lock:
            return self._call(
                self._deploy(Path(build_dir), component, version, canary, merge or {})
            )

    async def _deploy(
        self, build_dir: Path, component: str, version: str, canary: int, merge: dict[str, Any]
    ) -> dict[str, Any]:
        from edgekit.toolkit.simulator.deployment import Deployment

        if self._fleet is None:
            await self._start(build_dir, component)
        self._fleet.catalog.add_build_dir(build_dir)
        timeouts = self._fleet.timeouts

        def make(thing: str) -> Deployment:
            return Deployment(
                [self.update(thing, component, version, merge)],
                timeout_s=timeouts.install + timeouts.startup + 30,
            )

        started = time.time()
        rollout = await self._fleet.rollout(make, [canary, "100%"], abort_threshold=0.5)
        ok = not rollout.aborted and not rollout.failed
        record = {
            "ok": ok,
            "component": component,
            "version": version,
            "waves": rollout.waves,
            "reason": rollout.reason or (f"failed on {rollout.failed}" if rollout.failed else ""),
            "devices": {t: r.status for t, r in rollout.results.items()},
            "started_at": started,
            "seconds": round(time.time() - started, 2),
        }
        self.deployments.append(record)
        return record

    def update(
        self, thing: str, component: str, version: str, merge: dict[str, Any]
    ) -> ComponentUpdate:
        """One device's part of a rollout: the new version's per-platform choice replaces the
        running version's (RESET), then this fleet's settings (MERGE)."""
        from edgekit.toolkit.greengrass.recipe import VERSION_CONFIG
        from edgekit.toolkit.simulator.deployment import ComponentUpdate

        config = {**self.merge, **merge, "port": str(self._ports.get(thing, 0))}
        if self.capture:
            config.update(capture_dir=str(self.capture_dir(thing)), capture_fraction="1.0")
        return ComponentUpdate(component, version=version, reset=list(VERSION_CONFIG), merge=config)

    # -- load ------------------------------------------------------------------------------------
    def start_load(self, qps: float, drifted: bool = False) -> None:
        """Requests to every device at `qps` each, from the first bundle's stored samples; with
        `drifted` a third of the numeric inputs are shifted (the world moved)."""
        from edgekit.toolkit.simulator.load import DeviceLoad, find_dataset

        if self._fleet is None:
            raise BadInputError("deploy a component before driving load")
        if self.data is None:
            self.data = find_dataset(self._fleet.devices[self.things[0]].root.path)
        self.stop_load()
        if not self.loads:
            self.loads = [DeviceLoad(t, self._ports[t]) for t in self.things]
        self.qps, self.drifted = qps, drifted
        self._load_task = asyncio.run_coroutine_threadsafe(self._drive(), self._loop)

    async def _drive(self) -> None:
        """One long open-loop drive (rows go through the samples in turn); changing the load
        cancels it and starts another."""
        from edgekit.toolkit.simulator.load import drive

        try:
            await drive(
                self.loads, self.data, self.qps, 10 * 24 * 3600.0, 0.0 if self.drifted else None
            )
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # keep the fleet going; the error is reported
            self.errors.append(f"load: {type(exc).__name__}: {exc}")

    def stop_load(self) -> None:
        task, self._load_task = self._load_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):  # cancelled: what stopping means here
                task.result(10)

    # -- watching ----------------------------------------------------------------------------------
    def wait_for(self, predicate: Any, timeout_s: float, poll_s: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll_s)
        return bool(predicate())

    def firing(
        self, rule: str = "drift", version: str | None = None, since: float = 0.0
    ) -> list[DeviceAlert]:
        return [
            a
            for a in list(self.alerts)
            if a.rule == rule
            and a.state == "firing"
            and a.t >= since
            and (version is None or a.version == version)
        ]

    def versions(self) -> dict[str, str | None]:
        if self._fleet is None:
            return {}
        out = {}
        for thing, dev in self._fleet.devices.items():
            comps = [c for n, c in dev.components.items() if not n.startswith("aws.")]
            out[thing] = comps[0].version if comps else None
        return out

    def requests(self) -> dict[str, int]:
        return {x.thing: x.ok for x in self.loads}

    def stop(self) -> dict[str, Any]:
        """Stop load and devices, flush the collector; returns the fleet summary."""
        self.stop_load()
        summary: dict[str, Any] = {}
        try:
            if self._fleet is not None:
                self._call(self._fleet.stop(), 120)
            if self.collector is not None:
                from edgekit.toolkit.fleet.sim import finish_collector

                summary = finish_collector(self.collector, self.run_dir)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        return summary
