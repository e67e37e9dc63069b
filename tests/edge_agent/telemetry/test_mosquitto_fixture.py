"""The shared mosquitto fixture really runs a broker, plain and with mutual TLS."""

from __future__ import annotations

import threading

import pytest
from awscrt import io, mqtt5
from helpers.mosquitto import MqttCollector

pytestmark = pytest.mark.broker


def _publish(broker, topic: str, payload: bytes, tls=None) -> None:
    connected = threading.Event()
    tls_ctx = None
    if tls:
        opts = io.TlsContextOptions.create_client_with_mtls_from_path(
            str(tls.client_cert), str(tls.client_key)
        )
        opts.override_default_trust_store_from_path(None, str(tls.ca))
        tls_ctx = io.ClientTlsContext(opts)
    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=broker.host,
            port=broker.port,
            tls_ctx=tls_ctx,
            on_lifecycle_event_connection_success_fn=lambda _d: connected.set(),
        )
    )
    client.start()
    assert connected.wait(10)
    result = client.publish(
        mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
    ).result(10)
    assert result.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
    client.stop()


def test_plain_broker_round_trip_and_restart(mosquitto_broker):
    with MqttCollector(mosquitto_broker, "t/#") as collector:
        _publish(mosquitto_broker, "t/1", b"one")
        assert collector.wait_for(lambda m: len(m) == 1, 10)
        subscribed = collector.subscriptions
        mosquitto_broker.stop()
        mosquitto_broker.start()
        # the collector reconnects and subscribes again (no fixed sleep: "two" went to nobody
        # when that took longer than the sleep on a loaded machine)
        assert collector.wait_subscribed(subscribed + 1, 30), mosquitto_broker.log()
        _publish(mosquitto_broker, "t/2", b"two")
        assert collector.wait_for(lambda m: len(m) == 2, 10)
    assert [m.payload for m in collector.messages] == [b"one", b"two"]


def test_tls_broker_needs_the_test_ca(mosquitto_tls_broker):
    assert mosquitto_tls_broker.url.startswith("mqtts://")
    with MqttCollector(mosquitto_tls_broker, "secure/#") as collector:
        _publish(mosquitto_tls_broker, "secure/x", b"hi", tls=mosquitto_tls_broker.tls)
        assert collector.wait_for(lambda m: len(m) == 1, 10)
