"""The IPC server driven by the REAL, unmodified awsiotsdk GreengrassCoreIPCClientV2."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import queue
import time

import pytest
from awsiot import greengrasscoreipc
from awsiot.eventstreamrpc import AccessDeniedError
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    InvalidArgumentsError,
    JsonMessage,
    PublishMessage,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)

from edgekit.toolkit.simulator.ipc.server import IpcServer
from edgekit.toolkit.simulator.services import CoreServices

A, B = "com.example.A", "com.example.B"
THING = "dev-1"


def _acl(mqtt_resources, pubsub_resources):
    return {
        "aws.greengrass.ipc.mqttproxy": {
            f"{A}:mqttproxy:1": {
                "operations": [
                    "aws.greengrass#PublishToIoTCore",
                    "aws.greengrass#SubscribeToIoTCore",
                ],
                "resources": mqtt_resources,
            }
        },
        "aws.greengrass.ipc.pubsub": {
            f"{A}:pubsub:1": {"operations": ["*"], "resources": pubsub_resources}
        },
    }


@pytest.fixture
def ipc(loop_thread, short_dir):
    core = CoreServices(THING)
    core.config.replace(
        A,
        {
            "threshold": 5,
            "tuning": {"alpha": 1},
            "accessControl": _acl(
                ["dt/edgekit/{iot:thingName}/+", "cmd/edgekit/{iot:thingName}/#"], ["local/*"]
            ),
        },
    )
    core.config.replace(B, {"x": 1, "accessControl": _acl([], ["local/+/temp"])})
    server = IpcServer(short_dir / "ipc.socket", core)
    server.tokens = {"tokA": A, "tokB": B}
    server.reject_close_delay_s = 0.5
    loop_thread.run(server.start())
    clients = []

    def client(token: str, executor=True) -> GreengrassCoreIPCClientV2:
        raw = greengrasscoreipc.connect(ipc_socket=str(server.socket_path), authtoken=token)
        c = GreengrassCoreIPCClientV2(client=raw, executor=executor)
        clients.append(c)
        return c

    yield core, server, client
    for c in clients:
        c.close()
    loop_thread.run(server.stop())


def test_publish_to_iot_core_reaches_the_cloud_and_acl_is_enforced(ipc):
    core, _, client = ipc
    a = client("tokA")
    a.publish_to_iot_core(topic_name=f"dt/edgekit/{THING}/metrics", qos="1", payload=b'{"n":1}')
    cloud = core.link.cloud
    assert list(cloud.outbox) == [(THING, f"dt/edgekit/{THING}/metrics", b'{"n":1}')]
    # another thing's topic: {iot:thingName} was interpolated, so this is denied
    with pytest.raises(UnauthorizedError) as exc:
        a.publish_to_iot_core(topic_name="dt/edgekit/other/metrics", qos="0", payload=b"x")
    assert exc.value.message == (
        f"Authorization failed with error Principal {A} is not authorized to perform "
        "aws.greengrass.ipc.mqttproxy:aws.greengrass#PublishToIoTCore on resource "
        "dt/edgekit/other/metrics"
    )
    # B has no mqttproxy policy at all
    with pytest.raises(UnauthorizedError):
        client("tokB").publish_to_iot_core(
            topic_name=f"dt/edgekit/{THING}/metrics", qos="0", payload=b"x"
        )
    with pytest.raises(InvalidArgumentsError):
        a.publish_to_iot_core(topic_name="dt/edgekit/+/metrics", qos="0", payload=b"x")
    assert len(cloud.outbox) == 1


def test_subscribe_to_iot_core_delivers_cloud_messages(ipc, loop_thread):
    core, _, client = ipc
    a = client("tokA")
    got: queue.Queue = queue.Queue()
    _, op = a.subscribe_to_iot_core(
        topic_name=f"cmd/edgekit/{THING}/#", qos="1", on_stream_event=got.put
    )
    n = loop_thread.call(core.link.cloud.inject, f"cmd/edgekit/{THING}/bench", b'{"runs":3}')
    assert n == 1
    msg = got.get(timeout=5).message
    assert (msg.topic_name, msg.payload) == (f"cmd/edgekit/{THING}/bench", b'{"runs":3}')
    with pytest.raises(UnauthorizedError):
        a.subscribe_to_iot_core(topic_name="cmd/#", qos="1", on_stream_event=got.put)
    op.close().result(5)


def test_local_pubsub_fan_out_receive_modes_and_stream_close(ipc, loop_thread):
    _, server, client = ipc
    a, b = client("tokA"), client("tokB")
    got_a: queue.Queue = queue.Queue()
    got_b: queue.Queue = queue.Queue()
    closed = concurrent.futures.Future()
    _, op_a = a.subscribe_to_topic(topic="local/room1/temp", on_stream_event=got_a.put)
    b.subscribe_to_topic(
        topic="local/+/temp",
        on_stream_event=got_b.put,
        on_stream_closed=lambda: closed.set_result(1),
    )
    a.publish_to_topic(
        topic="local/room1/temp",
        publish_message=PublishMessage(json_message=JsonMessage(message={"t": 21})),
    )
    ev_a, ev_b = got_a.get(timeout=5), got_b.get(timeout=5)
    assert ev_a.json_message.message == {"t": 21} == ev_b.json_message.message
    assert ev_b.json_message.context.topic == "local/room1/temp"
    # B's wildcard subscription does not receive B's own message; A's exact one does
    b.publish_to_topic(
        topic="local/room1/temp",
        publish_message=PublishMessage(binary_message=BinaryMessage(message=b"\x01")),
    )
    assert got_a.get(timeout=5).binary_message.message == b"\x01"
    time.sleep(0.1)
    assert got_b.empty()
    # A may not publish outside local/*
    with pytest.raises(UnauthorizedError) as exc:
        a.publish_to_topic(
            topic="other/t", publish_message=PublishMessage(json_message=JsonMessage(message={}))
        )
    assert exc.value.message.startswith(
        f"Principal {A} is not authorized to perform aws.greengrass.ipc.pubsub"
    )
    # the client closes A's stream; the server closes B's and B is told
    op_a.close().result(5)
    loop_thread.call(server.close_component_streams, B)
    assert closed.result(5) == 1
    assert loop_thread.call(lambda: sum(len(c.streams) for c in server.connections)) == 0


def test_configuration_get_update_and_subscribe(ipc, loop_thread):
    core, _, client = ipc
    a, b = client("tokA"), client("tokB")
    assert a.get_configuration(key_path=["threshold"]).value == {"threshold": 5}
    assert a.get_configuration(key_path=["tuning"]).value == {"alpha": 1}
    assert b.get_configuration(component_name=A, key_path=["tuning"]).value == {"alpha": 1}
    with pytest.raises(ResourceNotFoundError):
        a.get_configuration(key_path=["nope"])
    ev_a: queue.Queue = queue.Queue()
    ev_b: queue.Queue = queue.Queue()
    a.subscribe_to_configuration_update(on_stream_event=ev_a.put)
    b.subscribe_to_configuration_update(
        component_name=A, key_path=["tuning"], on_stream_event=ev_b.put
    )
    a.update_configuration(
        key_path=["tuning"],
        value_to_merge={"alpha": 2, "new": 3},
        timestamp=datetime.datetime.now(),
    )
    paths_a = sorted(
        tuple(ev_a.get(timeout=5).configuration_update_event.key_path) for _ in range(2)
    )
    paths_b = sorted(
        tuple(ev_b.get(timeout=5).configuration_update_event.key_path) for _ in range(2)
    )
    assert paths_a == paths_b == [("tuning", "alpha"), ("tuning", "new")]
    assert core.config.get(A, ["tuning"]) == {"alpha": 2, "new": 3}
    # an outside change (a deployment) is also an event; one older than the stored value is refused
    cfg = core.config.snapshot(A)
    cfg["threshold"] = 9
    loop_thread.call(core.config.replace, A, cfg)
    ev = ev_a.get(timeout=5).configuration_update_event
    assert (ev.component_name, ev.key_path) == (A, ["threshold"])
    from awsiot.greengrasscoreipc.model import FailedUpdateConditionCheckError

    with pytest.raises(FailedUpdateConditionCheckError):
        a.update_configuration(
            key_path=["tuning"],
            value_to_merge={"alpha": 0},
            timestamp=datetime.datetime.fromtimestamp(1.0),
        )


def test_update_state_and_unsupported_operation(ipc):
    core, _, client = ipc
    a = client("tokA")
    a.update_state(state="RUNNING")
    assert core.reported == [(A, "RUNNING")]
    with pytest.raises(InvalidArgumentsError):
        a.update_state(state="FINISHED")
    with pytest.raises(ServiceError) as exc:
        a.list_components()
    assert "not supported by the edgekit Greengrass simulator" in exc.value.message


def test_bad_svcuid_is_rejected_with_access_denied(ipc):
    _, server, _ = ipc
    with pytest.raises(AccessDeniedError):
        greengrasscoreipc.connect(ipc_socket=str(server.socket_path), authtoken="not-a-token")
    assert server.rejected == 1


def test_async_forms_and_many_in_flight(ipc):
    core, _, client = ipc
    a = client("tokA")
    futures = [
        a.publish_to_iot_core_async(
            topic_name=f"dt/edgekit/{THING}/m", qos="1", payload=str(i).encode()
        )
        for i in range(200)
    ]
    for f in futures:
        f.result(10)
    assert [p for _, _, p in core.link.cloud.outbox] == [str(i).encode() for i in range(200)]


def test_put_component_metric_is_authorized_as_the_nucleus_does(ipc):
    """ComponentMetricIPCEventStreamAgent: an accessControl policy and a name starting with
    `aws.`; anything else is an UnauthorizedError (a ServiceError before: unsupported)."""
    from awsiot.greengrasscoreipc.model import Metric

    core, server, client = ipc
    aws_name = "aws.greengrass.Tester"
    policy = {
        "aws.greengrass.ipc.componentmetric": {
            f"{aws_name}:componentmetric:1": {
                "operations": ["aws.greengrass#PutComponentMetric"],
                "resources": ["*"],
            }
        }
    }
    core.config.replace(aws_name, {"accessControl": policy})
    core.config.update(A, ["accessControl"], policy, time.time())  # a policy does not help A
    server.tokens["tokAws"] = aws_name
    good = [Metric(name="requests", unit="Count", value=3.0)]
    with pytest.raises(UnauthorizedError) as exc:
        client("tokA").put_component_metric(metrics=good)
    assert f"Principal {A} is not authorized" in exc.value.message
    with pytest.raises(UnauthorizedError):
        client("tokB").put_component_metric(metrics=good)  # no policy either
    ok = client("tokAws")
    ok.put_component_metric(metrics=good)
    assert core.component_metrics == [(aws_name, "requests", "Count", 3.0)]
    for bad in (
        [Metric(name="x" * 33, unit="Count", value=1.0)],
        [Metric(name="neg", unit="Count", value=-1.0)],
        [Metric(name="unit", unit="Furlongs", value=1.0)],
    ):
        with pytest.raises(InvalidArgumentsError):
            ok.put_component_metric(metrics=bad)


def test_defer_component_update_errors_are_the_nucleus_ones(ipc, loop_thread):
    core, _, client = ipc
    a = client("tokA")
    with pytest.raises(InvalidArgumentsError) as exc:
        a.defer_component_update(deployment_id="d-1", recheck_after_ms=10)
    assert "not subscribed" in exc.value.message
    events: queue.Queue = queue.Queue()
    a.subscribe_to_component_updates(on_stream_event=events.put)
    assert loop_thread.call(lambda: A in core.updates.listeners)
    with pytest.raises(ServiceError) as exc:
        a.defer_component_update(deployment_id="d-1", recheck_after_ms=10)
    assert "Time limit to respond" in exc.value.message
    with pytest.raises(InvalidArgumentsError) as exc:
        a.defer_component_update(recheck_after_ms=10)
    assert "deployment ID" in exc.value.message

    async def ask():
        return await core.updates.ask("d-2", timeout_s=10)

    fut = asyncio.run_coroutine_threadsafe(ask(), loop_thread.loop)
    event = events.get(timeout=10)
    assert event.pre_update_event.deployment_id == "d-2"
    assert event.pre_update_event.is_ggc_restarting is False
    a.defer_component_update(deployment_id="d-2", message="busy", recheck_after_ms=250)
    assert fut.result(10) == 250
    assert core.updates.deferrals[-1].message == "busy"
