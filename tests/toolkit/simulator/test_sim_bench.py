"""`edgekit simulate bench`: a request for a variant the component does not ship is refused
(exit 2, the shipped list named, no device started), and through a real mosquitto broker the
devices are benchmarked one at a time, each counted only for its own reply."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from sim_helpers import write_component
from test_sim_fleet import ACL, FAST
from typer.testing import CliRunner

from edgekit.toolkit.cli import app
from edgekit.toolkit.greengrass.package import PackageRequest, package
from edgekit.toolkit.simulator.bench import outcome
from edgekit.toolkit.simulator.runner import SimulateOptions, simulate


def test_unknown_variant_is_refused_with_exit_2(tabular_bundle, short_dir):
    build = short_dir / "greengrass-build"
    package(
        PackageRequest(
            bundle_dir=tabular_bundle,
            name="com.edgekit.test.Bench",
            version="1.0.0",
            platforms=["linux/amd64"],
            output=build,
        )
    )
    run = short_dir / "run"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "bench",
            "--component",
            str(build),
            "--devices",
            "1",
            "--variants",
            "fp32,int8-dynamic",
            "-o",
            str(run),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "int8-dynamic" in res.output and "['fp32']" in res.output
    assert "Traceback" not in res.output
    assert not run.exists()  # refused before any device started


NAME = "com.edgekit.test.SlowBench"
# answers the bench command after a pause, saying when it started and ended
SLOW_AGENT = r"""
import json, os, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
thing = os.environ["AWS_IOT_THING_NAME"]
ipc = GreengrassCoreIPCClientV2()
def on_cmd(ev):
    start = time.time()
    time.sleep(1.5)
    body = {"thing": thing, "start": start, "end": time.time(),
            "results": {"fp32": {"latency_ms": {"p50": 1.0}}}, "error": None}
    ipc.publish_to_iot_core(topic_name=f"dt/edgekit/{thing}/bench", qos="1",
                            payload=json.dumps({"type": "bench", "body": body}).encode())
ipc.subscribe_to_iot_core(topic_name=f"cmd/edgekit/{thing}/+", qos="1", on_stream_event=on_cmd)
ipc.update_state(state="RUNNING")
while True:
    time.sleep(1)
"""


@pytest.mark.broker
@pytest.mark.slow
def test_broker_bench_runs_one_device_at_a_time(short_dir, mosquitto_broker):
    build = short_dir / "greengrass-build"
    acl = json.loads(json.dumps(ACL).replace("com.edgekit.TestAgent", NAME))
    write_component(
        build,
        NAME,
        "1.0.0",
        files={"agent.py": SLOW_AGENT},
        config={"accessControl": acl},
        lifecycle={"Startup": f"exec {sys.executable} -u {{artifacts:path}}/agent.py"},
    )
    opts = SimulateOptions(
        component_dir=build,
        run_dir=short_dir / "run",
        devices=3,
        duration_s=0.0,
        timeouts=FAST,
        broker=mosquitto_broker.url,
        bench={"budget_s": 5},
    )
    summary = asyncio.run(asyncio.wait_for(simulate(opts), 120))
    things = ["sim-001", "sim-002", "sim-003"]
    replies = summary["bench"]
    # each device's entry is its own reply, never the command echoed back
    assert sorted(replies) == things
    assert all(replies[t]["body"]["thing"] == t for t in things), replies
    spans = sorted((replies[t]["body"]["start"], replies[t]["body"]["end"]) for t in things)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans  # one at a time: no bench overlaps another
    assert outcome(replies, things).measured == things
