"""The closed loop's trigger on a real small project: captured requests (written by the agent's
own Capture) plus labels re-train through the user's train step; the gate and the deployed
version decide; guard rails: one at a time, a minimum interval, a dry run that stops before
deployment. The deploy target is a recording fleet (the real simulated fleet is in test_loop)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.monitoring.capture import Capture
from edgekit.toolkit.fleet.actions import ActionContext, AlertRouter, parse_routes
from edgekit.toolkit.pipeline import fleets
from edgekit.toolkit.pipeline import spec as spec_mod
from edgekit.toolkit.pipeline.runner import run_pipeline
from edgekit.toolkit.pipeline.stages import Runtime
from edgekit.toolkit.pipeline.store import RunStore
from edgekit.toolkit.pipeline.trigger import PipelineTrigger, TriggerConfig

FLEET = {"to": "fleet", "fleet": "test-fleet", "canary": 1}


class RecordingFleet:
    """Stands in for a fleet: records each rollout it is asked for and reports success."""

    identity = "recording"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def deploy(self, build_dir, component, version, canary, merge) -> dict[str, Any]:
        assert (Path(build_dir) / "recipes" / f"{component}-{version}.json").is_file()
        self.calls.append({"component": component, "version": version, "canary": canary})
        return {"ok": True, "waves": [["d1"], ["d2"]], "version": version}


@pytest.fixture
def deployed(project: Path, wine_frames) -> dict[str, Any]:
    """v1 deployed by a normal run; captured shifted traffic and a labels file on disk."""
    fleet = RecordingFleet()
    spec = spec_mod.load(project / "pipeline.yaml", {"stages.deploy": FLEET})
    report = run_pipeline(spec, Runtime(deployers={"test-fleet": fleet}))
    assert fleet.calls == [{"component": "com.example.Wine", "version": "1.0.0", "canary": 1}]
    _, test = wine_frames
    features = test.drop(columns=["target"]).copy()
    shifted = features.columns[:4]
    features[shifted] += 1.5 * features[shifted].std()
    x = features.to_numpy(np.float32)
    capture = Capture(project / "captures" / "d1", 1.0, 1 << 20, 3, seed=0)
    batch = [
        (0.0, 0.0, 0.0, 1, f"req-{i}", {"X": x[i : i + 1]}, [np.array([0])], ["label"])
        for i in range(len(x))
    ]
    capture.maybe_write(batch + batch[:10])  # repeats are dropped when gathered
    labels = features.astype(np.float32).astype(np.float64)
    labels["target"] = test["target"].to_numpy()
    labels.to_csv(project / "labels.csv", index=False)
    return {"fleet": fleet, "v1": report, "rows": len(x)}


def _trigger(project: Path, fleet: RecordingFleet, clock=None, **kw) -> PipelineTrigger:
    cfg = TriggerConfig(
        pipeline=project / "pipeline.yaml",
        captures=[str(project / "captures")],
        labels="labels.csv",
        min_interval_s=600,
        deploy=FLEET,
        extra_overrides={"stages.evaluate.tolerance": 0.1},
        **kw,
    )
    return PipelineTrigger(cfg, {"test-fleet": fleet}, **({"clock": clock} if clock else {}))


def _store(project: Path) -> RunStore:
    return RunStore(project / ".edgekit" / "runs.db")


def test_alert_retrains_and_deploys_a_new_version(project: Path, deployed: dict) -> None:
    fleet = deployed["fleet"]
    outcome = _trigger(project, fleet).fire({"id": 7, "rule": "drift", "thing": "d1"})
    assert outcome.status == "ok", outcome.reason
    assert fleet.calls[-1]["version"] == "1.0.1"
    assert outcome.data["rows"] == deployed["rows"] and outcome.data["labelled"] == deployed["rows"]
    assert outcome.data["new_train_rows"] + outcome.data["evaluation_rows"] == deployed["rows"]
    store = _store(project)
    try:
        runs = store.for_alert(7)
        run = store.get(runs[0]["id"])
    finally:
        store.close()
    assert [r["status"] for r in runs] == ["ok"]
    assert run["alert"]["rule"] == "drift" and run["trigger"] == "alert"
    stages = {s["name"]: s for s in run["stages"]}
    assert stages["train"]["status"] == "ran"  # new data: re-trained
    verdict = stages["evaluate"]["result"]["deployed"]
    assert verdict["at_least_as_good"]
    assert verdict["bundle"] == deployed["v1"].results["bench"]["bundle"]  # v1, as deployed
    assert stages["deploy"]["result"]["deployed"]["version"] == "1.0.1"


def test_dry_run_stops_before_deploying(project: Path, deployed: dict) -> None:
    fleet = deployed["fleet"]
    outcome = _trigger(project, fleet, dry_run=True).fire({"id": 8, "rule": "drift"})
    assert outcome.status == "stopped"
    assert outcome.would_deploy["component"] == "com.example.Wine"
    assert outcome.would_deploy["version"] == "1.0.1"
    assert outcome.would_deploy["target"] == "fleet test-fleet"
    assert len(fleet.calls) == 1  # only v1, from the fixture
    store = _store(project)
    try:
        run = store.for_alert(8)[0]
        assert store.deployed("com.example.Wine")["version"] == "1.0.0"
    finally:
        store.close()
    assert run["status"] == "stopped" and run["dry_run"] == 1


def test_minimum_interval_between_triggered_runs(project: Path, deployed: dict) -> None:
    now = [1_000_000.0]
    trigger = _trigger(project, deployed["fleet"], clock=lambda: now[0], dry_run=True)
    first = trigger.fire({"id": 1, "rule": "drift"})
    assert first.status == "stopped"
    now[0] = _store_started(project) + 30  # 30 s after the first run started
    second = trigger.fire({"id": 2, "rule": "drift"})
    assert second.status == "skipped" and "minimum interval is 600 s" in second.reason
    now[0] += 600
    third = trigger.fire({"id": 3, "rule": "drift"})
    assert third.status == "stopped"
    store = _store(project)
    try:
        assert store.for_alert(2)[0]["status"] == "skipped"  # the skip is on record too
    finally:
        store.close()


def _store_started(project: Path) -> float:
    store = _store(project)
    try:
        return store.last_triggered(started_only=True)["started"]
    finally:
        store.close()


HOLD_LOCK = """
import sys
from edgekit.toolkit.pipeline.trigger import try_lock_file
fh = open(sys.argv[1], "a+b")
assert try_lock_file(fh)
print("locked", flush=True)
sys.stdin.read()
"""


def test_trigger_imports_where_fcntl_does_not_exist() -> None:
    """Windows has no fcntl: the module imports, and the lock helpers choose msvcrt there."""
    code = "import sys; sys.modules['fcntl'] = None; import edgekit.toolkit.pipeline.trigger"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_one_triggered_run_at_a_time(project: Path, deployed: dict) -> None:
    trigger = _trigger(project, deployed["fleet"], dry_run=True)
    lock = trigger._lock()
    with lock:  # a run of this pipeline in progress in this process
        busy = trigger.fire({"id": 11, "rule": "drift"})
    assert busy.status == "skipped" and "in progress" in busy.reason
    path = trigger.spec.workdir / "trigger.lock"
    holder = subprocess.Popen(  # ... or in another process, holding the lock until stdin closes
        [sys.executable, "-c", HOLD_LOCK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = trigger.fire({"id": 12, "rule": "drift"})
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert busy.status == "skipped"
    assert trigger.fire({"id": 13, "rule": "drift"}).status == "stopped"


def test_worse_than_deployed_is_not_deployed(project: Path, deployed: dict) -> None:
    fleet = deployed["fleet"]
    trigger = _trigger(project, fleet)
    trigger.config.extra_overrides = {"stages.train.params": {"max_iter": 1}}  # a poor model
    outcome = trigger.fire({"id": 21, "rule": "drift"})
    assert outcome.status == "failed"
    assert "worse than the deployed one" in outcome.reason
    assert len(fleet.calls) == 1
    store = _store(project)
    try:
        run = store.get(outcome.run_id)
        assert store.deployed("com.example.Wine")["version"] == "1.0.0"
    finally:
        store.close()
    assert run["alert_id"] == 21 and run["status"] == "failed"
    assert [s["name"] for s in run["stages"]][-1] == "evaluate"


def test_not_enough_data_or_labels_skips(project: Path, deployed: dict) -> None:
    trigger = _trigger(project, deployed["fleet"], min_rows=10_000)
    outcome = trigger.fire({"id": 31, "rule": "drift"})
    assert outcome.status == "skipped" and "not enough new data" in outcome.reason
    trigger = _trigger(project, deployed["fleet"])
    trigger.config.labels = None
    outcome = trigger.fire({"id": 32, "rule": "drift"})
    assert outcome.status == "skipped" and "re-training needs labels" in outcome.reason


def test_pipeline_action_through_the_fleet_router(project: Path, deployed: dict) -> None:
    fleets.register_fleet("test-fleet", deployed["fleet"])
    try:
        routes = parse_routes(
            [
                {
                    "match": {"rule": "drift"},
                    "actions": [
                        {
                            "kind": "pipeline",
                            "pipeline": str(project / "pipeline.yaml"),
                            "captures": str(project / "captures"),
                            "labels": str(project / "labels.csv"),
                            "deploy": FLEET,
                            "dry_run": True,
                        }
                    ],
                }
            ],
            ActionContext(),
        )
        router = AlertRouter(routes)
        results = router.run_now({"id": 41, "rule": "drift", "state": "firing", "thing": "d1"})
        assert results[0]["ok"] and results[0]["detail"].startswith("stopped: dry run")
        assert results[0]["action"] == "pipeline pipeline.yaml (dry run)"
        again = router.run_now({"id": 42, "rule": "drift", "state": "firing", "thing": "d2"})
        assert again[0]["ok"] and again[0]["detail"].startswith("skipped: the last triggered run")
    finally:
        fleets.unregister_fleet("test-fleet")


def test_relative_paths_are_fixed_when_the_route_is_set_up(tmp_path, monkeypatch) -> None:
    """A rules file names the pipeline and captures relative to where the collector starts; the
    run happens later on another thread, so they are made absolute when the route is read."""
    monkeypatch.chdir(tmp_path)
    cfg = TriggerConfig.from_spec(
        {"pipeline": "loop/pipeline.yaml", "captures": ["fleet/captures", "more/*.jsonl"]}
    )
    monkeypatch.chdir("/")
    assert cfg.pipeline == tmp_path / "loop" / "pipeline.yaml"
    assert cfg.captures == [str(tmp_path / "fleet/captures"), str(tmp_path / "more/*.jsonl")]
