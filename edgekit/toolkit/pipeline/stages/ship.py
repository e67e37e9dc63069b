"""Stages that ship: package the component, try it on the local core emulator (simulate),
publish it to AWS, deploy it (Greengrass, or a fleet registered in this process) canary first."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.greengrass import versions
from edgekit.toolkit.pipeline import fleets
from edgekit.toolkit.pipeline.keys import file_digest
from edgekit.toolkit.pipeline.spec import PipelineSpec
from edgekit.toolkit.pipeline.stages import Runtime, Stage, StageContext, register


def next_version(last: str | None) -> str:
    """The patch after `last` (1.0.0 when nothing was packaged yet), by SemVer's rules."""
    return versions.next_patch(last)


@dataclass
class PackageConfig:
    component: str
    version: str = "auto"  # auto: the patch after the last version this store packaged
    platforms: list[str] = field(default_factory=lambda: ["linux/amd64"])
    settings: dict[str, Any] = field(default_factory=dict)  # recipe DefaultConfiguration values
    sign_key: str | None = None  # Ed25519 private key (`edgekit keygen`): sign the model artifacts


@register("package", 60)
class Package(Stage):
    Config = PackageConfig
    path_keys = ("build_dir", "recipe")

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        key = spec.resolve(self.cfg.sign_key)
        # a new key makes a new release (the signatures differ), so it belongs in the key
        return {"options": asdict(self.cfg), "sign_key": file_digest(key) if key else None}

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgekit.toolkit.greengrass.package import PackageRequest, package
        from edgekit.toolkit.greengrass.recipe import Settings

        c: PackageConfig = self.cfg
        version = c.version
        if version == "auto":
            last = ctx.runtime.store.last_version(c.component) if ctx.runtime.store else None
            version = next_version(last)
        sign_key = ctx.spec.resolve(c.sign_key)
        try:
            settings = Settings(**c.settings)
        except TypeError as exc:
            raise ctx.spec.fail(("stages", "package", "settings"), str(exc)) from None
        result = package(
            PackageRequest(
                bundle_dir=ctx.bundle,
                name=c.component,
                version=version,
                platforms=c.platforms,
                output=ctx.work / "greengrass-build",
                overwrite=True,
                settings=settings,
                sign_key=sign_key,
            ),
            progress=ctx.say,
        )
        if not result.validation.ok:
            raise CheckFailedError(f"the recipe {result.recipe_path} does not validate")
        ctx.say(
            f"{c.component} {version}: "
            + ", ".join(f"{p.label} → {p.variant}" for p in result.plans)
        )
        return {
            "component": c.component,
            "version": version,
            "build_dir": ctx.work / "greengrass-build",
            "recipe": result.recipe_path,
            "platforms": {p.label: p.variant for p in result.plans},
            "plans": [p.to_dict() for p in result.plans],
            "artifacts": result.artifacts,
            "validation": result.validation.to_dict(),
            "lite_notes": sum(1 for p in result.validation.problems if p.lite),
            "signed_by": _key_id(sign_key),
        }


def _key_id(private: Path | None) -> str | None:
    """The fingerprint the devices see in their logs (`bundle signature verified (key …)`)."""
    if private is None:
        return None
    from edge_agent import signing

    return signing.key_id(signing.load_private_key(private).public_key())


@dataclass
class SimulateConfig:
    devices: int = 2
    duration_s: float = 10.0
    load: float = 5.0
    drift_after_s: float | None = None
    drift_devices: int | None = None  # the first N devices drift (None: all of them)
    expect_drift_alert: bool = False  # fail unless each drifted device's drift alert arrives
    merge: dict[str, Any] = field(default_factory=dict)
    # beside the pipeline file instead of inside the cache entry: the run folder (device roots,
    # logs, cloud.jsonl, fleet.db) and the fleet report (HTML)
    run_dir: str | None = None
    report: str | None = None


