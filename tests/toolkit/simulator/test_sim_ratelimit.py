"""The publish throttle of the nucleus's cloud connection (AwsIotMqttClient: 100 publishes/s,
512 KiB/s, Guava SmoothBursty), as a rule and with a real component publishing flat out."""

from __future__ import annotations

import asyncio
import sys

import pytest
from sim_helpers import write_component

from edgekit.toolkit.simulator.catalog import Catalog
from edgekit.toolkit.simulator.cloud import InProcessCloud
from edgekit.toolkit.simulator.deployment import ComponentUpdate, Deployment, deploy
from edgekit.toolkit.simulator.device import Device, wait_until
from edgekit.toolkit.simulator.lifecycle import Timeouts
from edgekit.toolkit.simulator.profiles import DeviceProfile, host_platform
from edgekit.toolkit.simulator.ratelimit import PublishThrottle, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_smooth_bursty_rules():
    clock = Clock()
    lim = RateLimiter(100.0, clock=clock)
    waits = [lim.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])  # nothing stored at the start
    clock.t += 10.0  # a long idle time stores one second's worth at most
    assert sum(lim.reserve() for _ in range(100)) == pytest.approx(0.0)
    assert lim.reserve() == pytest.approx(0.0) and lim.reserve() == pytest.approx(0.01)
    # a big request is granted now and makes the next one wait for it
    clock.t += 10.0
    big = RateLimiter(512 * 1024, clock=clock)
    big.reserve(1)  # start the bucket
    assert big.reserve(1024 * 1024) < 1e-3
    assert abs(big.reserve(1) - 2.0) < 0.01  # 1 MiB at 512 KiB/s


def test_throttle_waits_for_the_slower_limiter():
    clock = Clock()
    th = PublishThrottle(clock=clock)
    assert th.reserve(10) == 0.0
    assert abs(th.reserve(10) - 0.01) < 1e-9  # transactions decide for small payloads


FLOOD = r"""
import time
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
ipc = GreengrassCoreIPCClientV2()
ipc.update_state(state="RUNNING")
t0 = time.monotonic()
# all 250 requests at once, then wait for the replies: the demand is far above 100/s however
# slowly this process runs (one synchronous call at a time fell below 100/s on a loaded
# machine, and then rightly nothing was throttled)
sent = [ipc.publish_to_iot_core_async(topic_name="dt/flood/x", qos="0", payload=b"%d" % i)
        for i in range(250)]
for reply in sent:
    reply.result(60)
open("elapsed", "w").write(str(time.monotonic() - t0))
time.sleep(60)
"""


def test_a_component_publishing_flat_out_is_slowed_to_100_per_second(short_dir):
    name = "com.test.Flood"
    build = short_dir / "b"
    acl = {
        "aws.greengrass.ipc.mqttproxy": {
            f"{name}:mqttproxy:1": {
                "operations": ["aws.greengrass#PublishToIoTCore"],
                "resources": ["dt/flood/#"],
            }
        }
    }
    write_component(
        build,
        name,
        "1.0.0",
        files={"flood.py": FLOOD},
        lifecycle={"Startup": f"exec {sys.executable} -u {{artifacts:path}}/flood.py"},
        config={"accessControl": acl},
    )
    cat = Catalog()
    cat.add_build_dir(build)
    arrivals: list[float] = []

    async def go():
        loop = asyncio.get_running_loop()
        cloud = InProcessCloud()
        cloud.add_listener(lambda thing, topic, payload: arrivals.append(loop.time()))
        dev = Device(
            "dev-1",
            short_dir / "d",
            cloud.link("dev-1"),
            profile=DeviceProfile("t", host_platform()),
            timeouts=Timeouts(install=10, startup=20, shutdown=2, kill_grace_s=0.2),
        )
        await dev.start()
        try:
            r = await deploy(dev, cat, Deployment([ComponentUpdate(name)]))
            assert r.ok, r.reason
            done = dev.root.work(name) / "elapsed"
            assert await wait_until(done.exists, 60)
            return dev.services.mqtt.stats(), float(done.read_text())
        finally:
            await dev.stop()

    stats, elapsed = asyncio.run(asyncio.wait_for(go(), 120))
    assert len(arrivals) == 250
    span = arrivals[-1] - arrivals[0]
    # at most one second of idle permits (100) is stored: the other 150 take 1.5 s at 100/s,
    # and the component's own calls waited for them
    assert span >= 1.4, span
    assert elapsed >= 1.4, elapsed
    # the spooler's sleeps: ~1.5 s on a quiet machine, but each publish's own handling is cut
    # from them (0.7 s seen with the machine loaded), so only "it slept, within the span"
    assert 0 < stats["throttled_s"] <= span, (stats, span)
    # the token bucket's bound: by time x after the first, at most 100 stored + 100 x (+1)
    for i, t in enumerate(arrivals):
        assert i + 1 <= 101 + 100 * (t - arrivals[0]) + 1e-6, (i, t - arrivals[0])
