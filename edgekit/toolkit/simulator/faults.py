"""Faults with a start and a length, injected into a running simulated fleet.

Spec: comma-separated `KIND@START[+LENGTH][:TARGET][*FACTOR]`, times in seconds (`s` allowed),
TARGET a thing name (default: every device, or the first device for per-device faults).
  broker-outage@20+10        every device loses its cloud connection for 10 s (QoS 1 spooled)
  kill-agent@15:sim-002      the component's main process is killed (restarted per lifecycle)
  corrupt-artifact@30        a new version whose artifact fails its digest is deployed (fails)
  bad-config@40              a configuration update the component cannot run with (rolls back)
  slow@10+20:sim-001*4       the device's processes run 4x slower for 20 s
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.simulator.artifacts import ArtifactSource
from edgekit.toolkit.simulator.deployment import ComponentUpdate, Deployment, deploy
from edgekit.toolkit.simulator.fleet import SimFleet
from edgekit.toolkit.simulator.recipe import Recipe

_SPEC = re.compile(
    r"^(?P<kind>[a-z-]+)@(?P<start>[\d.]+)s?(?:\+(?P<length>[\d.]+)s?)?"
    r"(?::(?P<target>[A-Za-z0-9_.-]+))?(?:\*(?P<factor>[\d.]+))?$"
)


@dataclass
class Fault:
    kind: str
    start: float
    length: float = 0.0
    target: str | None = None
    factor: float = 4.0
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultContext:
    fleet: SimFleet
    component: str
    run_dir: Path
    bad_config: dict[str, Any] = field(default_factory=lambda: {"port": "not-a-port"})

    def targets(self, fault: Fault, default_all: bool) -> list[str]:
        if fault.target:
            if fault.target not in self.fleet.devices:
                raise BadInputError(f"fault {fault.kind}: no device named {fault.target}")
            return [fault.target]
        names = list(self.fleet.devices)
        return names if default_all else names[:1]


Apply = Callable[[FaultContext, Fault], Awaitable[None]]
FAULTS: dict[str, Apply] = {}


def fault(kind: str) -> Callable[[Apply], Apply]:
    def register(fn: Apply) -> Apply:
        FAULTS[kind] = fn
        return fn

    return register


def parse_faults(spec: str | None) -> list[Fault]:
    out = []
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        m = _SPEC.match(part)
        if not m or m.group("kind") not in FAULTS:
            raise BadInputError(
                f"fault {part!r} is not KIND@START[+LENGTH][:TARGET][*FACTOR]",
                hint=f"kinds: {', '.join(FAULTS)}; e.g. broker-outage@20+10,kill-agent@15",
            )
        out.append(
            Fault(
                m.group("kind"),
                float(m.group("start")),
                float(m.group("length") or 0),
                m.group("target"),
                float(m.group("factor") or 4.0),
            )
        )
    return out


def _note(f: Fault, what: str, **extra: Any) -> None:
    f.events.append({"t": time.time(), "what": what, **extra})


@fault("broker-outage")
async def broker_outage(ctx: FaultContext, f: Fault) -> None:
    things = ctx.targets(f, default_all=True)
    for t in things:
        ctx.fleet.cloud.set_online(t, False)  # type: ignore[attr-defined]
    _note(f, "cloud connection down", things=things)
    await asyncio.sleep(f.length)
    for t in things:
        ctx.fleet.cloud.set_online(t, True)  # type: ignore[attr-defined]
    _note(f, "cloud connection back", things=things)


@fault("kill-agent")
async def kill_agent(ctx: FaultContext, f: Fault) -> None:
    for t in ctx.targets(f, default_all=False):
        dev = ctx.fleet.devices[t]
        svc = dev.components.get(ctx.component)
        pid = svc.service.main_pid if svc and svc.service else None
        ok = dev.kill_component(ctx.component)
        _note(f, "killed" if ok else "nothing to kill", thing=t, pid=pid)


@fault("slow")
async def slow(ctx: FaultContext, f: Fault) -> None:
    things = ctx.targets(f, default_all=False)
    before = {t: ctx.fleet.devices[t].throttler.factor for t in things}
    for t in things:
        ctx.fleet.devices[t].throttler.set_factor(f.factor)
    _note(f, f"slowed {f.factor}x", things=things)
    await asyncio.sleep(f.length)
    for t in things:
        ctx.fleet.devices[t].throttler.set_factor(before[t])
    _note(f, "speed restored", things=things)


def _bump(version: str) -> str:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    assert match is not None, f"not a semantic version: {version!r}"
    major, minor, patch = (int(x) for x in match.groups())
    return f"{major}.{minor}.{patch + 1}"


@fault("corrupt-artifact")
async def corrupt_artifact(ctx: FaultContext, f: Fault) -> None:
    for t in ctx.targets(f, default_all=False):
        dev = ctx.fleet.devices[t]
        current = dev.components[ctx.component].entry
        recipe = current.recipe
        new_version = _bump(recipe.version)
        build = ctx.run_dir / "faults" / "corrupt-build"
        dest = build / "artifacts" / recipe.name / new_version
        dest.mkdir(parents=True, exist_ok=True)
        arts = [a for m in recipe.manifests for a in (m.get("Artifacts") or [])]
        for i, art in enumerate(arts):
            src = current.source.locate(recipe.name, recipe.version, art["URI"])
            target = dest / src.name
            if not target.exists():
                shutil.copyfile(src, target)
                if i == 0:  # flip bytes in the first artifact after packaging
                    with open(target, "r+b") as fh:
                        fh.seek(0)
                        b = fh.read(1)
                        fh.seek(0)
                        fh.write(bytes([(b[0] if b else 0) ^ 0xFF]))
        raw = dict(recipe.raw, ComponentVersion=new_version)
        ctx.fleet.catalog.add(Recipe(raw), ArtifactSource(build))
        res = await deploy(
            dev, ctx.fleet.catalog, Deployment([ComponentUpdate(recipe.name, new_version)])
        )
        _note(
            f,
            "deployed corrupted version",
            thing=t,
            version=new_version,
            status=res.detailed_status,
            reason=res.reason,
            running=res.versions.get(recipe.name),
        )


@fault("bad-config")
async def bad_config(ctx: FaultContext, f: Fault) -> None:
    for t in ctx.targets(f, default_all=False):
        dev = ctx.fleet.devices[t]
        res = await deploy(
            dev,
            ctx.fleet.catalog,
            Deployment(
                [ComponentUpdate(ctx.component, merge=ctx.bad_config)],
                timeout_s=ctx.fleet.timeouts.startup * 4,
            ),
        )
        _note(
            f,
            "bad configuration deployed",
            thing=t,
            merge=ctx.bad_config,
            status=res.detailed_status,
            reason=res.reason,
            state=res.states.get(ctx.component),
        )


async def run_fault(ctx: FaultContext, f: Fault, t0: float) -> None:
    await asyncio.sleep(max(0.0, t0 + f.start - time.monotonic()))
    try:
        await FAULTS[f.kind](ctx, f)
    except Exception as exc:  # a fault that cannot apply is reported, not fatal
        _note(f, "fault failed", error=str(exc))