@register("simulate", 65)
class Simulate(Stage):
    """deploy-local: roll the component out to simulated core devices (the unmodified agent in the
    local Greengrass emulator), drive load, and fail when the rollout does (or, when asked, when
    a drifted device's drift alert never reaches the cloud)."""

    Config = SimulateConfig
    path_keys = ("run_dir",)

    def run(self, ctx: StageContext) -> dict[str, Any]:
        import time

        from edgekit.toolkit.pipeline.fleetcheck import check_report, fired_alerts, fleet_report
        from edgekit.toolkit.simulator.runner import SimulateOptions, simulate

        c: SimulateConfig = self.cfg
        opts = SimulateOptions(
            component_dir=Path(ctx.latest("build_dir")),
            run_dir=ctx.spec.resolve(c.run_dir) if c.run_dir else ctx.work / "simulation",
            devices=c.devices,
            duration_s=c.duration_s,
            qps=c.load,
            drift_after_s=c.drift_after_s,
            drift_devices=c.drift_devices,
            base_port=fleets.free_port_block(c.devices),
            component=ctx.latest("component"),
            extra_merge=dict(c.merge),
        )
        if c.report:  # refused before the simulation, not after it
            check_report(opts.run_dir, ctx.spec.resolve(c.report))
        drift = (
            f"; the first {c.drift_devices or c.devices} drift after {c.drift_after_s:g} s"
            if c.drift_after_s is not None
            else ""
        )
        ctx.say(
            f"{c.devices} simulated devices, canary first; {c.duration_s:g} s at "
            f"{c.load:g} req/s each{drift}"
        )
        started = time.perf_counter()
        summary = asyncio.run(simulate(opts))
        wall = time.perf_counter() - started
        rollout = summary["rollout"]
        failed = [t for t, r in rollout["results"].items() if r["status"] != "SUCCEEDED"]
        if rollout["aborted"] or failed:
            raise CheckFailedError(
                f"the component failed on the simulated devices {failed}: {rollout['reason']}",
                hint=f"see {opts.run_dir}/devices/*/logs",
            )
        fired = fired_alerts(opts.run_dir)
        report = fleet_report(opts.run_dir, ctx.spec.resolve(c.report)) if c.report else None
        drifted = list(summary["drift"]["devices"])
        load = summary.get("load") or {}
        result = {
            "run_dir": opts.run_dir,
            "devices": {t: d["state"] for t, d in summary["devices"].items()},
            "requests": sum(x.get("ok", 0) for x in load.values()),
            "errors": sum(x.get("errors", 0) for x in load.values()),
            "alerts": sum(d.get("alerts", 0) for d in summary["devices"].values()),
            "wall_s": round(wall, 1),
            "deployment_s": {t: r["duration_s"] for t, r in rollout["results"].items()},
            "rollout": {
                t: {k: r.get(k) for k in ("status", "detailed_status", "duration_s", "reason")}
                for t, r in rollout["results"].items()
            },
            "drifted": drifted,
            "drift_after_s": c.drift_after_s,
            "alerts_fired": fired,
            "messages": summary["messages"],
            "load": load,
            "fleet": summary.get("fleet") or {},
            "report": str(report) if report else None,
        }
        silent = [t for t in drifted if "drift" not in fired.get(t, [])]
        if c.expect_drift_alert and silent:
            raise CheckFailedError(
                f"no drift alert reached the cloud from the drifted device(s) {', '.join(silent)}",
                hint=f"see {opts.run_dir}/cloud.jsonl and devices/*/logs",
                details={"simulate": {k: v for k, v in result.items() if k != "run_dir"}},
            )
        return result


@dataclass
class PublishConfig:
    bucket: str
    region: str | None = None
    profile: str | None = None
    dry_run: bool = False


