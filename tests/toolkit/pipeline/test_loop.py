"""The whole loop on the simulated fleet (the demo's `pipeline` step in quick mode): the pipeline
deploys v1 to a simulated core device running the real packaged agent, shifted traffic raises a
drift alert, the collector's `pipeline` action re-trains on the captured and labelled requests,
the new version beats the deployed one on the shifted data and is rolled out, and the drift
alerts stop."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from edgekit.toolkit.demo import LOOP_AS, LOOP_FILE, materialise, prepare
from edgekit.toolkit.demo.loop import closed_loop
from edgekit.toolkit.pipeline import spec as spec_mod
from edgekit.toolkit.pipeline.runner import run_pipeline
from edgekit.toolkit.pipeline.store import RunStore


@pytest.mark.slow
def test_drift_alert_to_new_deployment(tmp_path: Path) -> None:
    prepare(tmp_path)  # the demo's pre-step: its data (and release key)
    pipe = materialise(tmp_path, LOOP_FILE, LOOP_AS)
    r, failure = closed_loop(tmp_path, pipe, Console(file=io.StringIO()), quick=True)
    assert failure is None, (failure, r)
    assert r["second_run"]["ran"] == [] and len(r["second_run"]["cached"]) == 7
    assert r["v1"] == "1.0.0" and r["v2"] == "1.0.1"
    assert [d["ok"] for d in r["deployments"]] == [True, True], r["deployments"]
    assert set(r["versions"].values()) == {"1.0.1"}
    assert r["drift_alerts_after"] == 0, r
    assert r["loop_ok"]
    ok = [t for t in r["triggered_runs"] if t["status"] == "ok"]
    assert len(ok) == 1 and ok[0]["alert_id"] is not None
    store = RunStore(tmp_path / ".edgekit" / "runs.db")
    try:
        run = store.get(ok[0]["id"])
    finally:
        store.close()
    assert run["alert"]["rule"] == "drift" and run["alert"]["source"] == "device"
    verdict = next(s for s in run["stages"] if s["name"] == "evaluate")["result"]["deployed"]
    assert verdict["new"] > verdict["deployed"]  # the retrained model handles the shifted data
    assert next(s for s in run["stages"] if s["name"] == "deploy")["status"] == "ran"

    # the demo again in the same folder (its run store remembers the first fleet's versions): the
    # loop's file runs as before for the new fleet, all cached. Before, its evaluate compared v1
    # with the re-trained v2 of a fleet that no longer exists, and the gate refused it (exit 1)
    again = run_pipeline(spec_mod.load(pipe))
    assert again.status == "ok" and again.ran == [] and len(again.cached) == 7
