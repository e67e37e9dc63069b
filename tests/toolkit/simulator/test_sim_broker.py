"""The cloud side through a real mosquitto broker: device telemetry reaches an MQTT 5
subscriber, a broker outage is spooled and flushed, and cloud commands reach the component."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers.mosquitto import MqttCollector
from test_sim_fleet import FAST, _build

from edgekit.toolkit.simulator.faults import parse_faults
from edgekit.toolkit.simulator.runner import SimulateOptions, simulate

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_fleet_through_mosquitto_with_outage(short_dir, mosquitto_broker):
    build = _build(short_dir)
    with MqttCollector(mosquitto_broker, "dt/edgekit/#", client_id="sim-test-collector") as col:
        opts = SimulateOptions(
            component_dir=build,
            run_dir=short_dir / "run",
            devices=2,
            duration_s=4.0,
            timeouts=FAST,
            broker=mosquitto_broker.url,
            faults=parse_faults("broker-outage@1+1.5"),
            bench={},
        )
        summary = asyncio.run(asyncio.wait_for(simulate(opts), 90))
        assert col.wait_for(lambda ms: len(ms) > 20, 10)
        msgs = list(col.messages)
    assert set(summary["bench"]) == {"sim-001", "sim-002"}
    for thing in ("sim-001", "sim-002"):
        seqs = [
            json.loads(m.payload)["seq"] for m in msgs if m.topic == f"dt/edgekit/{thing}/metrics"
        ]
        assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs[:30]  # none lost
    spooled_then = [d["mqtt"] for d in summary["devices"].values()]
    assert all(m["dropped_qos0"] == 0 and m["dropped_spool"] == 0 for m in spooled_then)
    assert all(
        m["spooled_total"] > 0 and m["spooled"] == 0 for m in spooled_then
    )  # spooled, flushed
