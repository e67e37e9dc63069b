"""Telemetry through a real mosquitto broker: topics, a 10 s broker outage, kill -9 of the agent,
mutual TLS. Nothing may be lost: every seq from 1 to the last arrives at least once, in order
of first arrival, and duplicates are byte-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_helpers import config, sample_feeds
from helpers.mosquitto import MqttCollector

from edge_agent.agent import Agent
from edge_agent.errors import BadInputError
from edge_agent.telemetry.transports.mqtt import MqttTransport

pytestmark = [pytest.mark.broker]
ROOT = Path(__file__).resolve().parents[2]


def _seqs(collector) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in collector.messages]


def _assert_complete(collector) -> int:
    by_seq: dict[int, bytes] = {}
    for m in collector.messages:
        seq = json.loads(m.payload)["seq"]
        assert by_seq.setdefault(seq, m.payload) == m.payload, f"seq {seq} resent with other bytes"
    last = max(by_seq)
    missing = sorted(set(range(1, last + 1)) - set(by_seq))
    assert not missing, f"lost seqs {missing}"
    first_arrival = list(dict.fromkeys(_seqs(collector)))
    assert first_arrival == sorted(first_arrival), "messages arrived out of order"
    return last


def test_metrics_arrive_on_the_right_topics(mosquitto_broker, cnn_bundle, tmp_path):
    with MqttCollector(mosquitto_broker, "dt/edgekit/+/+") as collector:
        cfg = config(cnn_bundle, tmp_path, mqtt=mosquitto_broker.url, window_s=0.3)
        agent = Agent(cfg).start()
        try:
            agent.engine.infer(sample_feeds(cnn_bundle, 4))
            assert collector.wait_for(lambda ms: sum("/metrics" in m.topic for m in ms) >= 2, 15)
        finally:
            agent.stop()
    topics = [m.topic for m in collector.messages]
    assert topics[0] == "dt/edgekit/test-thing/hello"
    assert set(topics) == {"dt/edgekit/test-thing/hello", "dt/edgekit/test-thing/metrics"}
    metrics = [json.loads(m.payload) for m in collector.messages if m.topic.endswith("metrics")]
    assert sum(m["body"]["requests"]["rows"] for m in metrics) == 4
    _assert_complete(collector)


@pytest.mark.slow
def test_broker_outage_of_ten_seconds_loses_nothing(mosquitto_broker, cnn_bundle, tmp_path):
    with MqttCollector(mosquitto_broker, "dt/edgekit/+/+") as collector:
        agent = Agent(
            config(cnn_bundle, tmp_path, mqtt=mosquitto_broker.url, window_s=0.25)
        ).start()
        try:
            assert collector.wait_for(lambda ms: len(ms) >= 3, 15)
            mosquitto_broker.stop()
            time.sleep(10)
            queued = agent.outbox.stats()["pending"]
            assert queued >= 20  # windows kept closing while the broker was away
            mosquitto_broker.start()
            last = agent.outbox.stats()["next_seq"] - 1
            assert collector.wait_for(
                lambda ms: set(range(1, last + 1)) <= set(_seqs(collector)), 30
            )
        finally:
            agent.stop()
        collector.wait_for(lambda ms: False, 0.5)
    assert _assert_complete(collector) >= last


def _serve(broker, bundle, outbox) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "serve",
            "--bundle",
            str(bundle),
            "--mqtt",
            broker.url,
            "--thing",
            "kill-me",
            "--outbox",
            str(outbox),
            "--window",
            "0.2",
            "--port",
            "-1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkill_and_restart_leaves_no_gap(mosquitto_broker, regression_bundle, tmp_path):
    outbox = tmp_path / "outbox.sqlite"
    with MqttCollector(mosquitto_broker, "dt/edgekit/kill-me/+") as collector:
        first = _serve(mosquitto_broker, regression_bundle, outbox)
        try:
            assert collector.wait_for(lambda ms: len(ms) >= 6, 30), first.stderr.read1().decode()
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        before = max(_seqs(collector))
        second = _serve(mosquitto_broker, regression_bundle, outbox)
        try:
            assert collector.wait_for(lambda ms: max(_seqs(collector)) >= before + 6, 30)
        finally:
            second.send_signal(signal.SIGTERM)
            rc = second.wait(20)
        assert rc == 0, second.stderr.read().decode()
        collector.wait_for(lambda ms: False, 0.5)
    hellos = [
        json.loads(m.payload)["seq"] for m in collector.messages if m.topic.endswith("/hello")
    ]
    assert len(set(hellos)) == 2  # one per process life
    _assert_complete(collector)


def test_mutual_tls_connection(mosquitto_tls_broker, cnn_bundle, tmp_path):
    tls = mosquitto_tls_broker.tls
    with MqttCollector(mosquitto_tls_broker, "dt/edgekit/+/+") as collector:
        cfg = config(
            cnn_bundle,
            tmp_path,
            mqtt=mosquitto_tls_broker.url,
            cert=str(tls.client_cert),
            key=str(tls.client_key),
            ca=str(tls.ca),
            window_s=0.3,
        )
        agent = Agent(cfg).start()
        try:
            assert collector.wait_for(lambda ms: any(m.topic.endswith("/metrics") for m in ms), 15)
        finally:
            agent.stop()
    assert collector.messages[0].topic == "dt/edgekit/test-thing/hello"


def test_plain_mqtt_only_to_loopback(tmp_path, cnn_bundle):
    with pytest.raises(BadInputError, match="unencrypted"):
        MqttTransport(config(cnn_bundle, tmp_path, mqtt="mqtt://broker.example.com:1883"))
    with pytest.raises(BadInputError, match="--cert and --key"):
        MqttTransport(config(cnn_bundle, tmp_path, mqtt="mqtts://broker.example.com:8883"))


def _lonely_device(broker, tmp_path, **changes):
    """The agent's real outbox, MQTT 5 transport and publisher, with short undelivered retries."""
    from edge_agent.config import AgentConfig
    from edge_agent.telemetry.outbox import Outbox, Publisher

    cfg = AgentConfig(thing="lonely", mqtt=broker.url, publish_timeout_s=5).updated(changes)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    transport = MqttTransport(cfg)
    publisher = Publisher(
        outbox,
        transport,
        timeout_s=5,
        undelivered_retry_s=cfg.undelivered_retry_s,
        undelivered_retry_max_s=cfg.undelivered_retry_max_s,
    )
    transport.start()
    assert transport.wait_connected(10)
    publisher.start()
    return outbox, transport, publisher


