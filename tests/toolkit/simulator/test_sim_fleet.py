"""The simulated fleet end to end with a small Python component that uses the real IPC client:
canary rollout, telemetry to the in-process cloud, bench command, faults, aborted rollout."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from sim_helpers import write_component
from typer.testing import CliRunner

from edge_agent import owned
from edge_agent.errors import BadInputError
from edgekit.toolkit.simulator.faults import parse_faults
from edgekit.toolkit.simulator.lifecycle import Timeouts
from edgekit.toolkit.simulator.runner import RUN_KIND, SimulateOptions, simulate

NAME = "com.edgekit.TestAgent"
AGENT = r"""
import json, os, sys, time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
port = int(sys.argv[1])  # a bad configuration update makes this fail
thing = os.environ["AWS_IOT_THING_NAME"]
ipc = GreengrassCoreIPCClientV2()
def on_cmd(ev):
    body = json.dumps({"thing": thing, "port": port, "cmd": ev.message.topic_name}).encode()
    ipc.publish_to_iot_core(topic_name=f"dt/edgekit/{thing}/bench", qos="1", payload=body)
ipc.subscribe_to_iot_core(topic_name=f"cmd/edgekit/{thing}/+", qos="1", on_stream_event=on_cmd)
ipc.update_state(state="RUNNING")
i = 0
while True:
    ipc.publish_to_iot_core(topic_name=f"dt/edgekit/{thing}/metrics", qos="1",
                            payload=json.dumps({"seq": i}).encode())
    i += 1
    time.sleep(0.1)
