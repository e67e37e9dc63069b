"""The emulator does what the nucleus does (issue 15), each with real component processes:
dependency start order and restarts (GreengrassService.dependencyReady and its dependency
listener), Shutdown on BROKEN (Lifecycle.handleCurrentStateBroken), removal in a deployment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sim_helpers import write_component

from edgekit.toolkit.simulator.catalog import Catalog
from edgekit.toolkit.simulator.cloud import InProcessCloud
from edgekit.toolkit.simulator.deployment import DO_NOTHING, ComponentUpdate, Deployment, deploy
from edgekit.toolkit.simulator.device import Device, wait_until
from edgekit.toolkit.simulator.lifecycle import BROKEN, FINISHED, INSTALLED, RUNNING, Timeouts
from edgekit.toolkit.simulator.profiles import DeviceProfile, host_platform

FAST = Timeouts(install=10, startup=10, shutdown=5, recover=2, kill_grace_s=0.2)
DEP, APP, SOFT = "com.test.Dep", "com.test.App", "com.test.SoftApp"
STAMP = "date +%s.%N"
SLOW_START = 2.0  # seconds the dependency takes to report RUNNING


def _device(root: Path) -> Device:
    cloud = InProcessCloud()
    return Device(
        "dev-1",
        root,
        cloud.link("dev-1"),
        profile=DeviceProfile("t", host_platform()),
        timeouts=FAST,
    )


def _app(build: Path, name: str, dep_type: str, **extra) -> None:
    write_component(
        build,
        name,
        "1.0.0",
        lifecycle={
            "Install": f"{STAMP} > installed",
            "Run": f"{STAMP} >> started; exec sleep 120",
            "Shutdown": "echo stop >> shutdowns",
            **extra,
        },
        dependencies={DEP: {"VersionRequirement": "^1.0.0", "DependencyType": dep_type}},
    )


def _first_time(svc, state: str) -> float:
    return next(t for t, s in svc.history if s == state)


def _stamps(dev: Device, name: str, file: str) -> list[float]:
    path = dev.root.work(name) / file
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def _run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_install_does_not_wait_and_only_hard_dependencies_delay_the_start(short_dir):
    build = short_dir / "b"
    # the dependency's Startup takes a while before it exits 0 (RUNNING)
    write_component(
        build,
        DEP,
        "1.0.0",
        lifecycle={"Startup": f"sleep {SLOW_START}", "Shutdown": "true"},
    )
    _app(build, APP, "HARD")
    _app(build, SOFT, "Soft")  # the type is read without regard to case
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        dev = _device(short_dir / "d")
        await dev.start()
        try:
            r = await deploy(dev, cat, Deployment([ComponentUpdate(APP), ComponentUpdate(SOFT)]))
            return dev, r
        finally:
            await dev.stop()

    dev, r = _run(go())
    assert r.ok, r.reason
    dep_running = _first_time(dev.components[DEP].service, RUNNING)
    hard_installed = _stamps(dev, APP, "installed")[0]
    hard_started = _stamps(dev, APP, "started")[0]
    soft_started = _stamps(dev, SOFT, "started")[0]
    # Install ran while the dependency was still starting; Run only after it was RUNNING
    assert hard_installed < dep_running - SLOW_START / 2
    assert hard_started >= dep_running
    # a SOFT dependency does not delay the start
    assert soft_started < dep_running - SLOW_START / 2


def test_hard_dependency_error_restarts_the_dependant_not_the_soft_one(short_dir):
    build = short_dir / "b"
    write_component(build, DEP, "1.0.0", lifecycle={"Run": "exec sleep 120"})
    _app(build, APP, "HARD")
    _app(build, SOFT, "SOFT")
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        dev = _device(short_dir / "d")
        await dev.start()
        try:
            r = await deploy(dev, cat, Deployment([ComponentUpdate(APP), ComponentUpdate(SOFT)]))
            assert r.ok, r.reason
            assert dev.kill_component(DEP)  # the dependency crashes: ERRORED, then restarts
            hard = dev.components[APP].service
            assert await wait_until(lambda: len(_stamps(dev, APP, "started")) == 2, 30)
            assert await wait_until(lambda: hard.state == RUNNING, 30)
            await asyncio.sleep(0.5)  # give a wrong restart of the SOFT dependant time to show
            return dev
        finally:
            await dev.stop()

    dev = _run(go())
    hard, soft = dev.components[APP].service, dev.components[SOFT].service
    assert hard is not None and soft is not None
    assert hard.restarts == 1
    # restarted, not errored: Shutdown ran, no error was counted
    assert "ERRORED" not in [s for _, s in hard.history]
    assert (dev.root.work(APP) / "shutdowns").read_text().count("stop") >= 1
    assert soft.restarts == 0 and len(_stamps(dev, SOFT, "started")) == 1


def test_broken_runs_shutdown_and_the_summary_names_the_broken_dependency(short_dir):
    build = short_dir / "b"
    write_component(
        build,
        DEP,
        "1.0.0",
        lifecycle={"Startup": "exit 3", "Shutdown": "echo shut >> shutdowns"},
    )
    _app(build, APP, "HARD")
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        dev = _device(short_dir / "d")
        await dev.start()
        try:
            return dev, await deploy(
                dev, cat, Deployment([ComponentUpdate(APP)], failure_policy=DO_NOTHING)
            )
        finally:
            await dev.stop()

    dev, r = _run(go())
    assert not r.ok and r.states[DEP] == BROKEN
    assert f"COMPONENT_BROKEN: {DEP}" in r.reason
    # two retries stop it (STOPPING runs Shutdown) and the third error makes it BROKEN, which
    # runs Shutdown once more (the emulator ran it only twice before)
    assert (dev.root.work(DEP) / "shutdowns").read_text().split() == ["shut"] * 3
    # the dependant never started: its HARD dependency never became ready
    assert r.states[APP] in (INSTALLED, FINISHED)
    assert _stamps(dev, APP, "started") == []
    assert _stamps(dev, APP, "installed")  # but its Install ran


def test_removal_stops_the_component_and_runs_its_shutdown(short_dir):
    build = short_dir / "b"
    write_component(build, DEP, "1.0.0", lifecycle={"Run": "exec sleep 120"})
    _app(build, APP, "HARD")
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        dev = _device(short_dir / "d")
        await dev.start()
        try:
            r1 = await deploy(dev, cat, Deployment([ComponentUpdate(APP)]))
            pid = dev.components[APP].service.main_pid
            # DEP stays: APP still depends on it
            r2 = await deploy(dev, cat, Deployment([], remove=[DEP]))
            r3 = await deploy(dev, cat, Deployment([], remove=[APP]))
            return dev, r1, r2, r3, pid
        finally:
            await dev.stop()

    t0 = time.time()
    dev, r1, r2, r3, pid = _run(go())
    assert r1.ok and r2.ok and r3.ok, (r1.reason, r2.reason, r3.reason)
    assert DEP in r2.versions and APP in r2.versions
    assert APP not in r3.versions and APP not in dev.components and DEP in r3.versions
    assert (dev.root.work(APP) / "shutdowns").read_text().split() == ["stop"]
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert time.time() - t0 < 60


DEFERRER = r"""
import json, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
ipc = GreengrassCoreIPCClientV2()
asked = []
def on_event(ev):
    if ev.pre_update_event is not None:
        dep = ev.pre_update_event.deployment_id
        asked.append(dep)
        line = {"pre": dep, "t": time.time()}
        # busy the first time: come back in 1.5 s; then let the update go
        ipc.defer_component_update(deployment_id=dep, message="draining",
                                   recheck_after_ms=1500 if len(asked) == 1 else 0)
    else:
        line = {"post": ev.post_update_event.deployment_id, "t": time.time()}
    with open("events", "a") as f:
        f.write(json.dumps(line) + "\n")
