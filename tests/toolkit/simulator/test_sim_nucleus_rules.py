"""The emulator does what the nucleus does (issue 15), each with real component processes:
dependency start order and restarts (GreengrassService.dependencyReady and its dependency
listener), Shutdown on BROKEN (Lifecycle.handleCurrentStateBroken), removal in a deployment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sim_helpers import write_component

from toolkit.simulator.catalog import Catalog
from toolkit.simulator.cloud import InProcessCloud
from toolkit.simulator.deployment import DO_NOTHING, ComponentUpdate, Deployment, deploy
from toolkit.simulator.device import Device, wait_until
from toolkit.simulator.lifecycle import BROKEN, FINISHED, INSTALLED, RUNNING, Timeouts
from toolkit.simulator.profiles import DeviceProfile, host_platform

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
