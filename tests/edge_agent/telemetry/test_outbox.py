"""The durable outbox: gap-free sequence numbers, ack-only deletion, bounded with a drop count,
and it survives closing and reopening (the process dying)."""

from __future__ import annotations

import json

from edge_agent import telemetry
from edge_agent.telemetry.outbox import Outbox, Publisher
from edge_agent.telemetry.transports.inprocess import Bus, InProcessTransport


def _msg(i: int, filler: int = 0) -> dict:
    return telemetry.make_message(
        "metrics",
        thing="dev",
        component_version="1",
        model={"name": "m", "variant": "fp32", "sha256": "b" * 64},
        window=(i, i + 1),
        body={"i": i, "pad": "x" * filler},
    )


def test_sequence_numbers_persist_across_reopen(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    assert box.enqueue("dt/edgekit/dev/metrics", _msg(1)) == [1]
    assert box.enqueue("dt/edgekit/dev/metrics", _msg(2)) == [2]
    box.close()
    box = Outbox(path)
    assert box.enqueue("dt/edgekit/dev/metrics", _msg(3)) == [3]
    pending = box.peek(10)
    assert [p.seq for p in pending] == [1, 2, 3]
    assert json.loads(pending[0].payload)["seq"] == 1
    box.ack(1)
    assert [p.seq for p in box.peek(10)] == [2, 3]
    assert box.stats()["pending"] == 2


def test_bounded_outbox_drops_oldest_and_counts(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_messages=3)
    for i in range(5):
        box.enqueue("t/x", _msg(i))
    assert [p.seq for p in box.peek(10)] == [3, 4, 5]
    assert box.stats()["dropped_total"] == 2


def test_big_message_is_split_into_consecutive_seqs(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    msg = _msg(1)
    msg["body"] = {"drift": {"features": {f"f{i}": {"pad": "y" * 1000} for i in range(300)}}}
    seqs = box.enqueue("dt/edgekit/dev/metrics", msg)
    assert len(seqs) >= 3 and seqs == list(range(1, len(seqs) + 1))
    parts = [json.loads(p.payload) for p in box.peek(100)]
    assert all(len(p.payload) <= telemetry.MAX_MESSAGE_BYTES for p in box.peek(100))
    assert len(telemetry.join(parts)["body"]["drift"]["features"]) == 300


def test_publisher_deletes_only_after_ack_and_keeps_order(tmp_path):
    bus = Bus()
    box = Outbox(tmp_path / "o.sqlite")
    publisher = Publisher(box, InProcessTransport(bus=bus), timeout_s=1)
    for i in range(3):
        box.enqueue("t/x", _msg(i))
    bus.online = False
    assert publisher.publish_pending() is False
    assert box.stats()["pending"] == 3 and bus.messages == []
    bus.online = True
    assert publisher.publish_pending() is True
    assert [json.loads(p)["seq"] for _, p in bus.messages] == [1, 2, 3]
    assert box.stats()["pending"] == 0


def test_retry_delays_are_jittered_so_a_fleet_does_not_reconnect_in_step():
    import random

    from edge_agent.telemetry.outbox import jittered

    rng = random.Random(7)
    delays = [jittered(2.0, rng) for _ in range(1000)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert max(delays) - min(delays) > 0.8, "spread over the interval, not a fixed step"
    assert len({round(d, 6) for d in delays}) > 990