"""
ACL = {
    "aws.greengrass.ipc.mqttproxy": {
        f"{NAME}:mqttproxy:1": {
            "operations": ["aws.greengrass#PublishToIoTCore"],
            "resources": ["dt/edgekit/{iot:thingName}/+"],
        },
        f"{NAME}:mqttproxy:2": {
            "operations": ["aws.greengrass#SubscribeToIoTCore"],
            "resources": ["cmd/edgekit/{iot:thingName}/+"],
        },
    }
}
FAST = Timeouts(install=5, startup=10, shutdown=1, recover=1, kill_grace_s=0.3)


def _build(root: Path, version: str = "1.0.0", startup: str | None = None) -> Path:
    build = root / "greengrass-build"
    write_component(
        build,
        NAME,
        version,
        files={"agent.py": AGENT},
        config={"port": "8080", "accessControl": ACL},
        lifecycle={
            "Startup": startup
            or f"exec {sys.executable} -u {{artifacts:path}}/agent.py {{configuration:/port}}"
        },
    )
    return build


def test_fleet_rollout_telemetry_bench_and_faults(short_dir):
    build = _build(short_dir)
    opts = SimulateOptions(
        component_dir=build,
        run_dir=short_dir / "run",
        devices=3,
        duration_s=5.0,
        timeouts=FAST,
        faults=parse_faults(
            "kill-agent@0.5:sim-002,broker-outage@1+1.5,corrupt-artifact@2:sim-003,bad-config@2.5:sim-001"
        ),
        bench={"runs": 1},
    )
    ticks = []
    summary = asyncio.run(asyncio.wait_for(simulate(opts, ticks.append), 90))
    roll = summary["rollout"]
    assert not roll["aborted"] and roll["waves"] == [["sim-001"], ["sim-002", "sim-003"]]
    assert all(r["status"] == "SUCCEEDED" for r in roll["results"].values())
    # each device got its own port through the configuration merge, and answered the bench command
    # (18080 and up, or a free block when another process holds 18080)
    first = summary["bench"]["sim-001"]["port"]
    assert {t: b["port"] for t, b in summary["bench"].items()} == {
        "sim-001": first,
        "sim-002": first + 1,
        "sim-003": first + 2,
    }
    devices = summary["devices"]
    assert all(d["state"] == "RUNNING" for d in devices.values()), devices
    assert all(d["metrics_msgs"] > 5 for d in devices.values())
    faults = {f["kind"]: f for f in summary["faults"]}
    assert faults["kill-agent"]["events"][0]["what"] == "killed"
    assert devices["sim-002"]["restarts"] >= 1  # restarted per the lifecycle rules
    corrupt = faults["corrupt-artifact"]["events"][0]
    assert corrupt["status"] == "FAILED_NO_STATE_CHANGE" and corrupt["running"] == "1.0.0"
    bad = faults["bad-config"]["events"][0]
    assert bad["status"] == "FAILED_ROLLBACK_COMPLETE" and bad["state"] == "RUNNING"
    outage = [e["what"] for e in faults["broker-outage"]["events"]]
    assert outage == ["cloud connection down", "cloud connection back"]
    assert (
        devices["sim-001"]["mqtt"]["spooled_total"] > 0
        and devices["sim-001"]["mqtt"]["spooled"] == 0
    )
    # QoS 1 telemetry was spooled during the outage and flushed: no sequence gaps in the cloud
    seqs: dict[str, list[int]] = {}
    for line in (short_dir / "run" / "cloud.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m["topic"].endswith("/metrics"):
            seqs.setdefault(m["thing"], []).append(m["payload"]["seq"])
    for thing in ("sim-001", "sim-003"):  # restarted agents start over at 0
        s = seqs[thing]
        restarts = [i for i in range(1, len(s)) if s[i] == 0]
        run = s[restarts[-1] :] if restarts else s
        assert run == list(range(run[0], run[0] + len(run))), (thing, run[:20])
    assert (short_dir / "run" / "devices" / "sim-001" / "logs" / f"{NAME}.log").is_file()
    assert ticks and set(ticks[-1]["devices"]) == {"sim-001", "sim-002", "sim-003"}


def test_canary_failure_aborts_the_rollout(short_dir):
    build = _build(short_dir, startup="exit 1")
    opts = SimulateOptions(
        component_dir=build,
        run_dir=short_dir / "run",
        devices=3,
        duration_s=0,
        timeouts=FAST,
        waves=[1, "100%"],
        abort_threshold=0.5,
    )
    summary = asyncio.run(asyncio.wait_for(simulate(opts), 60))
    roll = summary["rollout"]
    assert roll["aborted"] and roll["skipped"] == ["sim-002", "sim-003"]
    assert roll["results"]["sim-001"]["detailed_status"] == "FAILED_ROLLBACK_COMPLETE"
    assert "COMPONENT_BROKEN" in roll["results"]["sim-001"]["reason"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--faults", "explode@3"], "KIND@START"),
        (["--profiles", "nope"], "unknown profile"),
        (["--broker", "http://x"], "mqtt://"),
    ],
)
def test_cli_bad_input_exits_2(short_dir, args, problem, tmp_path, monkeypatch):
    from edgekit.toolkit.cli import app

    build = _build(short_dir)
    work = tmp_path / "work"
    earlier = work / "edgekit-sim-run"
    earlier.mkdir(parents=True)
    (earlier / "cloud.jsonl").write_text("{}\n")  # an earlier run's output
    owned.write_marker(earlier, RUN_KIND)
    monkeypatch.chdir(work)
    res = CliRunner().invoke(app, ["simulate", "--component", str(build), "--duration", "0", *args])
    assert res.exit_code == 2, res.output
    assert problem in res.output
    # refused before it started: the earlier run is still there, nothing else was written
    assert sorted(p.name for p in work.iterdir()) == ["edgekit-sim-run"]
    assert (earlier / "cloud.jsonl").read_text() == "{}\n"


def test_cli_bench_json(short_dir):
    from edgekit.toolkit.cli import app

    build = _build(short_dir)
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "bench",
            "--component",
            str(build),
            "--devices",
            "2",
            "-o",
            str(short_dir / "r"),
            "--timeout-scale",
            "0.1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] and set(data["bench"]) == {"sim-001", "sim-002"}


def test_simulate_gives_a_component_no_configuration_its_recipe_did_not_declare(short_dir):
    """The nucleus hands a component its DefaultConfiguration plus the deployment's MERGE;
    simulate used to merge a `port` into every component."""
    import yaml

    build = short_dir / "greengrass-build"
    plain = "com.edgekit.test.Plain"
    write_component(
        build, plain, "1.0.0", config={"Message": "x"}, lifecycle={"Run": "exec sleep 60"}
    )
    opts = SimulateOptions(
        component_dir=build, run_dir=short_dir / "run", devices=1, duration_s=0, timeouts=FAST
    )
    summary = asyncio.run(asyncio.wait_for(simulate(opts), 60))
    assert summary["rollout"]["results"]["sim-001"]["status"] == "SUCCEEDED"
    effective = yaml.safe_load(
        (short_dir / "run/devices/sim-001/config/effectiveConfig.yaml").read_text()
    )
    assert effective["services"][plain]["configuration"] == {"Message": "x"}
    # with load to drive, a component that declares no port is a clear error
    opts.qps, opts.run_dir = 5.0, short_dir / "run2"
    with pytest.raises(BadInputError, match="declares no 'port'"):
        asyncio.run(asyncio.wait_for(simulate(opts), 60))


def test_device_merge_sets_the_port_only_where_declared():
    from edgekit.toolkit.simulator.runner import port_merge

    assert port_merge({"port": "8080", "x": 1}, 9001, {"window_s": "2"}) == {
        "port": "9001",
        "window_s": "2",
    }
    assert port_merge({"x": 1}, 9001, {}) == {}
