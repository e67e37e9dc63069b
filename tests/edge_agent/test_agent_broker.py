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
from edge_agent.transports.mqtt import MqttTransport

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
