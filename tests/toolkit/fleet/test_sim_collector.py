"""`edgekit simulate` hands PublishToIoTCore to the collector in-process by default: a component
publishing contract telemetry over the real Greengrass IPC client lands in <run>/fleet.db, with
the deployment history, and the fleet report names every simulated device."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgekit.toolkit.cli import app
from edgekit.toolkit.simulator.lifecycle import Timeouts
from edgekit.toolkit.simulator.runner import SimulateOptions, simulate
from tests.toolkit.simulator.sim_helpers import write_component

NAME = "com.edgekit.FleetProbe"
AGENT = r"""
import os, time
import numpy as np
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from edge_agent import telemetry
from edgekit.toolkit.fleet import synthetic as syn
thing = os.environ["AWS_IOT_THING_NAME"]
ipc = GreengrassCoreIPCClientV2()
ipc.update_state(state="RUNNING")
rng = np.random.default_rng(0)
ref = syn.feature_reference(3)
seq = 0
def send(kind, body):
    global seq
    seq += 1
    msg = syn.message(kind, thing, seq, body)
    ipc.publish_to_iot_core(topic_name=telemetry.data_topic(thing, kind), qos="1",
                            payload=telemetry.encode(msg))
send("hello", syn.hello_body(target="host"))
for _ in range(6):
    send("metrics", syn.metrics_body(rng, reference=ref, requests=30))
while True:
    time.sleep(1)
"""
ACL = {
    "aws.greengrass.ipc.mqttproxy": {
        f"{NAME}:mqttproxy:1": {
            "operations": ["aws.greengrass#PublishToIoTCore"],
            "resources": ["dt/edgekit/{iot:thingName}/+"],
        }
    }
}


@pytest.fixture
def short_dir():
    d = Path(tempfile.mkdtemp(prefix="ekf-", dir="/tmp"))  # Unix socket paths are short
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
def test_simulation_writes_fleet_db_and_report(short_dir):
    build = short_dir / "greengrass-build"
    write_component(
        build,
        NAME,
        "1.0.0",
        files={"agent.py": AGENT},
        config={"accessControl": ACL},
        lifecycle={"Startup": f"exec {sys.executable} -u {{artifacts:path}}/agent.py"},
    )
    run = short_dir / "run"
    opts = SimulateOptions(
        component_dir=build,
        run_dir=run,
        devices=2,
        duration_s=2.0,
        timeouts=Timeouts(install=5, startup=10, shutdown=1, recover=1, kill_grace_s=0.3),
    )
    summary = asyncio.run(asyncio.wait_for(simulate(opts), 90))
    fleet = summary["fleet"]
    assert fleet["db"] == str(run / "fleet.db")
    assert fleet["stored"] == 2 * 7 and fleet["lost"] == 0 and fleet["rejected"] == 0
    assert fleet["deployments"] == 2
    result = CliRunner().invoke(
        app, ["fleet", "report", "--db", str(run / "fleet.db"), "-o", str(run / "r.html")]
    )
    assert result.exit_code == 0, result.output
    html = (run / "r.html").read_text()
    assert "sim-001" in html and "sim-002" in html and "SUCCEEDED" in html
