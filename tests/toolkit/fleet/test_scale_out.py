"""Collectors scale out through the broker: three `edgekit fleet collect` processes share
``$share/edgekit/...`` (MQTT 5 shared subscriptions on a real mosquitto) and write one real
PostgreSQL; one is killed (SIGKILL) mid-run and restarted by its supervisor with the same client
id. Nothing is lost (its unacknowledged and queued messages come back with its session) and
nothing is stored twice (the (thing, seq) key drops the redelivered copies)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from edgekit.toolkit.fleet import synthetic as syn
from edgekit.toolkit.fleet.stores import open_fleet_store
from tests.helpers.fleet import start_collector

pytestmark = [pytest.mark.broker]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_three_collectors_share_the_fleet_and_a_killed_one_loses_nothing(
    mosquitto_broker, postgres_url, tmp_path
):
    store = open_fleet_store(postgres_url)  # migrated once, before the collectors race
    count = lambda: store.scalar("SELECT COUNT(*) FROM messages")  # noqa: E731
    ids = ["col-a", "col-b", "col-c"]
    procs = {
        cid: start_collector(mosquitto_broker.url, postgres_url, cid, cwd=tmp_path) for cid in ids
    }
    devices = [
        syn.SyntheticDevice(f"dev-{i}", mosquitto_broker.url, str(tmp_path / f"ob-{i}.sqlite"))
        for i in range(6)
    ]
    try:
        assert _wait(lambda: all(f"as {c}" in mosquitto_broker.log() for c in ids), 60), (
            mosquitto_broker.log()
        )
        for d in devices:
            d.start()
        # the first message of each device is published until one collector has subscribed
        devices[0].emit()
        assert _wait(lambda: count() >= 1, 60)
        for d in devices[1:]:
            d.emit()
        rounds = 40
        for r in range(rounds):
            for d in devices:
                d.emit()
            if r == rounds // 3:
                assert _wait(lambda: count() >= 6 * (rounds // 6), 60)  # busy when killed
                procs["col-b"].send_signal(signal.SIGKILL)  # mid-run, batches in flight
                procs["col-b"].wait(10)
            if r == 2 * rounds // 3:  # its supervisor starts it again, same client id
                procs["col-b"] = start_collector(
                    mosquitto_broker.url, postgres_url, "col-b", cwd=tmp_path
                )
            time.sleep(0.02)
        total = 6 * (rounds + 1)
        for d in devices:
            assert d.close(30)
        assert _wait(lambda: count() >= total, 120), f"{count()} of {total} stored"
        time.sleep(1.0)  # anything still arriving would be a duplicate: give it the chance
        outputs = {}
        for cid, p in procs.items():
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()
            outputs[cid] = json.loads(out)
        assert count() == total
        assert store.scalar("SELECT COUNT(DISTINCT (thing, seq)) FROM messages") == total
        assert store.gaps() == []
        assert store.scalar("SELECT COUNT(*) FROM metrics") == total
        per_thing = store.query("SELECT thing, MAX(seq) AS hi FROM messages GROUP BY thing")
        assert {r["thing"]: r["hi"] for r in per_thing} == {d.thing: rounds + 1 for d in devices}
        shares = [outputs[c]["stored"] for c in ("col-a", "col-c")]
        assert all(s > 0 for s in shares), outputs  # the survivors each got a share
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        for d in devices:
            d.close(1)
        store.close()
