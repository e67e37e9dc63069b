"""Through a real mosquitto: the agent's outbox + MQTT transport to the collector, shared
subscriptions splitting a fleet between two collectors, and the topic alert action."""

from __future__ import annotations

import json
import time

import pytest
from helpers.mosquitto import MqttCollector

from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.mqtt_source import MqttSource, topic_filters
from edgekit.toolkit.fleet.rules import RulesConfig
from edgekit.toolkit.fleet.synthetic import SyntheticDevice
from tests.toolkit.fleet.fleet_helpers import metrics

pytestmark = [pytest.mark.broker]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_topic_filters_shared_and_plain():
    assert topic_filters("g1")[0] == "$share/g1/dt/edgekit/+/hello"
    assert topic_filters(None) == [
        f"dt/edgekit/+/{t}" for t in ("hello", "metrics", "alerts", "bench")
    ]


def test_two_collectors_in_one_group_split_the_fleet(mosquitto_broker, tmp_path):
    c1 = Collector.open(tmp_path / "c1.db").start()
    c2 = Collector.open(tmp_path / "c2.db").start()
    s1 = MqttSource(c1, mosquitto_broker.url, group="split", client_id="col-1").start()
    s2 = MqttSource(c2, mosquitto_broker.url, group="split", client_id="col-2").start()
    devices = [
        SyntheticDevice(f"dev-{i}", mosquitto_broker.url, str(tmp_path / f"ob-{i}.sqlite"), seed=i)
        for i in range(4)
    ]
    try:
        for d in devices:
            d.start()
        for _ in range(10):
            for d in devices:
                d.emit()
        assert _wait(lambda: c1.stats.received + c2.stats.received >= 40, 20)
        for c in (c1, c2):
            assert c.flush(10)
        keys = [
            {(r["thing"], r["seq"]) for r in c.store.query("SELECT thing, seq FROM messages")}
            for c in (c1, c2)
        ]
        assert keys[0] and keys[1], "both collectors get a share"
        assert not keys[0] & keys[1], "each message goes to exactly one collector of the group"
        assert keys[0] | keys[1] == {(f"dev-{i}", s) for i in range(4) for s in range(1, 11)}
        assert all(d.pending() == 0 for d in devices)  # every publish was acknowledged
    finally:
        for d in devices:
            d.close(2)
        for s, c in ((s1, c1), (s2, c2)):
            s.stop()
            c.close()


def test_topic_action_publishes_alerts_to_the_broker(mosquitto_broker, tmp_path):
    config = RulesConfig.from_dict(
        {
            "routes": [
                {
                    "match": {"rule": "drift"},
                    "actions": [{"kind": "topic", "topic": "edgekit/fleet/retrain/{thing}"}],
                }
            ]
        }
    )
    c = Collector.open(tmp_path / "fleet.db", config=config).start()
    source = MqttSource(c, mosquitto_broker.url, group=None, client_id="col-actions").start()
    watcher = MqttCollector(mosquitto_broker, "edgekit/fleet/retrain/#", client_id="watcher")
    with watcher:
        topic, payload = metrics("pi-7", 1)
        alert = {
            "id": "x",
            "rule": "drift",
            "state": "firing",
            "severity": "warning",
            "message": "f01 drifted",
            "subject": "f01",
            "held": {"m": 1, "n": 1, "hits": 1},
        }
        from tests.toolkit.fleet.fleet_helpers import encoded

        for t, p in (encoded("alerts", "pi-7", 2, {"alerts": [alert]}), (topic, payload)):
            source.client.publish(
                __import__("awscrt.mqtt5", fromlist=["x"]).PublishPacket(topic=t, payload=p, qos=1)
            ).result(5)
        assert watcher.wait_for(lambda msgs: len(msgs) >= 1, 15), "no retrain message"
        msg = watcher.messages[0]
        assert msg.topic == "edgekit/fleet/retrain/pi-7"
        sent = json.loads(msg.payload)
        assert sent["rule"] == "drift" and sent["subject"] == "f01" and sent["thing"] == "pi-7"
        assert c.flush(10)
        actions = c.store.query("SELECT * FROM actions")
        assert [(a["action"], a["ok"]) for a in actions] == [
            ("topic edgekit/fleet/retrain/{thing}", 1)
        ]
    source.stop()
    c.close()
