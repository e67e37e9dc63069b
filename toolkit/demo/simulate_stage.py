"""Demo stage: the packaged component, unmodified, on a 3-device simulated Greengrass fleet.

The package stage's greengrass-build folder is deployed (canary first) to three simulated core
devices; each installs the agent offline from the shared wheel cache, reports RUNNING over IPC,
serves KServe v2 REST load, and sends telemetry to the in-process cloud, where the fleet collector
stores it in SQLite. One device gets drifted inputs part-way through; its agent raises the drift
alert. The stage ends with the fleet report (HTML) and its path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table

from toolkit.demo import DemoContext, stage
from toolkit.simulator.runner import SimulateOptions, simulate
from toolkit.simulator.view import fleet_table

DEVICES = 3
QPS = 20.0  # per device: enough rows per window for the drift test
# short windows and alerts on 2 of the last 3 windows, so drift shows within seconds;
# the component's defaults (60 s windows, 3 of 5) suit a real fleet, not a 30-second demo
DEMO_CONFIG = {"window_s": "2", "alert_m": "2", "alert_n": "3", "drift_min_samples": "30"}


def _plan(quick: bool) -> tuple[float, float]:
    """(seconds of load, seconds before the drifted device's inputs shift)."""
    return (12.0, 2.0) if quick else (30.0, 8.0)


def _build_dir(ctx: DemoContext) -> Path | None:
    recipe = (ctx.results.get("package") or {}).get("recipe")
    if recipe:
        return Path(recipe).parent.parent
    build = ctx.out / "greengrass-build"
    return build if (build / "recipes").is_dir() else None


def _alerts(run_dir: Path) -> dict[str, list[str]]:
    """Firing alert rules per device, from what reached the cloud (cloud.jsonl)."""
    import json

    fired: dict[str, list[str]] = {}
    path = run_dir / "cloud.jsonl"
    for line in path.read_text("utf-8").splitlines() if path.is_file() else []:
        msg = json.loads(line)
        if not msg["topic"].endswith("/alerts") or not isinstance(msg["payload"], dict):
            continue
        for alert in msg["payload"].get("body", {}).get("alerts", []):
            if alert.get("state") == "firing" and alert["rule"] not in fired.get(msg["thing"], []):
                fired.setdefault(msg["thing"], []).append(alert["rule"])
    return fired


def _fleet_report(run_dir: Path, out: Path) -> Path | None:
    """`edgekit fleet report --db <run>/fleet.db -o <html>` as a library call."""
    db = run_dir / "fleet.db"
    if not db.is_file():
        return None
    try:
        from toolkit.fleet.lab import BundleIndex
        from toolkit.fleet.report import write_html
        from toolkit.fleet.rules import RulesConfig
        from toolkit.fleet.store import SqliteStore
        from toolkit.fleet.summary import fleet_summary
    except ImportError:  # the fleet package is optional to the simulator
        return None

    store = SqliteStore.open_existing(db)
    try:
        summary = fleet_summary(
            store, BundleIndex([], [run_dir / "devices"]), RulesConfig.load(None)
        )
        return write_html(summary, store, out)
    finally:
        store.close()


def _result_table(summary: dict[str, Any], fired: dict[str, list[str]]) -> Table:
    table = Table(
        title="simulated fleet: what reached the cloud",
        caption=f"* inputs drifted after {summary['drift']['after_s']:.0f} s",
    )
    for col in ("device", "state", "requests", "errors", "p99 ms", "metrics", "alerts fired"):
        table.add_column(
            col, justify="left" if col in ("device", "state", "alerts fired") else "right"
        )
    drifted = set(summary["drift"]["devices"])
    for thing, d in summary["devices"].items():
        load = summary["load"].get(thing, {})
        p99 = load.get("p99_ms")
        table.add_row(
            thing + ("*" if thing in drifted else ""),
            d["state"],
            str(load.get("ok", 0)),
            str(load.get("errors", 0)),
            "-" if p99 is None else f"{p99:.1f}",
            str(summary["messages"].get(thing, {}).get("metrics", 0)),
            " ".join(fired.get(thing, [])) or "-",
        )
    return table


@stage(70, "simulate")
def simulate_demo(ctx: DemoContext) -> None:
    build = _build_dir(ctx)
    if build is None:
        ctx.fail("no greengrass-build folder from the package stage")
        return
    duration, drift_after = _plan(ctx.quick)
    run_dir = ctx.out / "simulate"
    opts = SimulateOptions(
        component_dir=build,
        run_dir=run_dir,
        devices=DEVICES,
        duration_s=duration,
        qps=QPS,
        drift_after_s=drift_after,
        drift_devices=1,
        base_port=0,  # any free ports: other runs may hold 18080+
        extra_merge=dict(DEMO_CONFIG),
    )
    ctx.console.print(
        f"{DEVICES} simulated core devices, canary first; {QPS:.0f} req/s each for {duration:.0f} s; "
        f"sim-001's inputs drift after {drift_after:.0f} s",
        highlight=False,
    )
    started = time.perf_counter()
    # the collector's log action would print each fleet alert; the stage sums them up instead
    alerts_log = logging.getLogger("edgekit.fleet.alerts")
    level = alerts_log.level
    alerts_log.setLevel(logging.ERROR)
    try:
        with Live(console=ctx.console, refresh_per_second=2, transient=True) as live:
            summary = asyncio.run(simulate(opts, lambda snap: live.update(fleet_table(snap))))
    finally:
        alerts_log.setLevel(level)
    wall = time.perf_counter() - started
    rollout = summary["rollout"]
    installs = {t: r["duration_s"] for t, r in rollout["results"].items()}
    for thing, r in rollout["results"].items():
        ctx.console.print(
            f"  {thing}: deployment {r['detailed_status']} in {r['duration_s']:.1f} s "
            f"(offline install, RUNNING over IPC) {r['reason']}".rstrip(),
            highlight=False,
        )
    fired = _alerts(run_dir)
    ctx.console.print(_result_table(summary, fired))
    report = _fleet_report(run_dir, ctx.out / "reports" / "fleet-report.html")
    fleet = summary.get("fleet") or {}
    if fleet:
        ctx.console.print(
            f"  fleet collector: {fleet.get('stored', 0)} messages stored in {fleet.get('db')}, "
            f"{fleet.get('duplicates', 0)} duplicates dropped, {fleet.get('lost', 0)} lost, "
            f"{fleet.get('alerts', 0)} fleet-side alerts (device alerts and fleet-wide drift)",
            highlight=False,
        )
    ctx.console.print(f"  run folder: {run_dir} (summary.json, cloud.jsonl, devices/*/logs)")
    if report is not None:
        ctx.console.print(f"  fleet report: {report}")
    ok = not rollout["aborted"] and all(
        r["status"] == "SUCCEEDED" for r in rollout["results"].values()
    )
    silent = [t for t in summary["drift"]["devices"] if "drift" not in fired.get(t, [])]
    if not ok:
        ctx.fail(f"the rollout did not succeed: {rollout.get('reason') or rollout['results']}")
    elif silent:
        ctx.fail(f"no drift alert reached the cloud from the drifted device(s) {', '.join(silent)}")
    ctx.results["simulate"] = {
        "ok": ok and not silent,
        "run_dir": str(run_dir),
        "wall_s": round(wall, 1),
        "deployment_s": installs,
        "drifted": summary["drift"]["devices"],
        "alerts_fired": fired,
        "messages": summary["messages"],
        "load": summary["load"],
        "fleet": fleet,
        "report": str(report) if report else None,
    }