@register("publish", 70)
class Publish(Stage):
    Config = PublishConfig
    deploys = True

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgekit.toolkit.greengrass.aws import Clients
        from edgekit.toolkit.greengrass.publish import PublishRequest, publish

        c: PublishConfig = self.cfg
        result = publish(
            PublishRequest(
                build_dir=Path(ctx.latest("build_dir")), bucket=c.bucket, dry_run=c.dry_run
            ),
            Clients(region=c.region, profile=c.profile),
            progress=ctx.say,
        )
        return {"published": result}


def _fleet_deployer(runtime: Runtime, name: str | None) -> Any:
    """The in-process fleet `name`: the runtime's own first, then the registered ones (None when
    there is none, or no name: validate asks for `fleet: NAME`)."""
    if name is None:
        return None
    return runtime.deployers.get(name) or fleets.FLEETS.get(name)


@dataclass
class DeployConfig:
    to: str
    fleet: str | None = None
    thing: str | None = None
    thing_group: str | None = None
    target_arn: str | None = None
    region: str | None = None
    profile: str | None = None
    canary: int = 1  # devices in the first wave (IoT Jobs: devices per minute at first)
    abort_percent: float | None = 50.0
    merge: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False


@register("deploy", 80)
class Deploy(Stage):
    Config = DeployConfig
    deploys = True

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        inputs: dict[str, Any] = {"options": asdict(self.cfg)}
        if self.cfg.to == "fleet":
            deployer = _fleet_deployer(runtime, self.cfg.fleet)
            inputs["fleet"] = getattr(deployer, "identity", None)
        return inputs

    def run(self, ctx: StageContext) -> dict[str, Any]:
        c: DeployConfig = self.cfg
        component, version = ctx.latest("component"), ctx.latest("version")
        build_dir = Path(ctx.latest("build_dir"))
        if c.to == "fleet":
            deployer = _fleet_deployer(ctx.runtime, c.fleet)
            if deployer is None:
                raise BadInputError(
                    f"no fleet named {c.fleet!r} is running in this process",
                    hint="fleets are registered by the closed loop (edgekit.toolkit.pipeline.livefleet) "
                    "or with edgekit.toolkit.pipeline.fleets.register_fleet; use `to: greengrass` for AWS",
                )
            ctx.say(
                f"rolling {component} {version} out to fleet {c.fleet}, {c.canary} device(s) first"
            )
            result = deployer.deploy(build_dir, component, version, c.canary, dict(c.merge))
            if not result.get("ok"):
                raise CheckFailedError(
                    f"the rollout of {component} {version} failed: {result.get('reason')}",
                    details={"rollout": result},
                )
        else:
            result = self._greengrass(ctx, component, version, build_dir)
        return {
            "deployed": {
                "to": c.to if c.to == "greengrass" else f"fleet {c.fleet}",
                "component": component,
                "version": version,
                "bundle": str(ctx.latest("bundle")),
                "dry_run": bool(result.get("dry_run")),
            },
            "rollout": result,
        }

    def _greengrass(self, ctx: StageContext, component: str, version: str, build: Path) -> dict:
        from edgekit.toolkit.greengrass.aws import Clients
        from edgekit.toolkit.greengrass.deploy import DeployRequest, Rollout, deploy
        from edgekit.toolkit.greengrass.recipe import VERSION_CONFIG

        c: DeployConfig = self.cfg
        report = build / f"{component}-{version}.edgekit.json"
        request = DeployRequest(
            components={component: version},
            target_arn=c.target_arn,
            thing=c.thing,
            thing_group=c.thing_group,
            merge={component: dict(c.merge)} if c.merge else {},
            reset={component: list(VERSION_CONFIG)},  # the new version's choice per platform
            # canary first: IoT Jobs starts at `canary` devices a minute and cancels the
            # deployment when more than abort_percent of the first devices fail
            rollout=Rollout(
                base_rate=c.canary,
                abort_percent=c.abort_percent,
                abort_min_executed=c.canary,
            ),
            package_report=report if report.is_file() else None,
            dry_run=c.dry_run,
        )
        request.rollout.check()
        return deploy(request, Clients(region=c.region, profile=c.profile))
