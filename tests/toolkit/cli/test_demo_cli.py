"""`edgekit demo --quick --json` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.pipeline.store import RunStore

EDGEKIT = Path(sys.executable).parent / "edgekit"


@pytest.mark.slow  # every stage of the path runs, the closed loop included: minutes on 2 cores
@pytest.mark.timeout(1200)  # ~3.5 min quiet, ~6 min seen on a loaded 2-core machine
def test_demo_quick_json(tmp_path: Path):
    """As the README runs it: a relative -o, from the user's own folder (the agents on the
    simulated devices run in folders of their own, so every path they get must be absolute)."""
    out = tmp_path / "runs" / "demo"
    done = subprocess.run(
        [str(EDGEKIT), "demo", "--quick", "-o", "runs/demo", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)  # stdout holds the JSON only; summaries went to stderr
    assert doc["ok"] is True and doc["output"] == str(out) and doc["failed"] == []
    stages = list(doc["timings_s"])
    assert stages[:2] == ["train", "export"] and "pipeline" in stages and "simulate" in stages
    assert {name: s["status"] for name, s in doc["stages"].items()} == dict.fromkeys(
        stages, "passed"
    )
    _closed_loop_closed(doc["pipeline"], out)
    # the demo is the pipeline files it ships, run by the pipeline runner: each is in -o, and
    # each run is in the run store as `edgekit runs list` shows it
    store = RunStore(out / ".edgekit" / "runs.db")
    try:
        runs = store.list(50)
    finally:
        store.close()
    for name in ("breast-cancer.yaml", "digits-cnn.yaml", "pipeline.yaml"):
        assert (out / name).is_file()
        assert any(r["pipeline"] == str(out / name) and r["status"] == "ok" for r in runs), name
    assert doc["outputs"]["tabular"]["greengrass-build"] == str(out / "greengrass-build")
    assert Path(doc["package"]["recipe"]).parent == out / "greengrass-build" / "recipes"
    assert (
        Path(doc["bench"]["tabular"]["report"]) == out / "reports/bench-breast-cancer/report.html"
    )
    assert Path(doc["bench"]["cnn"]["report"]).is_file()
    assert "native:" in " ".join(doc["bench"]["cnn"]["p50_ms"])  # the PyTorch baseline
    assert set(doc["tune"]["tabular"]) == {"local", "rpi4"}
    assert doc["simulate"]["report"] == str(out / "reports" / "fleet-report.html")
    assert doc["train"]["tabular_accuracy"] > 0.9 and doc["train"]["cnn_accuracy"] > 0.8

    tabular, cnn = doc["export"]["tabular"], doc["export"]["cnn"]
    assert tabular["task"] == cnn["task"] == "classification"
    assert tabular["parity_passed"] and cnn["parity_passed"]
    assert tabular["parity"]["label"] >= 0.999 and tabular["parity"]["probabilities"] < 1e-4
    assert "size_band" in tabular["inputs"] and tabular["labels"] == [0, 1]
    assert cnn["inputs"] == {"input": ["batch", 1, 8, 8]} and cnn["outputs"]["logits"][1] == 10
    assert cnn["parity_rows"] == 540
    for entry in (tabular, cnn):
        bundle = Bundle.open(entry["bundle"])
        assert Path(entry["bundle"]).parent == out / "bundles"
        assert bundle.variant("fp32")["sha256"] == entry["sha256"]
        bundle.verify(only=["fp32.onnx", "baseline.json", "samples.npz"])
    # the bundle summaries (inspect's tables) were printed
    assert "lineage" in done.stderr and "variants" in done.stderr
    # the last stage: the packaged component on 3 simulated devices, drift on sim-001 only
    sim = doc["simulate"]
    assert sim["ok"] and sim["drifted"] == ["sim-001"] and Path(sim["report"]).is_file()
    assert "drift" in sim["alerts_fired"]["sim-001"]
    assert not any(
        {"drift", "prediction_drift"} & set(rules)
        for thing, rules in sim["alerts_fired"].items()
        if thing != "sim-001"
    )
    assert all(load["errors"] == 0 and load["ok"] > 0 for load in sim["load"].values())
    # the release is signed, and each device checked the signature before loading the model
    key_id = doc["package"]["signed_by"]
    assert key_id and (out / "keys" / "release.pub.pem").is_file()
    verified = [
        log
        for log in out.joinpath("simulate").rglob("*.log")
        if f"bundle signature verified (key {key_id})" in log.read_text("utf-8", "replace")
    ]
    assert len({log.relative_to(out).parts[:4] for log in verified}) >= 3, verified


def _closed_loop_closed(loop: dict, out: Path) -> None:
    """drift → alert → re-train on the captured rows → gate → canary → fleet, alerts gone."""
    assert loop["loop_ok"] and loop["v2"] != loop["v1"], loop
    assert [d["ok"] for d in loop["deployments"]] == [True, True], loop["deployments"]
    assert set(loop["versions"].values()) == {loop["v2"]} and loop["drift_alerts_after"] == 0
    assert any(out.joinpath("fleet", "captures").rglob("capture-*.jsonl"))  # not in work folders
    retrained = loop["retrained"]
    assert retrained is not None and retrained["alert_id"] is not None, loop["triggered_runs"]
    new_data = retrained["new_data"]
    assert new_data["captured"] > 0 and new_data["labelled"] >= 40  # the action's min_rows
    assert new_data["new_train_rows"] > 0 and new_data["evaluation_rows"] > 0
    assert retrained["stages"]["train"] == "ran" and retrained["stages"]["deploy"] == "ran"
    gate = retrained["gate"]
    assert gate["passed"] and gate["vs_deployed"]["at_least_as_good"] is True
    assert retrained["deployed"]["version"] == loop["v2"]


GATED = """\
version: 1
name: gated
data:
  sample: data/breast_cancer_test.csv
  evaluation: data/breast_cancer_test.csv
  target_column: target
