"""`edgekit simulate`: run the packaged component on simulated Greengrass core devices, offline,
with load, drift and faults; `edgekit simulate bench` runs the on-device benchmark fleet-wide."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.live import Live

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json
from edgekit.toolkit.simulator.faults import parse_faults
from edgekit.toolkit.simulator.lifecycle import Timeouts
from edgekit.toolkit.simulator.profiles import DeviceProfile, get_profile
from edgekit.toolkit.simulator.runner import SimulateOptions, simulate
from edgekit.toolkit.simulator.view import bench_table, fleet_table

simulate_app = typer.Typer(help="Run a Greengrass component on simulated core devices, offline.")
app.add_typer(simulate_app, name="simulate")


def parse_profiles(text: str | None) -> list[DeviceProfile]:
    """`host,rpi4*3`: a simulator profile or a hardware target name, `*N` a slowdown factor."""
    if not text:
        return [get_profile("host")]
    out_: list[DeviceProfile] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, factor = part.partition("*")
        profile = _profile(name)
        if factor:
            from dataclasses import replace

            profile = replace(profile, slowdown=float(factor), name=part)
        out_.append(profile)
    return out_


def _profile(name: str) -> DeviceProfile:
    try:
        return get_profile(name)
    except BadInputError:
        pass
    try:  # a hardware target from `edgekit targets` (platform values, cores, memory)
        from edgekit.toolkit.targets import get_target

        t = get_target(name)
    except Exception:
        raise BadInputError(
            f"unknown profile {name!r}", hint="use host, gateway, small, pi4 or a target name"
        ) from None
    return DeviceProfile(
        name,
        dict(t.platform),
        cores=t.cores,
        memory_mb=None,
        threads=t.threads,
        description=f"{t.title} (platform and cores from the target; memory not capped)",
    )


def _options(
    component: Path,
    devices: int,
    profiles: str | None,
    duration: str | float,
    load: str | float,
    drift_after: str | float | None,
    faults: str | None,
    broker: str | None,
    output: Path | None,
    name: str | None,
    data: Path | None,
    base_port: int | None,
    timeout_scale: float,
    merge: str | None = None,
    wheel_cache: Path | None = None,
    online: bool = False,
) -> SimulateOptions:
    if not component.is_dir():
        raise BadInputError(
            f"component folder {component} does not exist",
            hint="run `edgekit package` and pass its greengrass-build folder",
        )
    if devices < 1:
        raise BadInputError("--devices must be at least 1")
    if data is not None:
        from edgekit.toolkit.simulator.load import load_dataset

        load_dataset(data)  # refuse a bad or pickled --data before any device starts
    return SimulateOptions(
        component_dir=component,
        run_dir=output or Path("edgekit-sim-run"),
        devices=devices,
        profiles=parse_profiles(profiles),
        duration_s=options.parse_duration(duration, "--duration") or 0.0,
        qps=options.parse_rate(load, "--load") or 0.0,
        drift_after_s=options.parse_duration(drift_after, "--drift-after"),
        drift_devices=1 if drift_after else None,
        faults=parse_faults(faults),
        broker=broker,
        component=name,
        data=data,
        base_port=base_port,
        timeouts=Timeouts().scaled(timeout_scale),
        extra_merge=_merge(merge),
        wheel_cache=wheel_cache,
        offline=not online,
    )


def _merge(text: str | None) -> dict[str, Any]:
    """`--merge` JSON object, or KEY=VALUE pairs separated by commas."""
    if not text:
        return {}
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"--merge is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise BadInputError("--merge must be a JSON object")
        return value
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise BadInputError(
                f"--merge item {part!r} is not KEY=VALUE", hint='e.g. --merge "window_s=5"'
            )
        pairs[key.strip()] = value.strip()
    return pairs


COMPONENT = typer.Option(
    ..., "--component", help="greengrass-build folder (recipes/ + artifacts/)."
)
DEVICES = typer.Option(3, "--devices", help="Number of simulated core devices.")
PROFILES = typer.Option(
    None,
    "--profiles",
    help="Comma-separated profiles (host, gateway, small, pi4 or a target), `*N` = slowdown.",
)
BROKER = typer.Option(
    None,
    "--broker",
    help="mqtt://host:port or mqtts://...: bridge the cloud side to a real broker.",
)
OUTPUT = options.output("the run folder (device roots, logs, cloud.jsonl, summary.json).")
NAME = typer.Option(None, "--name", help="Component name when the build folder holds several.")
DATA = typer.Option(
    None, "--data", help="Inputs to send (.npz keyed by input name); default: the bundle's samples."
)
PORT = typer.Option(
    None,
    "--base-port",
    help="REST port of the first device's agent (then +1 each); default 18080, or any free "
    "block when another process holds it; 0 = any free block.",
)
SCALE = typer.Option(1.0, "--timeout-scale", help="Multiply the nucleus's lifecycle timeouts.")
MERGE = typer.Option(
    None,
    "--merge",
    help="Configuration merged into each device's deployment: JSON or KEY=VALUE,... "
    '(e.g. "window_s=5"); the per-device port is merged too. Paths (captureDir, cert, key, '
    "ca) are relative to the current folder; captureDir gets a subfolder per device.",
)
WHEEL_CACHE = typer.Option(
    None,
    "--wheel-cache",
    help="Shared read-only wheel cache the devices' pip installs from "
    "(default ~/.cache/edgekit/wheels/cpXY; filled from the installed packages).",
)
ONLINE = typer.Option(
    False, "--online", help="Let the component's Install reach a package index (no wheel cache)."
)


@simulate_app.callback(invoke_without_command=True)
@handle_errors
def simulate_command(
    ctx: typer.Context,
    component: Path = typer.Option(
        None, "--component", help="greengrass-build folder (recipes/ + artifacts/)."
    ),
    devices: int = DEVICES,
    profiles: str = PROFILES,
    duration: float = options.duration("60s", "to drive load after the rollout"),
    load: float = options.rate("0", "--load", "Requests per device (KServe v2 REST)"),
    drift_after: float | None = options.duration_of(
        None, "--drift-after", "Shift the first device's inputs after this long"
    ),
    faults: str = typer.Option(
        None, "--faults", help="KIND@START[+LEN][:THING][*F], comma-separated."
    ),
    broker: str = BROKER,
    output: Path = OUTPUT,
    name: str = NAME,
    data: Path = DATA,
    base_port: int | None = PORT,
    timeout_scale: float = SCALE,
    merge: str = MERGE,
    wheel_cache: Path = WHEEL_CACHE,
    online: bool = ONLINE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start N devices, deploy the component (canary first), drive load, inject faults."""
    if ctx.invoked_subcommand is not None:
        return
    if component is None:
        raise BadInputError(
            "--component is required", hint="edgekit simulate --component greengrass-build"
        )
    opts = _options(
        component,
        devices,
        profiles,
        duration,
        load,
        drift_after,
        faults,
        broker,
        output,
        name,
        data,
        base_port,
        timeout_scale,
        merge,
        wheel_cache,
        online,
    )
    summary = _run(opts, as_json)
    _finish(summary, as_json)


