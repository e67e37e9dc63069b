"""The demo's closed loop, on the pipeline runner: the loop's pipeline file runs (and again, every
stage from the cache), then deploys v1 to a live simulated fleet canary first; the world drifts,
the devices raise drift alerts, the collector's `pipeline` action re-trains on the captured (and
labelled) traffic, checks the new version against the gate and against the deployed one, and rolls
it out; the drift alerts stop. Every run in it is `run_pipeline`; what is left here is the fleet
that lives across those runs and the watching."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from edgekit.toolkit.demo.models import TABULAR_TARGET

FLEET = "demo-fleet"
_TRUTH: dict[str, Path] = {}  # the table the simulated traffic was drawn from (ground truth)


def ground_truth(frame: Any) -> np.ndarray:
    """Labels for captured requests, as a reviewer would give them: each captured row is matched
    to the row of the source table it was drawn from on the inputs the drift left alone."""
    import pandas as pd

    truth = pd.read_csv(_TRUTH["table"])
    cols = [c for c in frame.columns if c in truth.columns and truth[c].dtype.kind == "f"]
    ref = truth[cols].to_numpy(np.float64)
    labels = []
    for row in frame[cols].to_numpy(np.float64):
        same = np.isclose(ref, row, rtol=1e-5, atol=1e-6, equal_nan=True).sum(axis=1)
        labels.append(truth[TABULAR_TARGET].iloc[int(np.argmax(same))])
    return np.asarray(labels)


def _run(spec: Any, console: Any, overrides: dict | None = None) -> Any:
    from edgekit.toolkit.pipeline import spec as spec_mod
    from edgekit.toolkit.pipeline.runner import run_pipeline
    from edgekit.toolkit.present.pipeline import progress_printer

    on_event, say = progress_printer(console, views=False)
    return run_pipeline(spec_mod.load(spec, overrides or {}), on_event=on_event, say=say)


def closed_loop(
    out: Path, pipe: Path, console: Any, quick: bool
) -> tuple[dict[str, Any], str | None]:
    """Run the loop in `out` (the demo's folder) from the pipeline file `pipe`; returns what
    happened (the demo's `pipeline` entry) and why the loop did not close (None when it did)."""
    from edgekit.toolkit.fleet.rules import RulesConfig
    from edgekit.toolkit.pipeline import fleets
    from edgekit.toolkit.pipeline.livefleet import LiveFleet
    from edgekit.toolkit.pipeline.store import RunStore

    t_start = time.perf_counter()
    _TRUTH["table"] = out / "data" / "breast_cancer_test.csv"
    console.print(f"[bold]edgekit run {pipe}[/]")
    first = _run(pipe, console)
    console.print("[bold]again, nothing changed:[/]")
    second = _run(pipe, console)

    merge = {"window_s": "2", "drift_min_samples": "30", "alert_m": "2", "alert_n": "2"}
    rules = RulesConfig.from_dict(
        {
            "fleet_drift": {"every_s": 3600},
            "routes": [
                {"match": {"rule": "drift", "source": "device"}, "actions": [_action(out, pipe)]},
            ],
        }
    )
    # quick: one device (each new version reinstalls the agent's venv, ~10 s a device)
    fleet = LiveFleet(out / "fleet", devices=1 if quick else 2, merge=merge, rules=rules)
    fleets.register_fleet(FLEET, fleet)
    result: dict[str, Any] = {}
    failure: str | None = None
    try:
        console.print("[bold]deploy to the simulated fleet[/] (only the deploy stage is new):")
        deploy = {"stages.deploy": {"to": "fleet", "fleet": FLEET, "canary": 1}}
        third = _run(pipe, console, deploy)
        v1 = third.summary["component"]["version"]
        fleet.start_load(30.0, drifted=True)
        drift_at = time.time()
        console.print(
            f"  {v1} runs on {', '.join(fleet.things)}; the inputs {fleet.data.drifted_inputs[:3]}… "
            "now arrive shifted by 3 σ"
        )
        result = {"v1": v1}
        # generous: on a loaded machine the devices' windows close late (returns on the alert)
        if not fleet.wait_for(lambda: fleet.firing("drift", v1), 90):
            failure = f"no drift alert from {v1} within 90 s of the drift"
            return result, failure
        console.print(f"  drift alert from {v1}: {len(fleet.firing('drift', v1))} device(s)")
        loop_started = time.time()
        store = RunStore(out / ".edgekit" / "runs.db")
        try:
            fleet.wait_for(lambda: len(fleet.deployments) >= 2 or _loop_failed(store), 120, 0.5)
            fleet.collector.router.drain()
            triggered = [r for r in store.list(20) if r["trigger"] == "alert"]
            retrained = _retrained(store, triggered)
        finally:
            store.close()
        new = fleet.deployments[-1] if len(fleet.deployments) >= 2 else None
        v2 = new["version"] if new else None
        watch_from = time.time()
        time.sleep(4 if quick else 6)  # an observation window: no drift alert from v2 in it
        after = fleet.firing("drift", v2, since=watch_from) if v2 else []
        result = _report(console, triggered, new, v1, v2, after, fleet, drift_at, loop_started)
        result["retrained"] = retrained
        if not result["loop_ok"]:
            failure = _loop_failure(triggered, new, v2, after)
    finally:
        summary = fleet.stop()
        fleets.unregister_fleet(FLEET)
        # updated in place: an early return above hands back this very dict
        result.update(
            first_run={"ran": first.ran, "cached": first.cached},
            second_run={"ran": second.ran, "cached": second.cached},
            fleet_messages=summary.get("stored"),
            seconds=round(time.perf_counter() - t_start, 1),
        )
    if failure is None and second.ran:
        failure = f"the second run of an unchanged pipeline ran {', '.join(second.ran)} again"
    return result, failure


def _loop_failed(store: Any) -> bool:
    """A triggered run failed (a skipped one may be followed by another on the next alert)."""
    return any(r["trigger"] == "alert" and r["status"] == "failed" for r in store.list(20))


def _retrained(store: Any, triggered: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the triggered run that succeeded did: the captured rows it re-trained on, the gate and
    the comparison with the deployed version, the rollout."""
    done = next((r for r in triggered if r["status"] == "ok"), None)
    if done is None:
        return None
    run = store.get(done["id"])
    stages = {s["name"]: s for s in run["stages"]}
    evaluate = (stages.get("evaluate") or {}).get("result") or {}
    deploy = (stages.get("deploy") or {}).get("result") or {}
    return {
        "run_id": run["id"],
        "alert_id": run.get("alert_id"),
        "new_data": (run.get("inputs") or {}).get("new_data"),
        "stages": {name: s["status"] for name, s in stages.items()},
        "gate": {
            "metric": evaluate.get("metric"),
            "passed": evaluate.get("passed"),
            "vs_deployed": evaluate.get("deployed"),
        },
        "deployed": deploy.get("deployed"),
    }


def _loop_failure(triggered: list[dict[str, Any]], new: Any, v2: Any, after: list) -> str:
    """Why the loop did not close, in one line: the triggered runs' own words first."""
    if new is None:
        why = "; ".join(
            f"run {r['id']} {r['status']}: {r.get('error') or '-'}" for r in reversed(triggered)
        )
        return "drift → alert → re-train did not redeploy: " + (why or "no run was triggered")
    if not new["ok"]:
        return f"the rollout of {v2} failed: {new.get('reason') or new.get('devices')}"
    return f"{len(after)} drift alert(s) from {v2} after it was rolled out"


def _action(out: Path, pipe: Path) -> dict[str, Any]:
    return {
        "kind": "pipeline",
        "pipeline": str(pipe),
        "captures": [str(out / "fleet" / "captures")],
        "labels": "edgekit.toolkit.demo.loop:ground_truth",
        "min_interval_s": 300,
        "min_rows": 40,
        "deploy": {"to": "fleet", "fleet": FLEET, "canary": 1},
    }


def _report(
    console, triggered, new, v1, v2, after, fleet, drift_at, loop_started
) -> dict[str, Any]:
    table = Table(title="the closed loop (runs linked to the alerts)")
    for col in ("run", "alert", "status", "what happened"):
        table.add_column(col)
    for r in reversed(triggered):
        alert = r.get("alert") or {}
        table.add_row(
            r["id"],
            f"#{alert.get('id')} {alert.get('rule')} {alert.get('thing') or ''}",
            r["status"],
            (r.get("error") or f"{r.get('component')} {r.get('version')}")[:70],
        )
    console.print(table)
    ok = new is not None and new["ok"] and not after
    if new:
        console.print(
            f"  rolled {new['component']} {v1} → {v2} out in waves {new['waves']} "
            f"({new['seconds']:.1f} s); drift alerts from {v2} since: {len(after)}"
        )
    mark = "[green]✓[/]" if ok else "[red]✗[/]"
    console.print(f"{mark} drift → alert → re-train → gate → canary → fleet on {v2 or '-'}")
    return {
        "v1": v1,
        "v2": v2,
        "deployments": fleet.deployments,
        "triggered_runs": [
            {
                "id": r["id"],
                "status": r["status"],
                "alert_id": r.get("alert_id"),
                "error": r.get("error"),
            }
            for r in triggered
        ],
        "drift_alerts_after": len(after),
        "versions": fleet.versions(),
        "loop_ok": ok,
        "alert_after_s": round(loop_started - drift_at, 1),
    }