stages:
  train:
    function: edgekit.toolkit.demo.models:fit_tabular
    data: data/breast_cancer_train.csv
    output: model.skops
    params: {evaluation: breast_cancer_test.csv}
  export:
  evaluate:
    min_value: 1.01   # no model reaches it: the gate fails
  bench:
    duration_s: 0.05
"""
BROKEN = "version: 1\nname: broken\ndata: {sample: nowhere.csv}\nstages: {export:}\n"


def test_a_failed_stage_fails_the_demo_and_is_named(monkeypatch, tmp_path: Path):
    """The demo's pipelines on the runner: a stage whose check fails stops its own pipeline (the
    stages after it are reported skipped), the other pipelines still run, and the demo exits 1
    naming the stage and the reason; a pipeline file that does not load is named too."""
    from typer.testing import CliRunner

    import edgekit.toolkit.demo as demo
    from edgekit.toolkit.cli import app

    texts = {"gated.yaml": GATED, "broken.yaml": BROKEN}
    monkeypatch.setattr(demo, "shipped", lambda name: texts[name])
    monkeypatch.setattr(
        demo,
        "PIPELINES",
        [demo.DemoPipeline("tabular", "gated.yaml"), demo.DemoPipeline("other", "broken.yaml")],
    )
    monkeypatch.setattr(demo, "run_loop", lambda *_args: None)  # the loop has its own test
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "-o", "out", "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["failed"] == ["evaluate", "broken.yaml"]
    assert doc["output"] == str(tmp_path / "out")
    status = {name: (s["status"], s["reason"]) for name, s in doc["stages"].items()}
    assert status["train"] == status["export"] == ("passed", None)
    assert status["evaluate"][0] == "failed" and "below the minimum 1.01" in status["evaluate"][1]
    assert status["bench"] == ("skipped", "stage evaluate failed before it")
    assert "broken.yaml:1: model: say where the model comes from" in status["broken.yaml"][1]
    assert doc["train"]["tabular_accuracy"] > 0.9  # what ran is reported
    assert Path(doc["export"]["tabular"]["bundle"]).is_dir() and doc["bench"] == {}
    assert "stage evaluate failed: gate: accuracy of the model" in result.stderr
    # the runs are in the run store, as `edgekit runs list` shows them
    store = RunStore(tmp_path / "out" / ".edgekit" / "runs.db")
    try:
        runs = store.list(5)
    finally:
        store.close()
    assert [(r["name"], r["status"]) for r in runs] == [("gated", "failed")]

    plain = CliRunner().invoke(app, ["demo", "-o", "out"])
    assert plain.exit_code == 1
    assert "✗ demo failed" in plain.output and "demo finished" not in plain.output
    assert "↺ train" in plain.output  # the second time, from the cache
