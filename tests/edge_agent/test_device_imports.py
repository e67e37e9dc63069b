"""The agent runs with only numpy, onnxruntime, awscrt/awsiot (+ stdlib): workstation packages are
blocked in a fresh interpreter, then every agent module is imported and the serve path runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys, json, importlib, pkgutil
BLOCKED = ("edgekit", "torch", "sklearn", "pandas", "rich", "jsonschema", "onnx",
           "skl2onnx", "typer", "yaml", "matplotlib", "scipy")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked on the device: {name}")
        return None
sys.meta_path.insert(0, Block())
import edge_agent
mods = [m.name for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent.")
        if m.name not in ("edge_agent.__main__",)]
for name in mods:
    importlib.import_module(name)
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from edge_agent.telemetry.transports.inprocess import Bus, InProcessTransport
import numpy as np, urllib.request
bus = Bus()
agent = Agent(AgentConfig(bundle=sys.argv[1], port=0, window_s=0.2, outbox=sys.argv[2]),
              InProcessTransport(bus=bus)).start()
body = {"inputs": [{"name": "X", "shape": [1, 10], "datatype": "FP32", "data": [0.01] * 10}]}
req = urllib.request.Request(agent.rest.url + "/v2/models/" + agent.engine.model.name + "/infer",
                             data=json.dumps(body).encode())
out = json.loads(urllib.request.urlopen(req).read())
agent.stop()
leaked = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
print(json.dumps({"modules": len(mods), "outputs": out["outputs"][0]["shape"],
                  "messages": len(bus.messages), "leaked": leaked}))
"""


def test_agent_needs_no_workstation_package(regression_bundle, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(regression_bundle), str(tmp_path / "o.sqlite")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["modules"] >= 20 and report["leaked"] == []
    assert report["outputs"] == [1, 1] and report["messages"] >= 2
