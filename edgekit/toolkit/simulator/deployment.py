"""Deployments to one device, as the nucleus applies them (DeploymentConfigMerger):

1. resolve the target versions (and dependencies, npm-style ranges) from the catalog;
2. prepare before touching anything: select the manifest for the device's platform, copy the
   artifacts and verify their digests (a failure here changes nothing: FAILED_NO_STATE_CHANGE);
3. merge: new configuration = (new defaults under the current values) -> RESET pointers -> MERGE;
   a new version is (re)installed, a changed interpolated lifecycle restarts the component,
   a plain configuration change only notifies the component over IPC;
4. wait: SUCCEEDED when every component is RUNNING or FINISHED, FAILED when one is BROKEN
   (or the wait times out);
5. on failure with the ROLLBACK policy, restore every touched component's previous version and
   configuration (FAILED_ROLLBACK_COMPLETE), or leave it (FAILED_ROLLBACK_NOT_REQUESTED).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.atomic import write_json
from edge_agent.errors import EdgekitError
from edgekit.toolkit.simulator.artifacts import install_artifacts
from edgekit.toolkit.simulator.catalog import Catalog, CatalogEntry, satisfies
from edgekit.toolkit.simulator.config import apply_configuration_update
from edgekit.toolkit.simulator.device import GGC_VERSION, NUCLEUS, Device, InstalledComponent
from edgekit.toolkit.simulator.lifecycle import BROKEN, FINISHED, RUNNING
from edgekit.toolkit.simulator.platform import select_manifest
from edgekit.toolkit.simulator.updates import DEFAULT_TIMEOUT_S, NOTIFY_COMPONENTS

ROLLBACK, DO_NOTHING = "ROLLBACK", "DO_NOTHING"


@dataclass
class ComponentUpdate:
    name: str
    version: str | None = None  # None: keep the installed version (or the newest, if new)
    reset: list[str] | None = None
    merge: dict[str, Any] | None = None


@dataclass
class Deployment:
    components: list[ComponentUpdate]
    failure_policy: str = ROLLBACK
    timeout_s: float = 300.0
    deployment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # CreateLocalDeployment's componentsToRemove: stopped (Shutdown runs) and removed, unless
    # a component that stays depends on it
    remove: list[str] = field(default_factory=list)
    # componentUpdatePolicy: NOTIFY_COMPONENTS lets subscribed components defer the update
    update_policy: str = NOTIFY_COMPONENTS
    update_timeout_s: float = DEFAULT_TIMEOUT_S

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeploymentResult:
    deployment_id: str
    thing: str
    status: str  # SUCCEEDED | FAILED
    detailed_status: str
    reason: str
    states: dict[str, str]
    versions: dict[str, str]
    started_at: float
    duration_s: float
    deferred_rounds: int = 0  # PreComponentUpdateEvent rounds a component deferred

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve(
    device: Device, catalog: Catalog, updates: list[ComponentUpdate]
) -> dict[str, CatalogEntry]:
    targets: dict[str, CatalogEntry] = {}
    for u in updates:
        if u.version:
            targets[u.name] = catalog.get(u.name, u.version)
        elif u.name in device.components:
            targets[u.name] = device.components[u.name].entry
        else:
            targets[u.name] = catalog.latest(u.name)
    pending = list(targets.values())
    while pending:
        entry = pending.pop()
        for dep, spec in entry.recipe.dependencies.items():
            req = (spec or {}).get("VersionRequirement")
            if dep in targets:
                if not satisfies(targets[dep].recipe.version, req):
                    raise EdgekitError(
                        f"{entry.recipe.name} needs {dep} {req}, but the deployment resolves "
                        f"{dep} {targets[dep].recipe.version}: no version satisfies every "
                        "requirement"
                    )
                continue
            if dep == NUCLEUS:  # every core device runs the nucleus itself, at GGC_VERSION
                if not satisfies(GGC_VERSION, req):
                    raise EdgekitError(
                        f"{entry.recipe.name} needs {NUCLEUS} {req}, and the simulated device's "
                        f"nucleus is {GGC_VERSION}"
                    )
                continue
            installed = device.components.get(dep)
            if installed is not None and satisfies(installed.version, req):
                continue
            targets[dep] = catalog.latest(dep, req)
            pending.append(targets[dep])
    return targets


def _order(targets: dict[str, CatalogEntry]) -> list[str]:
    """Dependencies before dependants."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in seen or name not in targets:
            return
        if name in stack:
            raise EdgekitError(
                f"Circular dependency detected: {' -> '.join((*stack, name))}",
                hint="a component cannot depend on itself or on its dependants",
            )
        for dep in targets[name].recipe.dependencies:
            visit(dep, (*stack, name))
        seen.add(name)
        out.append(name)

    for n in targets:
        visit(n, ())
    return out


