"""`edgekit simulate` end to end: start N devices, roll the component out (canary first), drive
load, inject faults, watch the cloud traffic, and write a summary into the run folder."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import owned
from edge_agent.atomic import write_json
from edge_agent.errors import BadInputError
from edgekit.toolkit.simulator import ports as ports_mod
from edgekit.toolkit.simulator import wheelcache
from edgekit.toolkit.simulator.catalog import Catalog
from edgekit.toolkit.simulator.cloud import InProcessCloud, Listener
from edgekit.toolkit.simulator.deployment import ComponentUpdate, Deployment
from edgekit.toolkit.simulator.faults import Fault, FaultContext, run_fault
from edgekit.toolkit.simulator.fleet import RolloutResult, SimFleet
from edgekit.toolkit.simulator.lifecycle import Timeouts
from edgekit.toolkit.simulator.load import Dataset, DeviceLoad, drive, find_dataset, load_dataset
from edgekit.toolkit.simulator.profiles import DeviceProfile, get_profile

BENCH_TOPIC = "cmd/edgekit/{thing}/bench"
COMMAND_TOPIC_PREFIX = "cmd/"  # cloud-to-device commands, never a device's message


@dataclass
class SimulateOptions:
    component_dir: Path
    run_dir: Path
    devices: int = 3
    profiles: list[DeviceProfile] = field(default_factory=lambda: [get_profile("host")])
    duration_s: float = 60.0
    qps: float = 0.0
    drift_after_s: float | None = None
    drift_devices: int | None = None  # the first N devices drift (None: all)
    faults: list[Fault] = field(default_factory=list)
    broker: str | None = None
    base_port: int | None = None  # None: 18080 if free, else any free block; 0: any block
    component: str | None = None
    data: Path | None = None
    waves: list[int | str] = field(default_factory=lambda: [1, "100%"])
    abort_threshold: float = 0.5
    timeouts: Timeouts = field(default_factory=Timeouts)
    extra_merge: dict[str, Any] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)  # the fleet collector plugs in here
    bench: dict[str, Any] | None = None  # send the bench command after the rollout
    collect: bool = True  # in-process cloud: the fleet collector writes run_dir/fleet.db
    # The shared read-only wheel cache the devices' pip installs from (None: the default
    # folder, ~/.cache/edgekit/wheels/cpXY); offline=False lets Install reach a package index.
    wheel_cache: Path | None = None
    offline: bool = True

    def __post_init__(self) -> None:
        # the devices' lifecycle steps run in their own work folders: every path decided here
        # (the command line's, relative to the user's folder) goes to them absolute
        self.component_dir = Path(self.component_dir).absolute()
        self.run_dir = Path(self.run_dir).absolute()
        self.data = Path(self.data).absolute() if self.data else None
        self.wheel_cache = Path(self.wheel_cache).absolute() if self.wheel_cache else None
        self.extra_merge = absolute_config_paths(self.extra_merge)


# Agent configuration keys that hold a path on the workstation when the simulator merges them.
CONFIG_PATH_KEYS = ("capture_dir", "cert", "key", "ca")


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_").replace("-", "_")


def absolute_config_paths(merge: dict[str, Any]) -> dict[str, Any]:
    """`--merge` path values made absolute against the current folder: the agent would read a
    relative one against the component's work folder, far from where the user meant."""
    out = dict(merge)
    for key, value in merge.items():
        if _snake(key) in CONFIG_PATH_KEYS and isinstance(value, str) and value:
            out[key] = str(Path(value).expanduser().absolute())
    return out


def device_merge(merge: dict[str, Any], thing: str) -> dict[str, Any]:
    """One device's share of the merged configuration: a capture folder given for the fleet
    gets a subfolder per device (each agent rotates its own capture-N.jsonl files)."""
    out = dict(merge)
    for key, value in merge.items():
        if _snake(key) == "capture_dir" and isinstance(value, str) and value:
            out[key] = str(Path(value) / thing)
    return out


class CloudTap:
    """Counts device-to-cloud messages per thing and kind (hello/metrics/alerts/bench)."""

    def __init__(self, path: Path) -> None:
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.last: dict[tuple[str, str], Any] = {}
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def __call__(self, thing: str, topic: str, payload: bytes) -> None:
        if topic.startswith(COMMAND_TOPIC_PREFIX):
            # a cloud-to-device command published through a device's broker link (simulate
            # bench with --broker) is not a device message: counted as one, it passed for the
            # device's reply, and the benches ran all at once
            return
        kind = topic.rsplit("/", 1)[-1]
        self.counts[thing][kind] += 1
        try:
            body: Any = json.loads(payload)
        except ValueError:
            body = payload.decode("utf-8", "replace")
        self.last[(thing, kind)] = body
        self._fh.write(
            json.dumps({"t": time.time(), "thing": thing, "topic": topic, "payload": body}) + "\n"
        )

    def close(self) -> None:
        self._fh.close()


