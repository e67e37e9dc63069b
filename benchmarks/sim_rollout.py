"""Simulated fleet rollout: how long N devices take to install and start the real packaged
component (offline pip install from the shared wheel cache, agent RUNNING over IPC).

Measures, on this machine: filling the wheel cache cold (wheels rebuilt from the installed
packages) and warm (reused); then for each fleet size a rollout with every device at once and one
canary-first, the per-device deployment time (Install + Startup until RUNNING) and the wall time.

Run: ``.venv/bin/python benchmarks/sim_rollout.py [--devices 1,3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def fitted_pipeline():
    """The demo's tabular pipeline (breast_cancer), fitted: the factory the export loads."""
    from edgekit.toolkit.demo.models import TABULAR_TARGET, breast_cancer_frame, tabular_pipeline

    frame = breast_cancer_frame()
    return tabular_pipeline().fit(frame.drop(columns=[TABULAR_TARGET]), frame[TABULAR_TARGET])


def build_component(folder: Path) -> Path:
    from edgekit.export.builder import ExportRequest, export_bundle
    from edgekit.toolkit.demo.models import TABULAR_TARGET, breast_cancer_frame
    from edgekit.toolkit.greengrass.package import PackageRequest, package

    data = folder / "data.csv"
    breast_cancer_frame().to_csv(data, index=False)
    bundle = folder / "bundle"
    export_bundle(
        ExportRequest(
            source="sim_rollout:fitted_pipeline",
            data=data,
            output=bundle,
            target_column=TABULAR_TARGET,
        )
    )
    build = folder / "greengrass-build"
    package(
        PackageRequest(
            bundle_dir=bundle,
            name="com.edgekit.bench.Rollout",
            version="1.0.0",
            platforms=["linux/amd64"],
            output=build,
        )
    )
    return build


def fill_times(build: Path, cache: Path) -> dict[str, float]:
    from edgekit.toolkit.simulator.runner import prepare_wheel_cache

    t0 = time.perf_counter()
    prepare_wheel_cache(build, "com.edgekit.bench.Rollout", cache)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    prepare_wheel_cache(build, "com.edgekit.bench.Rollout", cache)
    return {"cold_s": round(cold, 2), "warm_s": round(time.perf_counter() - t0, 3)}


def rollout(build: Path, cache: Path, devices: int, waves: list) -> dict:
    from edgekit.toolkit.simulator.runner import SimulateOptions, simulate

    run = Path(tempfile.mkdtemp(prefix="ekr-", dir="/tmp"))  # short: Unix socket paths
    try:
        opts = SimulateOptions(
            component_dir=build,
            run_dir=run,
            devices=devices,
            duration_s=0.0,
            base_port=0,
            waves=waves,
            wheel_cache=cache,
        )
        t0 = time.perf_counter()
        summary = asyncio.run(simulate(opts))
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(run, ignore_errors=True)
    results = summary["rollout"]["results"]
    per = [r["duration_s"] for r in results.values()]
    return {
        "devices": devices,
        "waves": waves,
        "ok": all(r["status"] == "SUCCEEDED" for r in results.values()),
        "deploy_s_median": round(statistics.median(per), 2),
        "deploy_s_max": round(max(per), 2),
        "rollout_wall_s": round(sum(max(per_wave) for per_wave in _by_wave(summary)), 2),
        "run_wall_s": round(wall, 2),
    }


def _by_wave(summary: dict) -> list[list[float]]:
    results = summary["rollout"]["results"]
    return [[results[t]["duration_s"] for t in wave] for wave in summary["rollout"]["waves"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="1,3", help="fleet sizes, comma-separated")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    sizes = [int(x) for x in args.devices.split(",")]
    with tempfile.TemporaryDirectory(prefix="edgekit-sim-bench-") as tmp:
        work = Path(tmp)
        build = build_component(work)
        cache = work / "wheels"
        figures: dict = {"wheel_cache": fill_times(build, cache), "rollouts": []}
        for n in sizes:
            for waves in (["100%"], [1, "100%"]) if n > 1 else (["100%"],):
                r = rollout(build, cache, n, waves)
                figures["rollouts"].append(r)
                print(json.dumps(r), flush=True)
        (cache).chmod(0o755)
    print(
        f"wheel cache fill: cold {figures['wheel_cache']['cold_s']} s, "
        f"warm {figures['wheel_cache']['warm_s']} s"
    )
    print(f"{'devices':>7} {'waves':>14} {'median/device s':>16} {'max s':>7} {'rollout s':>10}")
    for r in figures["rollouts"]:
        print(
            f"{r['devices']:>7} {str(r['waves']):>14} {r['deploy_s_median']:>16} "
            f"{r['deploy_s_max']:>7} {r['rollout_wall_s']:>10}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
