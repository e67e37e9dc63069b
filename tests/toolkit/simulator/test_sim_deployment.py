"""Deployments on a simulated device: layout, configuration RESET/MERGE, rollback, digests,
and the environment and IPC a component gets (a Python component using the real client)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sim_helpers import write_component

from edgekit.toolkit.simulator.catalog import Catalog
from edgekit.toolkit.simulator.cloud import InProcessCloud
from edgekit.toolkit.simulator.deployment import DO_NOTHING, ComponentUpdate, Deployment, deploy
from edgekit.toolkit.simulator.device import Device
from edgekit.toolkit.simulator.lifecycle import BROKEN, RUNNING, Timeouts
from edgekit.toolkit.simulator.profiles import DeviceProfile, host_platform

FAST = Timeouts(install=2, startup=5, shutdown=1, recover=1, kill_grace_s=0.2)
SVC = "com.test.Svc"
RUN = {"Run": "echo {configuration:/Message} {iot:thingName} > msg; exec sleep 60"}


def _device(root: Path, cloud: InProcessCloud, thing: str = "dev-1") -> Device:
    return Device(
        thing, root, cloud.link(thing), profile=DeviceProfile("t", host_platform()), timeouts=FAST
    )


def _build(tmp: Path) -> Catalog:
    build = tmp / "greengrass-build"
    write_component(
        build,
        SVC,
        "1.0.0",
        lifecycle=RUN,
        files={"a.txt": "v1"},
        config={"Message": "hello", "Nested": {"keep": 1, "reset_me": 2}},
    )
    write_component(
        build,
        SVC,
        "2.0.0",
        # Startup, not Run: with Run the nucleus reports RUNNING as the script starts, so a
        # deployment can succeed before the crash (documented Greengrass behaviour)
        lifecycle={"Startup": "echo crash; exit 7"},
        files={"a.txt": "v2"},
        config={"Message": "v2"},
    )
    write_component(
        build,
        SVC,
        "3.0.0",
        lifecycle=RUN,
        files={"a.txt": "v3"},
        corrupt="a.txt",
        config={"Message": "v3"},
    )
    cat = Catalog()
    cat.add_build_dir(build)
    return cat


def test_deploy_update_config_rollback_and_corrupt_artifact(short_dir):
    cat = _build(short_dir)

    async def go():
        cloud = InProcessCloud()
        dev = _device(short_dir / "dev-1", cloud)
        await dev.start()
        try:
            r1 = await deploy(dev, cat, Deployment([ComponentUpdate(SVC, "1.0.0")]))
            work = dev.root.work(SVC)
            msg1 = (work / "msg").read_text().strip()
            pid1 = dev.components[SVC].service.main_pid
            # RESET before MERGE: /Nested/reset_me goes back to its default, then the merge
            r2 = await deploy(
                dev,
                cat,
                Deployment(
                    [
                        ComponentUpdate(
                            SVC,
                            reset=["/Nested/reset_me", "/Extra"],
                            merge={"Message": "bonjour", "Nested": {"reset_me": 5}, "Extra": 1},
                        )
                    ]
                ),
            )
            cfg2 = dev.services.config.snapshot(SVC)
            await asyncio.sleep(0.2)
            msg2 = (work / "msg").read_text().strip()
            r3 = await deploy(dev, cat, Deployment([ComponentUpdate(SVC, "2.0.0")]))
            cfg3 = dev.services.config.snapshot(SVC)
            await asyncio.sleep(0.2)
            pid3 = dev.components[SVC].service.main_pid
            r4 = await deploy(dev, cat, Deployment([ComponentUpdate(SVC, "3.0.0")]))
            pid4 = dev.components[SVC].service.main_pid
            return dev, r1, msg1, pid1, r2, cfg2, msg2, r3, cfg3, pid3, r4, pid4
        finally:
            await dev.stop()

    dev, r1, msg1, pid1, r2, cfg2, msg2, r3, cfg3, pid3, r4, pid4 = asyncio.run(
        asyncio.wait_for(go(), 60)
    )
    assert r1.ok and r1.states[SVC] == RUNNING
    root = dev.root.path
    assert (root / f"packages/recipes/{SVC}-1.0.0.recipe.yaml").is_file()
    assert (root / f"packages/artifacts/{SVC}/1.0.0/a.txt").read_text() == "v1"
    assert (root / f"logs/{SVC}.log").is_file() and (root / "config/effectiveConfig.yaml").is_file()
    assert msg1 == "hello dev-1"
    assert r2.ok
    assert cfg2 == {"Message": "bonjour", "Nested": {"keep": 1, "reset_me": 5}, "Extra": 1}
    assert msg2 == "bonjour dev-1"  # an interpolated value changed: the component restarted
    # v2 crashes three times -> BROKEN -> rolled back to v1 with the configuration it had
    assert (r3.status, r3.detailed_status) == ("FAILED", "FAILED_ROLLBACK_COMPLETE")
    assert "COMPONENT_BROKEN" in r3.reason
    assert r3.versions[SVC] == "1.0.0" and r3.states[SVC] == RUNNING
    assert cfg3 == cfg2
    # v3's artifact does not match its digest: nothing was touched
    assert (r4.status, r4.detailed_status) == ("FAILED", "FAILED_NO_STATE_CHANGE")
    assert "integrity check failed" in r4.reason
    assert pid4 == pid3 and r4.versions[SVC] == "1.0.0"
    assert not (root / f"packages/artifacts/{SVC}/3.0.0").exists()
    records = sorted((root / "deployments").glob("*.json"))
    assert len(records) == 4


def test_do_nothing_policy_leaves_the_broken_component(short_dir):
    cat = _build(short_dir)

    async def go():
        dev = _device(short_dir / "d", InProcessCloud())
        await dev.start()
        try:
            await deploy(dev, cat, Deployment([ComponentUpdate(SVC, "1.0.0")]))
            return await deploy(
                dev, cat, Deployment([ComponentUpdate(SVC, "2.0.0")], failure_policy=DO_NOTHING)
            )
        finally:
            await dev.stop()

    r = asyncio.run(asyncio.wait_for(go(), 60))
    assert r.detailed_status == "FAILED_ROLLBACK_NOT_REQUESTED"
    assert r.states[SVC] == BROKEN and r.versions[SVC] == "2.0.0"


AGENT = r"""
import json, os, sys
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import Metric, UnauthorizedError
ipc = GreengrassCoreIPCClientV2()
thing = os.environ["AWS_IOT_THING_NAME"]
out = {k: os.environ.get(k) for k in ("AWS_IOT_THING_NAME", "AWS_REGION", "AWS_DEFAULT_REGION",
       "GGC_VERSION", "GG_ROOT_CA_PATH", "SVCUID", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT")}
out["cwd"] = os.getcwd()
out["port"] = ipc.get_configuration(key_path=["Port"]).value
ipc.publish_to_iot_core(topic_name=f"dt/edgekit/{thing}/hello", qos="1", payload=b"hi")
try:
    ipc.publish_to_iot_core(topic_name="dt/edgekit/someone-else/hello", qos="1", payload=b"x")
except UnauthorizedError as e:
    out["denied"] = e.message
try:  # only aws.* components may: the agent reports metrics by PublishToIoTCore instead
    ipc.put_component_metric(metrics=[Metric(name="requests", unit="Count", value=1.0)])
except UnauthorizedError as e:
    out["metric_denied"] = e.message
json.dump(out, open("env.json", "w"))
ipc.update_state(state="RUNNING")
import time; time.sleep(60)
"""


def test_python_component_gets_the_nucleus_environment_and_ipc(short_dir):
    build = short_dir / "b"
    acl = {
        "aws.greengrass.ipc.mqttproxy": {
            f"{SVC}:mqttproxy:1": {
                "operations": ["aws.greengrass#PublishToIoTCore"],
                "resources": ["dt/edgekit/{iot:thingName}/+"],
            }
        }
    }
    write_component(
        build,
        SVC,
        "1.0.0",
        files={"agent.py": AGENT},
        lifecycle={"Startup": f"exec {sys.executable} -u {{artifacts:path}}/agent.py"},
        config={"Port": 8123, "accessControl": acl},
    )
    cat = Catalog()
    cat.add_build_dir(build)

    async def go():
        cloud = InProcessCloud()
        dev = _device(short_dir / "dev-42", cloud, "dev-42")
        await dev.start()
        try:
            r = await deploy(dev, cat, Deployment([ComponentUpdate(SVC)]))
            return dev, cloud, r
        finally:
            await dev.stop()

    dev, cloud, r = asyncio.run(asyncio.wait_for(go(), 60))
    assert r.ok, r.reason
    env = json.loads((dev.root.work(SVC) / "env.json").read_text())
    assert env["AWS_IOT_THING_NAME"] == "dev-42" and env["AWS_REGION"] == env["AWS_DEFAULT_REGION"]
    assert env["GGC_VERSION"] and env["SVCUID"] == dev.components[SVC].svcuid
    assert env["cwd"] == str(dev.root.work(SVC))
    assert env["port"] == {"Port": 8123}
    assert "not authorized" in env["denied"]
    assert "not authorized to perform aws.greengrass.ipc.componentmetric" in env["metric_denied"]
    assert (("dev-42", "dt/edgekit/dev-42/hello", b"hi")) in list(cloud.outbox)