@simulate_app.command("bench")
@handle_errors
def bench_command(
    component: Path = COMPONENT,
    devices: int = DEVICES,
    profiles: str = PROFILES,
    broker: str = BROKER,
    output: Path = OUTPUT,
    name: str = NAME,
    base_port: int | None = PORT,
    timeout_scale: float = SCALE,
    merge: str = MERGE,
    wheel_cache: Path = WHEEL_CACHE,
    online: bool = ONLINE,
    budget: float = options.duration_of(
        None, "--budget", "How long each device may benchmark (agent default 20s)"
    ),
    variants: str = options.variants(" to benchmark, comma-separated (default: all shipped)."),
    old_variants: str | None = options.alias("--variants", "--variant", default=None),
    as_json: bool = JSON_OPTION,
) -> None:
    """Deploy, send the bench command (cmd/edgekit/{thing}/bench) to every device, collect results."""
    opts = _options(
        component,
        devices,
        profiles,
        "0",
        "0",
        None,
        None,
        broker,
        output,
        name,
        None,
        base_port,
        timeout_scale,
        merge,
        wheel_cache,
        online,
    )
    if budget is not None and budget <= 0:
        raise BadInputError("--budget must be more than 0 seconds")
    from edgekit.toolkit.simulator.bench import check_requested, outcome, shipped_variants

    wanted = _list(options.merged(variants, old_variants, "--variants", "--variant"))
    check_requested(wanted, shipped_variants(component, name))  # refused before any device starts
    opts.bench = {k: v for k, v in (("budget_s", budget), ("variants", wanted)) if v}
    summary = _run(opts, as_json)
    things = sorted(summary["profiles"])
    result = outcome(summary["bench"], things)
    summary["bench_outcome"] = result.__dict__
    if not as_json:
        out.print(bench_table(summary["bench"]))
        err.print(f"bench results from {len(result.measured)}/{len(things)} devices")
        for thing, why in result.refused.items():
            err.print(f"[red]{thing} refused the bench command[/]: {why}")
        if result.silent:
            err.print(f"[red]no bench reply from[/] {', '.join(result.silent)}")
    if as_json and not result.ok:
        print_json({"ok": False, **summary})
        raise typer.Exit(1)
    _finish(summary, as_json)
    if not result.ok:
        raise typer.Exit(1)  # a device refused or did not answer: a failed check


def _list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _run(opts: SimulateOptions, as_json: bool) -> dict[str, Any]:
    if as_json:
        return asyncio.run(simulate(opts))
    with Live(console=err, refresh_per_second=2, transient=False) as live:
        return asyncio.run(simulate(opts, lambda snap: live.update(fleet_table(snap))))


def _finish(summary: dict[str, Any], as_json: bool) -> None:
    rollout = summary["rollout"]
    ok = not rollout["aborted"] and all(
        r["status"] == "SUCCEEDED" for r in rollout["results"].values()
    )
    if as_json:
        print_json({"ok": ok, **summary})
    else:
        for thing, r in rollout["results"].items():
            out.print(f"{thing}: deployment {r['detailed_status']} {r['reason']}".rstrip())
        if rollout["aborted"]:
            out.print(
                f"[bold red]rollout aborted[/]: {rollout['reason']}; skipped {rollout['skipped']}"
            )
        for f in summary["faults"]:
            out.print(
                f"fault {f['kind']}@{f['start']}s: " + "; ".join(e["what"] for e in f["events"])
            )
        cache = summary.get("wheel_cache") or {}
        if cache.get("missing"):
            out.print(
                f"[yellow]wheel cache {cache['folder']} has no wheel for {cache['missing']}[/]: "
                "Install needs the component's own wheelhouse, --online, or those wheels in "
                "--wheel-cache"
            )
        out.print(f"run folder: {summary['run_dir']} (summary.json, cloud.jsonl, devices/*/logs)")
    if not ok:
        raise typer.Exit(1)