def _enqueue(outbox, n):
    from edge_agent import telemetry

    for _ in range(n):
        now = time.time()
        msg = telemetry.make_message(
            "alerts",
            thing="lonely",
            component_version="1.0.0",
            model={"name": "m", "variant": "fp32", "sha256": "0" * 64},
            window=(now - 1, now),
            body={"alerts": []},
        )
        outbox.enqueue(telemetry.data_topic("lonely", "alerts"), msg)


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_no_subscriber_keeps_messages_until_one_subscribes(mosquitto_broker, tmp_path):
    """PUBACK 0x10 (no matching subscribers) is 'not delivered yet': the message stays in the
    outbox and is retried with backoff; once a subscriber appears everything arrives, in seq
    order, and only then leaves the outbox."""
    outbox, transport, publisher = _lonely_device(
        mosquitto_broker, tmp_path, undelivered_retry_s=0.2, undelivered_retry_max_s=0.4
    )
    try:
        _enqueue(outbox, 3)
        assert _wait(lambda: publisher.undelivered >= 3, 15), "never retried"
        assert outbox.stats()["pending"] == 3 and publisher.sent == 0
        with MqttCollector(mosquitto_broker, "dt/edgekit/+/+") as collector:
            _enqueue(outbox, 2)  # more arrive behind the held ones
            assert collector.wait_for(lambda ms: len({*_seqs(collector)}) >= 5, 15)
            assert _wait(lambda: outbox.stats()["pending"] == 0, 5)
        assert _assert_complete(collector) == 5
        assert _seqs(collector)[:5] == [1, 2, 3, 4, 5]
    finally:
        publisher.stop()
        transport.close()
        outbox.close()


def test_no_subscriber_counts_as_delivered_when_switched_off(mosquitto_broker, tmp_path):
    outbox, transport, publisher = _lonely_device(
        mosquitto_broker, tmp_path, mqtt_retry_no_subscribers=False
    )
    try:
        _enqueue(outbox, 2)
        assert _wait(lambda: outbox.stats()["pending"] == 0, 15)
        assert publisher.sent == 2 and publisher.undelivered == 0
    finally:
        publisher.stop()
        transport.close()
        outbox.close()