ipc.subscribe_to_component_updates(on_stream_event=on_event)
ipc.update_state(state="RUNNING")
time.sleep(120)
"""


def test_a_component_defers_an_update_and_the_deployment_waits(short_dir):
    import json
    import sys

    build = short_dir / "b"
    deferrer, other = "com.test.Deferrer", "com.test.Other"
    write_component(
        build,
        deferrer,
        "1.0.0",
        files={"d.py": DEFERRER},
        lifecycle={"Startup": f"exec {sys.executable} -u {{artifacts:path}}/d.py"},
    )
    write_component(build, other, "1.0.0", lifecycle={"Run": "exec sleep 120"})
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        dev = _device(short_dir / "d")
        await dev.start()
        try:
            first = await deploy(dev, cat, Deployment([ComponentUpdate(deferrer)]))
            assert first.ok, first.reason
            t0 = time.time()
            second = await deploy(
                dev, cat, Deployment([ComponentUpdate(other)], deployment_id="dep-2")
            )
            skipped = await deploy(
                dev,
                cat,
                Deployment(
                    [ComponentUpdate(other)],
                    deployment_id="dep-3",
                    update_policy="SKIP_NOTIFY_COMPONENTS",
                ),
            )
            events = dev.root.work(deferrer) / "events"
            await wait_until(lambda: events.exists() and "dep-2" in events.read_text(), 10)
            return dev, second, skipped, t0
        finally:
            await dev.stop()

    dev, second, skipped, t0 = _run(go())
    assert second.ok and skipped.ok
    assert second.deferred_rounds == 1 and skipped.deferred_rounds == 0
    lines = [json.loads(x) for x in (dev.root.work(deferrer) / "events").read_text().splitlines()]
    for_dep2 = [x for x in lines if "dep-2" in (x.get("pre"), x.get("post"))]
    kinds = ["pre" if "pre" in x else "post" for x in for_dep2]
    assert kinds == ["pre", "pre", "post"], lines
    assert for_dep2[1]["t"] - for_dep2[0]["t"] >= 1.4  # asked again after the deferral
    assert second.duration_s >= 1.4
    # the update itself ran after the last PreComponentUpdateEvent
    other_started = _first_time(dev.components[other].service, RUNNING)
    assert other_started >= for_dep2[1]["t"] - 0.05
    assert not any("dep-3" in (x.get("pre") or "") for x in lines)  # SKIP_NOTIFY_COMPONENTS


def test_self_dependency_and_conflicting_ranges_fail_before_anything_changes(short_dir):
    build = short_dir / "b"
    write_component(
        build,
        APP,
        "1.0.0",
        lifecycle={"Run": "exec sleep 120"},
        dependencies={APP: {"VersionRequirement": ">=1.0.0"}},
    )
    write_component(build, DEP, "1.0.0", lifecycle={"Run": "exec sleep 120"})
    write_component(build, DEP, "2.0.0", lifecycle={"Run": "exec sleep 120"})
    _app(build, SOFT, "HARD")  # needs DEP ^1.0.0
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        dev = _device(short_dir / "d")
        await dev.start()
        try:
            circular = await deploy(dev, cat, Deployment([ComponentUpdate(APP)]))
            conflict = await deploy(
                dev, cat, Deployment([ComponentUpdate(SOFT), ComponentUpdate(DEP, "2.0.0")])
            )
            return dev, circular, conflict
        finally:
            await dev.stop()

    dev, circular, conflict = _run(go())
    assert circular.detailed_status == "FAILED_NO_STATE_CHANGE"
    assert "Circular dependency detected" in circular.reason
    assert conflict.detailed_status == "FAILED_NO_STATE_CHANGE"
    assert "no version satisfies" in conflict.reason
    assert dev.components == {}
