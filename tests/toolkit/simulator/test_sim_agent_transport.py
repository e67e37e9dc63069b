"""The agent's Greengrass transport against the emulator's IPC server, in its own process as a
component runs: streams closed by the nucleus and a clean close put no traceback on stderr
(awsiotsdk's stream-closed handler raises "cannot schedule new futures after shutdown" once its
executor is shut down: its test for ignoring that error is inverted)."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.toolkit.simulator.ipc.server import IpcServer
from edgekit.toolkit.simulator.services import CoreServices

ROOT = Path(__file__).resolve().parents[3]
COMPONENT = "com.edgekit.Agent"
THING = "dev-9"

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from edge_agent.telemetry.transports.greengrass import GreengrassTransport
t = GreengrassTransport(ipc_socket=sys.argv[1], token=sys.argv[2])
t.start()
t.subscribe("cmd/edgekit/THING/+", lambda topic, payload: None)
t.subscribe_local("edgekit/THING/infer", lambda topic, message: None)
t.subscribe_configuration(lambda key_path: None)
t.publish("dt/edgekit/THING/hello", b"{}", 5)
print("ready", flush=True)
sys.stdin.readline()
t.close()
import time; time.sleep(1.0)  # let the streams close while the process lives on
print("closed", flush=True)
""".replace("THING", THING)


def test_a_clean_close_leaves_stderr_empty(loop_thread, short_dir):
    core = CoreServices(THING)
    core.config.replace(
        COMPONENT,
        {
            "accessControl": {
                "aws.greengrass.ipc.mqttproxy": {
                    f"{COMPONENT}:mqtt:1": {
                        "operations": ["*"],
                        "resources": [
                            "dt/edgekit/{iot:thingName}/+",
                            "cmd/edgekit/{iot:thingName}/+",
                        ],
                    }
                },
                "aws.greengrass.ipc.pubsub": {
                    f"{COMPONENT}:pubsub:1": {"operations": ["*"], "resources": ["*"]}
                },
            }
        },
    )
    server = IpcServer(short_dir / "ipc.socket", core)
    server.tokens = {"tok": COMPONENT}
    loop_thread.run(server.start())
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(server.socket_path), "tok"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": os.environ.get("EDGEKIT_TEST_AGENT_PATH", str(ROOT))},
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        # the nucleus closes the component's streams (as the emulator does when it stops one):
        # the first close makes the client drop its connection, whose executor then refuses
        # the next streams' close callbacks
        loop_thread.call(server.close_component_streams, COMPONENT)
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "stream closed" in line:
                break
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        loop_thread.run(server.stop())
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(seen) + err)
    assert done.returncode == 0 and done.stdout.strip() == "closed", done.stderr
    noise = [
        line
        for line in done.stderr.splitlines()
        if not line.startswith(("INFO:", "WARNING:"))  # the agent's own log lines
    ]
    assert noise == [], done.stderr
    assert [t for _, t, _ in core.link.cloud.outbox] == [f"dt/edgekit/{THING}/hello"]


@pytest.mark.parametrize("quiet", [True, False], ids=["agent_executor", "plain_executor"])
def test_stream_closed_after_the_client_closed_raises_nothing(loop_thread, short_dir, quiet):
    """awsiotsdk's own stream-closed handler, called after ``close()`` shut the executor down
    (what happens when the nucleus closes streams as a component stops): with a plain executor
    it raises RuntimeError into the CRT callback (printed on stderr); the agent's does not."""
    from awsiot import greengrasscoreipc
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    from edge_agent.telemetry.transports.greengrass import _QuietExecutor

    core = CoreServices(THING)
    server = IpcServer(short_dir / "ipc.socket", core)
    server.tokens = {"tok": COMPONENT}
    loop_thread.run(server.start())
    try:
        raw = greengrasscoreipc.connect(ipc_socket=str(server.socket_path), authtoken="tok")
        executor = (
            _QuietExecutor(max_workers=1)
            if quiet
            else concurrent.futures.ThreadPoolExecutor(max_workers=1)
        )
        client = GreengrassCoreIPCClientV2(client=raw, executor=executor)
        make = client._GreengrassCoreIPCClientV2__create_stream_handler
        handler = make("SubscribeToTopic", lambda event: None, None, lambda: None)
        client.close().result(5)
        if quiet:
            handler.on_stream_closed()
        else:
            with pytest.raises(RuntimeError, match="cannot schedule new futures"):
                handler.on_stream_closed()
    finally:
        loop_thread.run(server.stop())
