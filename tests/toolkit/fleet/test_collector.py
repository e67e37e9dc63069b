"""Collector ingestion: dedup by (thing, seq), gaps as lost messages, split messages, bad input,
and the simulator's in-process cloud path."""

from __future__ import annotations

import asyncio
import json

from edge_agent import telemetry
from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.ingest import Received
from edgekit.toolkit.fleet.store import Gap
from tests.toolkit.fleet.fleet_helpers import encoded, metrics


def _feed(collector: Collector, items) -> None:
    collector.process([Received(t, p) for t, p in items])


def test_duplicates_dropped_and_gaps_reported(tmp_path, store_at):
    c = Collector.open(store_at)
    a = [metrics("dev-a", s) for s in (1, 2, 3, 6, 7)]  # 4 and 5 never arrive
    b = [metrics("dev-b", s) for s in (3, 4)]  # started late: 1..2 before the first seen
    _feed(c, a + b)
    _feed(c, [a[1], a[1], b[0]])  # QoS 1 redelivery and outbox replay: same seq again
    assert c.stats.stored == 7
    assert c.stats.duplicates == 3
    assert c.store.scalar("SELECT COUNT(*) FROM messages") == 7
    assert c.store.scalar("SELECT COUNT(*) FROM metrics") == 7
    assert c.store.counter("duplicates") == 3
    assert c.store.gaps() == [Gap("dev-a", 4, 5), Gap("dev-b", 1, 2, leading=True)]
    # the late message fills its gap
    _feed(c, [metrics("dev-a", 4), metrics("dev-a", 5)])
    assert c.store.gaps() == [Gap("dev-b", 1, 2, leading=True)]
    c.close()


def test_threaded_submit_flush_and_duplicate_in_one_batch(tmp_path, store_at):
    c = Collector.open(store_at).start()
    acked = []
    items = [metrics("d1", s) for s in range(1, 201)]
    for i, (t, p) in enumerate(items + items[:50]):
        c.submit(t, p, ack=lambda i=i: acked.append(i))
    assert c.flush(30)
    assert c.stats.stored == 200 and c.stats.duplicates == 50
    assert len(acked) == 250  # every message is acknowledged once stored (or known)
    assert c.store.gaps() == []
    c.close()


def test_split_message_parts_all_count(tmp_path, store_at):
    rng = __import__("numpy").random.default_rng(1)
    ref = syn.feature_reference(60)
    body = syn.metrics_body(rng, reference=ref, requests=200)
    msg = syn.message("metrics", "big", 1, body)
    parts = telemetry.split(msg, max_bytes=4096)
    assert len(parts) > 2
    for i, part in enumerate(parts):  # the outbox gives each part its own seq
        part["seq"] = i + 1
    c = Collector.open(store_at)
    topic = telemetry.data_topic("big", "metrics")
    _feed(c, [(topic, telemetry.encode(p)) for p in reversed(parts)])
    assert c.store.scalar("SELECT COUNT(*) FROM metrics") == 1  # one window
    from edgekit.toolkit.fleet.summary import drift_entries

    names = {e["name"] for e in drift_entries(c.store)}
    assert names == set(ref)  # every feature, from whichever part carried it
    assert c.store.gaps() == []
    c.close()


def test_malformed_and_spoofed_messages_rejected(tmp_path, store_at):
    c = Collector.open(store_at)
    good_topic, good = metrics("d1", 1)
    spoof_topic = telemetry.data_topic("someone-else", "metrics")
    bad_seq = json.loads(good)
    bad_seq["seq"] = 0
    _feed(
        c,
        [
            (good_topic, b"{not json"),
            (spoof_topic, good),  # the payload says d1
            (good_topic, json.dumps(bad_seq).encode()),
            ("dt/edgekit/d1/unknown", good),
            (good_topic, good),
        ],
    )
    assert c.stats.stored == 1 and c.stats.rejected == 4
    errors = [r["error"] for r in c.store.query("SELECT error FROM rejects")]
    assert any("not JSON" in e for e in errors)
    assert any("came on dt/edgekit/someone-else/metrics" in e for e in errors)
    assert any("seq must be >= 1" in e for e in errors)
    c.close()


def test_hello_sets_device_target_and_device_alerts_stored(tmp_path, store_at):
    c = Collector.open(store_at)
    alert = {
        "id": "a1",
        "rule": "drift",
        "state": "firing",
        "severity": "warning",
        "message": "feature f00 drifted",
        "subject": "f00",
        "value": 0.4,
        "threshold": 0.1,
        "held": {"m": 3, "n": 5, "hits": 3},
    }
    _feed(
        c,
        [
            encoded("hello", "pi-1", 1, syn.hello_body(target="rpi4")),
            metrics("pi-1", 2),
            encoded("alerts", "pi-1", 3, {"alerts": [alert]}),
        ],
    )
    dev = c.store.query("SELECT * FROM devices")[0]
    assert (dev["thing"], dev["target"], dev["bundle"]) == ("pi-1", "rpi4", "demo")
    rows = c.store.query("SELECT * FROM alerts")
    assert [(r["source"], r["rule"], r["subject"]) for r in rows] == [("device", "drift", "f00")]
    c.close()


def test_simulator_in_process_cloud_hands_messages_to_the_collector(tmp_path, store_at):
    from edgekit.toolkit.simulator.cloud import InProcessCloud

    c = Collector.open(store_at).start()
    cloud = InProcessCloud()
    cloud.add_listener(c.listener)

    async def publish() -> None:
        link = cloud.link("sim-001")
        for seq in (1, 2, 3):
            topic, payload = metrics("sim-001", seq)
            await link.publish(topic, payload, 1)
        await link.publish("some/other/topic", b"ignored", 1)

    asyncio.run(publish())
    assert c.flush(10)
    assert c.stats.stored == 3 and c.stats.rejected == 0
    c.close()


def test_a_message_that_cannot_be_stored_is_rejected_not_the_whole_batch(tmp_path, store_at):
    """A device's metrics body of the wrong shape (`"requests": "x"`, a dict where a number
    goes) failed the store's transaction, so its whole batch stayed unacknowledged and came back
    with every redelivery: one faulty or hostile device stalled the fleet's telemetry (found by
    tryhostile)."""
    c = Collector.open(store_at)
    poisons = []
    latency = json.loads(metrics("x", 1)[1])["body"]["latency_ms"]
    bad_bucket = dict(latency, buckets=[[10**6, 1]])  # past the scheme's last bucket
    for seq, (key, value) in enumerate(
        [("requests", "x"), ("process", True), ("latency_ms", dict(latency, count="x"))]
        + [("latency_ms", bad_bucket)],
        1,
    ):
        topic, payload = metrics("bad", seq)
        msg = json.loads(payload)
        msg["body"][key] = value
        poisons.append((topic, json.dumps(msg).encode()))
    _feed(c, [metrics("d1", 1), poisons[0], metrics("d2", 1), *poisons[1:], metrics("d1", 2)])
    assert c.stats.failed_batches == 0
    assert c.stats.stored == 3 and c.stats.rejected == 4
    errors = [r["error"] for r in c.store.query("SELECT error FROM rejects")]
    assert len(errors) == 4 and all(e.startswith("message cannot be stored: ") for e in errors)
    assert sum("histogram" in e for e in errors) == 2, "a histogram the report cannot merge"
    assert c.store.scalar("SELECT COUNT(*) FROM metrics") == 3
    _feed(c, [metrics("d2", 2)])  # and the collector goes on
    assert c.stats.stored == 4
    c.close()