PORT_KEY = "port"  # the agent recipe's own key: `--port {configuration:/port}`


def port_merge(declared: dict[str, Any], port: int, extra: dict[str, Any]) -> dict[str, Any]:
    """One device's configuration MERGE: its own port, only where the recipe declares a port
    (the nucleus gives a component nothing its recipe or deployment did not), and --merge."""
    merge = {PORT_KEY: str(port)} if PORT_KEY in declared else {}
    return {**merge, **extra}


def pick_component(catalog: Catalog, wanted: str | None) -> str:
    names = sorted({n for n, _ in catalog.entries})
    if wanted:
        if wanted not in names:
            raise BadInputError(f"component {wanted} is not in the build folder (have {names})")
        return wanted
    if len(names) == 1:
        return names[0]
    raise BadInputError(f"the build folder has several components {names}", hint="pass `name`")


RUN_KIND = "simulate-run"


def claim_run_dir(opts: SimulateOptions) -> Path | None:
    """The run folder may be new, empty or a run folder edgekit wrote; never the user's folder,
    the current one or one holding the component. An earlier run is moved aside (and removed
    when this one ends); returns where it went."""
    run_dir = Path(opts.run_dir)
    inputs = [opts.component_dir, opts.data, opts.wheel_cache]
    if not owned.check_replace(run_dir, [RUN_KIND], inputs) or not any(run_dir.iterdir()):
        return None
    old = run_dir.absolute().with_name(f".{run_dir.name}.old-{os.getpid()}")
    os.replace(run_dir, old)
    return old


