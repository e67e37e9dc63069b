"""One simulated Greengrass core device: its root folder, its IPC server, and the components
running on it with their configuration. Deployments (deployment.py) change what runs here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_agent.atomic import write_text
from edgekit.toolkit.simulator.catalog import CatalogEntry
from edgekit.toolkit.simulator.cloud import DeviceLink
from edgekit.toolkit.simulator.interpolate import Interpolator
from edgekit.toolkit.simulator.ipc.server import IpcServer
from edgekit.toolkit.simulator.layout import GreengrassRoot
from edgekit.toolkit.simulator.lifecycle import (
    BROKEN,
    FINISHED,
    RUNNING,
    STARTING,
    STOPPING,
    ComponentService,
    Timeouts,
)
from edgekit.toolkit.simulator.platform import manifest_lifecycle, select_manifest
from edgekit.toolkit.simulator.processes import LogSink, ScriptProcess
from edgekit.toolkit.simulator.profiles import DeviceProfile, Throttler
from edgekit.toolkit.simulator.services import CoreServices

GGC_VERSION = "2.14.0"  # the nucleus version the simulator reports to components
NUCLEUS = "aws.greengrass.Nucleus"  # built in: satisfies dependencies on the nucleus itself


@dataclass
class InstalledComponent:
    entry: CatalogEntry
    manifest: dict[str, Any]
    lifecycle: dict[str, Any]  # interpolated
    svcuid: str
    service: ComponentService | None = None
    deployed_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.entry.recipe.name

    @property
    def version(self) -> str:
        return self.entry.recipe.version


class Device:
    def __init__(
        self,
        thing_name: str,
        root: str | Path,
        link: DeviceLink,
        *,
        profile: DeviceProfile,
        timeouts: Timeouts = Timeouts(),
        region: str = "us-east-1",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.thing_name = thing_name
        self.root = GreengrassRoot(Path(root).absolute())
        self.profile = profile
        self.platform = dict(profile.platform)
        self.timeouts = timeouts
        self.region = region
        self.extra_env = dict(extra_env or {})
        self.services = CoreServices(thing_name, link)
        self.services.on_state_report(self._on_ipc_state)
        self.ipc = IpcServer(self.root.ipc_socket, self.services)
        self.components: dict[str, InstalledComponent] = {}
        self.throttler = Throttler(profile.slowdown)
        self._pgids: dict[str, int] = {}
        self.state_listeners: list[Callable[[str, str, str], None]] = []
        self.nucleus_log: LogSink | None = None

    # --- start / stop -------------------------------------------------------------------

    async def start(self) -> None:
        self.root.create()
        self.nucleus_log = LogSink(self.root.nucleus_log, "nucleus")
        await self.ipc.start()
        self.log(
            f"device {self.thing_name} up, platform {self.platform}, profile {self.profile.name}"
        )

    async def stop(self) -> None:
        for comp in reversed(list(self.components.values())):
            if comp.service is not None:
                await comp.service.stop()
        await self.throttler.close()
        await self.ipc.stop()
        await self.services.link.close()
        if self.nucleus_log:
            self.nucleus_log.close()

    def log(self, text: str) -> None:
        if self.nucleus_log:
            self.nucleus_log.line("INFO", text)

    # --- components ---------------------------------------------------------------------

    def state(self, name: str) -> str | None:
        comp = self.components.get(name)
        if comp is None:
            return None
        return comp.service.state if comp.service else "NEW"

    def states(self) -> dict[str, str]:
        return {n: self.state(n) or "-" for n in self.components}

    def versions(self) -> dict[str, str]:
        return {n: c.version for n, c in self.components.items()}

    def interpolator(self, entry: CatalogEntry, versions: dict[str, str]) -> Interpolator:
        return Interpolator(
            component=entry.recipe.name,
            root=self.root,
            thing_name=self.thing_name,
            config_of=self.services.config.snapshot,
            versions=versions,
            dependencies=set(entry.recipe.dependencies),
        )

    def resolve_lifecycle(self, entry: CatalogEntry, versions: dict[str, str]) -> tuple[dict, dict]:
        manifest = select_manifest(entry.recipe, self.platform)
        lifecycle = self.interpolator(entry, versions).deep(
            manifest_lifecycle(entry.recipe, manifest)
        )
        return manifest, lifecycle

    def _socket_for_components(self) -> str:
        path = str(self.root.ipc_socket)
        # the nucleus hands out a relative path when the absolute one is too long for AF_UNIX
        return path if len(path.encode()) <= 100 else "../../ipc.socket"

    def component_env(self, comp: InstalledComponent) -> dict[str, str]:
        ca = self.root.path / "rootCA.pem"
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "AWS_IOT_THING_NAME": self.thing_name,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "GGC_VERSION": GGC_VERSION,
            "GG_ROOT_CA_PATH": str(ca) if ca.exists() else "",
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": self._socket_for_components(),
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH": str(self.root.ipc_socket),
            "SVCUID": comp.svcuid,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": comp.svcuid,
        }
        env.update(self.profile.env())
        env.update(self.extra_env)
        return env

    def make_service(self, comp: InstalledComponent) -> ComponentService:
        work = self.root.work(comp.name)
        work.mkdir(parents=True, exist_ok=True)
        name = comp.name

        def on_process(proc: ScriptProcess | None) -> None:
            old = self._pgids.pop(name, None)
            if old is not None:
                self.throttler.discard(old)
            if proc is not None:
                self._pgids[name] = proc.pid
                self.throttler.add(proc.pid)

        return ComponentService(
            name,
            comp.version,
            comp.lifecycle,
            env=self.component_env(comp),
            work_dir=work,
            log_path=self.root.log(name),
            timeouts=self.timeouts,
            limits=self.profile.limits(),
            on_state=lambda svc, st: self._on_state(svc, st),
            on_process=on_process,
            dependencies_ready=lambda: self.dependencies_ready(name),
        )

    def hard_dependencies(self, name: str) -> list[str]:
        """The HARD dependencies of an installed component (HARD is the default type; the
        nucleus reads the type without regard to case)."""
        comp = self.components.get(name)
        if comp is None:
            return []
        deps = comp.entry.recipe.dependencies
        return [
            d
            for d, spec in deps.items()
            if str((spec or {}).get("DependencyType") or "HARD").upper() == "HARD"
        ]

    def dependency_ready(self, name: str) -> bool:
        """GreengrassService.dependencyFinishedStarting: RUNNING, FINISHED, or STOPPING without
        an error in startup; the nucleus itself is always there."""
        if name == NUCLEUS:
            return True
        comp = self.components.get(name)
        if comp is None or comp.service is None:
            return False
        state = comp.service.state
        return state in (RUNNING, FINISHED) or (
            state == STOPPING and not comp.service.startup_errored
        )

    def dependencies_ready(self, name: str) -> bool:
        """SOFT dependencies may be in any state; every HARD one must be ready."""
        return all(self.dependency_ready(d) for d in self.hard_dependencies(name))

    def install_component(
        self, entry: CatalogEntry, manifest: dict, lifecycle: dict
    ) -> InstalledComponent:
        old = self.components.get(entry.recipe.name)
        svcuid = old.svcuid if old is not None else secrets.token_hex(16)
        comp = InstalledComponent(entry, manifest, lifecycle, svcuid)
        self.components[comp.name] = comp
        self.ipc.tokens[svcuid] = comp.name
        recipe_file = self.root.recipes / f"{comp.name}-{comp.version}.recipe.yaml"
        write_text(recipe_file, yaml.safe_dump(entry.recipe.raw, sort_keys=False))
        return comp

    def forget_component(self, name: str) -> None:
        comp = self.components.pop(name, None)
        if comp is not None:
            self.ipc.tokens.pop(comp.svcuid, None)
        self.services.config.remove(name)

    async def stop_component(self, name: str) -> None:
        comp = self.components.get(name)
        if comp is not None and comp.service is not None:
            await comp.service.stop()
            self.ipc.close_component_streams(name)
            comp.service = None

    def start_component(self, name: str) -> ComponentService:
        comp = self.components[name]
        comp.service = self.make_service(comp)
        comp.service.start()
        return comp.service

    def save_effective_config(self) -> None:
        cfg = {
            "system": {"thingName": self.thing_name, "rootpath": str(self.root.path)},
            "services": {
                n: {
                    "version": c.version,
                    "state": self.state(n),
                    "configuration": self.services.config.snapshot(n),
                }
                for n, c in self.components.items()
            },
        }
        write_text(self.root.config / "effectiveConfig.yaml", yaml.safe_dump(cfg, sort_keys=False))

    # --- events -------------------------------------------------------------------------

    def _on_ipc_state(self, component: str, state: str) -> None:
        comp = self.components.get(component)
        if comp is not None and comp.service is not None:
            comp.service.report(state)

    def _on_state(self, svc: ComponentService, state: str) -> None:
        self.log(f"{svc.name} {svc.version} -> {state} {svc.status_detail}".rstrip())
        # GreengrassService.createDependencyListener: a dependant that is STARTING or RUNNING
        # restarts when a HARD dependency is no longer ready (ERRORED, BROKEN, restarting)
        for other in self.components.values():
            if other.service is None or other.service is svc:
                continue
            if (
                svc.name in self.hard_dependencies(other.name)
                and other.service.state in (STARTING, RUNNING)
                and not self.dependency_ready(svc.name)
            ):
                self.log(f"{other.name}: restarting, dependency {svc.name} is {state}")
                other.service.request_restart()
            other.service.dependency_changed()
        if state in (BROKEN, FINISHED) or state == RUNNING:
            with contextlib.suppress(Exception):
                self.save_effective_config()
        for fn in list(self.state_listeners):
            fn(self.thing_name, svc.name, state)

    # --- faults -------------------------------------------------------------------------

    def kill_component(self, name: str) -> bool:
        comp = self.components.get(name)
        return bool(comp and comp.service and comp.service.kill_main_process())

    def summary(self) -> dict[str, Any]:
        return {
            "thing": self.thing_name,
            "profile": self.profile.to_dict(),
            "root": str(self.root.path),
            "components": {
                n: {
                    "version": c.version,
                    "state": self.state(n),
                    "restarts": c.service.restarts if c.service else 0,
                }
                for n, c in self.components.items()
            },
            "mqtt": self.services.mqtt.stats(),
            "ipc": {"calls": dict(self.ipc.calls), "errors": dict(self.ipc.errors)},
        }


async def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(interval)
    return pred()