def _removable(device: Device, names: list[str], targets: dict[str, CatalogEntry]) -> list[str]:
    """The components to remove: installed, not deployed again, and needed by nothing that
    stays (the nucleus keeps a dependency of a remaining component)."""
    staying = {n: c.entry for n, c in device.components.items() if n not in names}
    staying.update(targets)
    needed = {dep for entry in staying.values() for dep in entry.recipe.dependencies}
    out = []
    for name in names:
        if name not in device.components or name in staying:
            continue
        if name in needed:
            device.log(f"{name} stays: a component that stays depends on it")
            continue
        out.append(name)
    return out


async def _wait_settled(device: Device, names: list[str], timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {n: device.state(n) for n in names}
        broken = [n for n, s in states.items() if s == BROKEN]
        if broken:
            comp = device.components[broken[0]]
            detail = comp.service.status_detail if comp.service else ""
            return False, f"COMPONENT_BROKEN: {broken[0]} ({detail})"
        if all(s in (RUNNING, FINISHED) for s in states.values()):
            return True, ""
        if time.monotonic() > deadline:
            waiting = {n: s for n, s in states.items() if s not in (RUNNING, FINISHED)}
            return False, f"timed out after {timeout:.0f}s waiting for {waiting}"
        await asyncio.sleep(0.05)


Prepared = dict[str, tuple[dict, bool]]
Snapshot = dict[str, tuple[InstalledComponent | None, dict]]


async def deploy(device: Device, catalog: Catalog, deployment: Deployment) -> DeploymentResult:
    """Resolve and prepare, let subscribers defer, merge and wait, and roll back on failure
    (the nucleus's order: nothing running is touched until every artifact is verified)."""
    started = time.time()
    t0 = time.monotonic()
    deferred = 0

    def result(status: str, detailed: str, reason: str) -> DeploymentResult:
        return _record_result(device, deployment, started, t0, deferred, status, detailed, reason)

    # 1-2: resolve and prepare; nothing running is touched yet
    try:
        targets, order, prepared = _prepare(device, catalog, deployment)
    except EdgekitError as exc:
        return result("FAILED", "FAILED_NO_STATE_CHANGE", exc.message)

    # the update waits while a subscribed component defers it (UpdateSystemPolicyService)
    notifier = device.services.updates
    if deployment.update_policy == NOTIFY_COMPONENTS:
        deferred = await notifier.before_update(
            deployment.deployment_id, deployment.update_timeout_s
        )

    # 3: merge
    removing = _removable(device, deployment.remove, targets)
    snapshot: Snapshot = {
        n: (device.components.get(n), device.services.config.snapshot(n))
        for n in [*order, *removing]
    }
    try:
        await _merge(device, deployment, targets, order, prepared, snapshot)
        for name in removing:  # dependants were checked: nothing left needs it
            await device.stop_component(name)  # STOPPING: its Shutdown runs, then FINISHED
            device.forget_component(name)
        ok, reason = await _wait_settled(device, order, deployment.timeout_s)
    except EdgekitError as exc:
        ok, reason = False, exc.message
    if deployment.update_policy == NOTIFY_COMPONENTS:
        notifier.after_update(deployment.deployment_id)
    if ok:
        device.save_effective_config()
        return result("SUCCEEDED", "SUCCESSFUL", "")
    if deployment.failure_policy != ROLLBACK:
        return result("FAILED", "FAILED_ROLLBACK_NOT_REQUESTED", reason)

    # 5: rollback, dependants first
    back, why = await _rollback(device, deployment, order, removing, snapshot)
    if back:
        return result("FAILED", "FAILED_ROLLBACK_COMPLETE", reason)
    return result("FAILED", "FAILED_UNABLE_TO_ROLLBACK", f"{reason}; rollback: {why}")


def _record_result(
    device: Device,
    deployment: Deployment,
    started: float,
    t0: float,
    deferred: int,
    status: str,
    detailed: str,
    reason: str,
) -> DeploymentResult:
    """The result, logged and written beside the deployment under deployments/."""
    res = DeploymentResult(
        deployment.deployment_id,
        device.thing_name,
        status,
        detailed,
        reason,
        device.states(),
        device.versions(),
        started,
        round(time.monotonic() - t0, 3),
        deferred,
    )
    device.log(f"deployment {deployment.deployment_id} {status} {detailed} {reason}".rstrip())
    write_json(
        device.root.path / "deployments" / f"{deployment.deployment_id}.json",
        {"deployment": deployment.to_dict(), "result": res.to_dict()},
    )
    return res


def _prepare(
    device: Device, catalog: Catalog, deployment: Deployment
) -> tuple[dict[str, CatalogEntry], list[str], Prepared]:
    """Resolve the versions, select each manifest and install (and verify) new artifacts;
    raises EdgekitError before anything running is touched."""
    targets = _resolve(device, catalog, deployment.components)
    order = _order(targets)
    prepared: Prepared = {}
    for name in order:
        entry = targets[name]
        installed = device.components.get(name)
        new_version = installed is None or installed.version != entry.recipe.version

        manifest = select_manifest(entry.recipe, device.platform)
        if new_version:
            install_artifacts(
                device.root,
                name,
                entry.recipe.version,
                list(manifest.get("Artifacts") or []),
                entry.source,
            )
        prepared[name] = (manifest, new_version)
    return targets, order, prepared


async def _merge(
    device: Device,
    deployment: Deployment,
    targets: dict[str, CatalogEntry],
    order: list[str],
    prepared: Prepared,
    snapshot: Snapshot,
) -> None:
    """Merge each component's configuration; (re)install and restart only what changed."""
    updates = {u.name: u for u in deployment.components}
    versions = {**device.versions(), **{n: e.recipe.version for n, e in targets.items()}}
    for name in order:
        entry = targets[name]
        manifest, new_version = prepared[name]
        installed, current = snapshot[name]
        default = entry.recipe.default_configuration
        u = updates.get(name)
        cfg = apply_configuration_update(
            current if installed is not None else {},
            default,
            u.reset if u else None,
            u.merge if u else None,
        )
        device.services.config.replace(name, cfg)
        _, lifecycle = device.resolve_lifecycle(entry, versions)
        restart = (
            new_version
            or installed is None
            or installed.lifecycle != lifecycle
            or device.state(name) == BROKEN
            or installed.service is None
        )
        if restart:
            await device.stop_component(name)
            device.install_component(entry, manifest, lifecycle)
            # Install starts at once; the lifecycle waits for HARD dependencies before
            # STARTING, and not at all for SOFT ones (GreengrassService.dependencyReady)
            device.start_component(name)


async def _rollback(
    device: Device,
    deployment: Deployment,
    order: list[str],
    removing: list[str],
    snapshot: Snapshot,
) -> tuple[bool, str]:
    """Restore every touched component's previous version and configuration, dependants
    stopped first; whether they settled again, and why not."""
    for name in reversed(order):
        await device.stop_component(name)
    for name in [*order, *removing]:
        prev, prev_cfg = snapshot[name]
        if prev is None:
            device.forget_component(name)
            continue
        device.services.config.replace(name, prev_cfg)
        device.components[name] = InstalledComponent(
            prev.entry, prev.manifest, prev.lifecycle, prev.svcuid
        )
        device.ipc.tokens[prev.svcuid] = name
        device.start_component(name)
    restored = [n for n in [*order, *removing] if snapshot[n][0] is not None]
    back, why = await _wait_settled(device, restored, deployment.timeout_s)
    device.save_effective_config()
    return back, why
