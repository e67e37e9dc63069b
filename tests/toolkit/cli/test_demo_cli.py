"""`edgekit demo --quick --json` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.bundle import Bundle


@pytest.mark.slow  # every stage of the path runs: ~25 s on 2 cores, more as stages join
def test_demo_quick_json(tmp_path: Path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "edgekit"), "demo", "--quick", "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)  # stdout holds the JSON only; summaries went to stderr
    assert doc["ok"] is True and doc["output"] == str(out)
    stages = list(doc["timings_s"])
    assert stages[:2] == ["train", "export"]
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