async def simulate(
    opts: SimulateOptions, on_tick: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Run the simulation into its run folder, marked as edgekit's so a later run may replace
    it (and the run before this one is removed only once this one has ended)."""
    old = claim_run_dir(opts)
    try:
        return await _simulate(opts, on_tick)
    except BaseException:
        if old is not None and not Path(opts.run_dir).exists():
            os.replace(old, opts.run_dir)  # refused before it started: the earlier run stays
            old = None
        raise
    finally:
        if Path(opts.run_dir).is_dir():
            owned.write_marker(opts.run_dir, RUN_KIND)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _cloud(opts: SimulateOptions, things: list[str]) -> tuple[Any, CloudTap, Any]:
    """Where the devices publish (in-process, or a real broker), the tap that records it, and
    the fleet collector when asked (in-process only); a fixed port block is checked free
    first, as the last input check before the run folder is made."""
    if opts.broker:
        from edgekit.toolkit.simulator.mqtt_bridge import MqttCloud

        cloud: Any = MqttCloud(opts.broker)
    else:
        cloud = InProcessCloud()
    if opts.base_port:
        ports_mod.check_block(opts.base_port, things)
    opts.run_dir.mkdir(parents=True, exist_ok=True)  # only once the input is known to be good
    tap = CloudTap(opts.run_dir / "cloud.jsonl")
    if isinstance(cloud, InProcessCloud):
        cloud.add_listener(tap)
        for fn in opts.listeners:
            cloud.add_listener(fn)
    collector = None
    if isinstance(cloud, InProcessCloud) and opts.collect:
        from edgekit.toolkit.fleet.sim import attach_collector

        collector = attach_collector(cloud, opts.run_dir)
    return cloud, tap, collector


def _load_data(opts: SimulateOptions, fleet: SimFleet, ready: list[str]) -> Dataset | None:
    """The data set the load generator sends: --data, else the samples shipped in the model."""
    if not (opts.qps > 0 and ready):
        return None
    data = load_dataset(opts.data) if opts.data else find_dataset(fleet.devices[ready[0]].root.path)
    if data is None:
        raise BadInputError("no data set to drive load with", hint="pass `data` samples.npz")
    return data


def _drift_summary(
    opts: SimulateOptions, data: Dataset | None, drift_things: set[str] | None, ready: list[str]
) -> dict[str, Any]:
    drifted = opts.drift_after_s is not None and data is not None
    return {
        "after_s": opts.drift_after_s,
        "devices": sorted(drift_things if drift_things is not None else ready) if drifted else [],
        "inputs": data.drifted_inputs if data is not None else [],
        "shift_sigmas": data.shift_sigmas if data is not None else None,
    }


async def _simulate(
    opts: SimulateOptions, on_tick: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Start the devices, roll the component out, drive load and faults, and summarise; the
    devices stop before the cloud's counts are read (their last windows flush on Shutdown)."""
    catalog = Catalog()
    catalog.add_build_dir(opts.component_dir)
    component = pick_component(catalog, opts.component)
    things = [f"sim-{i + 1:03d}" for i in range(opts.devices)]
    cloud, tap, collector = _cloud(opts, things)
    if opts.base_port is None:
        base = ports_mod.default_block(len(things))
    else:
        base = opts.base_port or ports_mod.free_block(len(things))
    device_env, wheels = _offline_env(opts, component)
    fleet = SimFleet(opts.run_dir, cloud, catalog, opts.timeouts)
    ports = {t: base + i for i, t in enumerate(things)}
    started = time.time()
    try:
        for i, t in enumerate(things):
            await fleet.add_device(t, opts.profiles[i % len(opts.profiles)], extra_env=device_env)
        if not isinstance(cloud, InProcessCloud):
            _tap_broker(fleet, tap)
        rollout = await _rollout(opts, fleet, catalog, component, ports)
        ready = [t for t in things if t in rollout.results and rollout.results[t].ok]
        data = _load_data(opts, fleet, ready)
        loads = [DeviceLoad(t, ports[t]) for t in ready]
        drift_things = set(ready[: opts.drift_devices]) if opts.drift_devices else None
        final, bench_results = await _drive_run(
            opts, fleet, cloud, tap, component, ready, loads, data, drift_things, on_tick
        )
        summary = {
            "component": component,
            "run_dir": str(opts.run_dir),
            "started_at": started,
            "duration_s": opts.duration_s,
            "cloud": "mqtt " + opts.broker if opts.broker else "in-process",
            "profiles": {t: fleet.devices[t].profile.to_dict() for t in things},
            "slowdown_note": "slowdown factors are applied by SIGSTOP/SIGCONT duty cycling of the "
            "component's processes: a fixed factor, not a model of a real device",
            "wheel_cache": wheels,
            "rollout": rollout.to_dict(),
            "devices": final["devices"],
            "faults": [f.to_dict() for f in opts.faults],
            "bench": bench_results,
            "load": {x.thing: x.summary() for x in loads},
            "drift_after_s": opts.drift_after_s,
            "drift": _drift_summary(opts, data, drift_things, ready),
        }
    finally:
        # components first: their Shutdown closes the last window and flushes it to the cloud,
        # which must still be listening
        await fleet.stop()
        tap.close()
    # what reached the cloud, including the windows the agents flushed while stopping
    summary["messages"] = {t: dict(tap.counts[t]) for t in things}
    if collector is not None:  # after fleet.stop(): the agents' last windows are in
        from edgekit.toolkit.fleet.sim import finish_collector

        summary["fleet"] = finish_collector(collector, opts.run_dir)
    write_json(opts.run_dir / "summary.json", summary)
    return summary


def _offline_env(
    opts: SimulateOptions, component: str
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """With --offline, the shared wheel cache filled once and the pip environment that points
    every device at it; otherwise nothing."""
    if not opts.offline:
        return {}, None
    cache_dir, wheels = prepare_wheel_cache(opts.component_dir, component, opts.wheel_cache)
    return (wheelcache.pip_env(cache_dir) if cache_dir else {}), wheels


async def _rollout(
    opts: SimulateOptions,
    fleet: SimFleet,
    catalog: Catalog,
    component: str,
    ports: dict[str, int],
) -> RolloutResult:
    """Deploy the component to every device in waves, each on its own port."""
    declared = catalog.latest(component).recipe.default_configuration
    if opts.qps > 0 and PORT_KEY not in declared:
        raise BadInputError(
            f"{component} declares no {PORT_KEY!r} in its DefaultConfiguration, so the load "
            "generator has no port to reach it on",
            hint="declare the port the component serves on, or run without `load`",
        )

    def make(thing: str) -> Deployment:
        merge = port_merge(declared, ports[thing], device_merge(opts.extra_merge, thing))
        return Deployment(
            [ComponentUpdate(component, merge=merge)],
            timeout_s=opts.timeouts.install + opts.timeouts.startup + 30,
        )

    return await fleet.rollout(make, opts.waves, opts.abort_threshold)


async def _drive_run(
    opts: SimulateOptions,
    fleet: SimFleet,
    cloud: Any,
    tap: CloudTap,
    component: str,
    ready: list[str],
    loads: list[DeviceLoad],
    data: Dataset | None,
    drift_things: set[str] | None,
    on_tick: Callable[[dict[str, Any]], None] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run itself: faults on their schedule, the bench command, load (or a wait) for the
    duration, a snapshot every second; returns the final snapshot and the bench replies."""
    t0 = time.monotonic()
    ctx = FaultContext(fleet, component, opts.run_dir)
    fault_tasks = [asyncio.ensure_future(run_fault(ctx, f, t0)) for f in opts.faults]
    bench_results: dict[str, Any] = {}
    if opts.bench is not None and ready:
        bench_results = await send_bench(cloud, tap, ready, opts.bench)

    async def ticker() -> None:
        while True:
            if on_tick:
                on_tick(_snapshot(fleet, component, loads, tap, time.monotonic() - t0))
            await asyncio.sleep(1.0)

    tick = asyncio.ensure_future(ticker())
    try:
        if data is not None:
            await drive(loads, data, opts.qps, opts.duration_s, opts.drift_after_s, drift_things)
        else:
            await asyncio.sleep(opts.duration_s)
        if fault_tasks:
            await asyncio.wait(fault_tasks, timeout=max(5.0, opts.timeouts.startup))
    finally:
        tick.cancel()
    final = _snapshot(fleet, component, loads, tap, time.monotonic() - t0)
    if on_tick:
        on_tick(final)
    return final, bench_results


def prepare_wheel_cache(
    component_dir: Path, component: str, folder: Path | None
) -> tuple[Path | None, dict[str, Any] | None]:
    """Fill the shared cache with the component's pinned requirements, before any device starts
    (so N devices do not rebuild it N times). No pinned requirements: no cache."""
    started = time.perf_counter()
    pins = wheelcache.pins_in_artifacts(Path(component_dir) / "artifacts" / component)
    if not pins:
        return None, None
    cache = Path(folder) if folder else wheelcache.default_dir()
    report = wheelcache.fill(cache, pins)
    return cache, {**report.to_dict(), "fill_s": round(time.perf_counter() - started, 2)}


def _tap_broker(fleet: SimFleet, tap: CloudTap) -> None:
    """With a real broker the collector subscribes itself; the run folder still records what each
    device published through its proxy."""
    for thing, dev in fleet.devices.items():
        proxy = dev.services.mqtt
        original = proxy.link.publish

        async def publish(topic: str, payload: bytes, qos: int, _o=original, _t=thing) -> None:
            await _o(topic, payload, qos)
            tap(_t, topic, payload)

        proxy.link.publish = publish  # type: ignore[method-assign]


async def send_bench(
    cloud: Any,
    tap: CloudTap,
    things: list[str],
    body: dict[str, Any],
    timeout_s: float | None = None,
    sequential: bool = True,
) -> dict[str, Any]:
    """Send the bench command and wait for each dt/edgekit/{thing}/bench reply (the whole
    telemetry message, results under `body`). One device at a time by default: simulated
    devices share this host's CPU, so benchmarks run side by side would measure each other."""
    from edge_agent.benchmark.command import DEFAULT_BUDGET_S

    per_device = timeout_s or float(body.get("budget_s", DEFAULT_BUDGET_S)) + 60.0
    results: dict[str, Any] = {}
    for group in [[t] for t in things] if sequential else [things]:
        before = {t: tap.counts[t]["bench"] for t in group}
        for t in group:
            topic = BENCH_TOPIC.format(thing=t)
            payload = json.dumps(body).encode()
            if isinstance(cloud, InProcessCloud):
                cloud.inject(topic, payload)
            else:
                await _broker_publish(cloud, topic, payload)
        deadline = time.monotonic() + per_device
        while time.monotonic() < deadline and any(
            tap.counts[t]["bench"] <= before[t] for t in group
        ):
            await asyncio.sleep(0.1)
        results.update(
            {t: tap.last.get((t, "bench")) for t in group if tap.counts[t]["bench"] > before[t]}
        )
    return results


async def _broker_publish(cloud: Any, topic: str, payload: bytes) -> None:
    link = next(iter(cloud.links.values()))
    await link.publish(topic, payload, 1)


def _snapshot(
    fleet: SimFleet, component: str, loads: list[DeviceLoad], tap: CloudTap, t: float
) -> dict[str, Any]:
    by_thing = {x.thing: x for x in loads}
    devices = {}
    for thing, dev in fleet.devices.items():
        comp = dev.components.get(component)
        load = by_thing.get(thing)
        devices[thing] = {
            "profile": dev.profile.name,
            "version": comp.version if comp else None,
            "state": dev.state(component) or "-",
            "restarts": comp.service.restarts if comp and comp.service else 0,
            "throughput": round(load.throughput(), 2) if load else 0.0,
            "p99_ms": load.p99_ms() if load else None,
            "requests": load.ok if load else 0,
            "errors": load.errors if load else 0,
            "alerts": tap.counts[thing]["alerts"],
            "metrics_msgs": tap.counts[thing]["metrics"],
            "mqtt": dev.services.mqtt.stats(),
            "ipc_calls": dict(dev.ipc.calls),
        }
    return {"t": round(t, 1), "devices": devices}
