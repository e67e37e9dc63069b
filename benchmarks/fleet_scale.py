"""Fleet collector at scale and through a broker outage: the figures the README quotes.

1. Scale + fault: N lightweight devices (the agent's real durable outbox, MQTT 5 transport and
   publisher thread; no model) each publish one ``metrics`` message per second for D seconds
   through mosquitto, with the broker stopped for O seconds in the middle. The collector
   (MQTT 5 shared subscription, persistent session, PUBACK after commit) stores into SQLite.
   Pass: every message stored, zero lost (no sequence gaps), zero duplicates stored.
2. Ingest rate: the collector alone (no broker) storing pre-encoded ``metrics`` messages
   (~3 KB each, 10 drift features) into SQLite. Target: >= 5,000 messages per second.

Full run (what the README quotes): 50 devices x 60 s, 10 s outage; 30,000 messages ingested.
``--quick``: 10 devices x 20 s, 5 s outage; 5,000 messages ingested.

Run: ``.venv/bin/python benchmarks/fleet_scale.py [--quick] [--json out.json]``

``--postgresql``: the PostgreSQL mode instead (benchmarks/fleet_scale_pg.py): light devices
through mosquitto to 3 collectors and one PostgreSQL with a collector killed mid-run, the ingest
rate of 3 collectors, and `fleet report` on generated rows. Full size: 10,000 devices at
1 message per 10 s plus a burst, 300,000 messages ingested, report on 10,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent import telemetry  # noqa: E402
from edgekit.toolkit.fleet import synthetic as syn  # noqa: E402
from edgekit.toolkit.fleet.collector import Collector  # noqa: E402
from edgekit.toolkit.fleet.mqtt_source import MqttSource  # noqa: E402
from tests.helpers.mosquitto import Broker, free_port, mosquitto_binary  # noqa: E402


class PersistentBroker(Broker):
    """mosquitto that keeps sessions and queued QoS 1 messages across stop()/start(), as a
    production broker does: the collector's session must survive the outage."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        if "persistence true" not in text:
            data = self.folder / "data"
            data.mkdir(exist_ok=True)
            data.chmod(0o777)
            text = text.replace("persistence false\n", "")
            text += f"persistence true\npersistence_location {data}/\nautosave_interval 0\n"
            self.config_path.write_text(text)


class FleetBroker(Broker):
    """mosquitto configured for a fleet with collectors that may die: a dead collector's share
    (its persistent session) is queued without limit until it is back. mosquitto's default of
    1,000 queued messages per client (the tests' broker: 10,000) drops the rest."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text().replace(
            "max_queued_messages 10000", "max_queued_messages 0"
        )
        self.config_path.write_text(text)


def machine() -> dict[str, Any]:
    from edge_agent.hardware import probe

    hw = probe()
    try:
        import orjson

        json_lib = f"orjson {orjson.__version__}"
    except ImportError:
        json_lib = "json (stdlib)"
    mosq = subprocess.run(
        [mosquitto_binary() or "mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "cpu": hw["cpu"]["model"],
        "cores": hw["cpu"]["usable_cores"],
        "memory_gb": round((hw.get("memory_bytes") or 0) / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "json": json_lib,
        "mosquitto": mosq[0] if mosq else "?",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _wait(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def scale_and_outage(
    devices: int, duration_s: int, outage_s: float, work: Path, group: str | None
) -> dict[str, Any]:
    folder = work / "broker"
    folder.mkdir()
    folder.chmod(0o755)
    broker = PersistentBroker(folder, free_port())
    broker.write_config()
    broker.start()
    collector = Collector.open(work / "scale.db").start()
    source = MqttSource(collector, broker.url, group=group, client_id="bench-collector-1")
    fleet: list[syn.SyntheticDevice] = []
    outage_at = duration_s / 2 - outage_s / 2
    events: dict[str, float] = {}
    max_backlog = 0
    try:
        source.start()
        ref = syn.feature_reference(4)
        for i in range(devices):
            dev = syn.SyntheticDevice(
                f"dev-{i:03d}",
                broker.url,
                str(work / f"outbox-{i:03d}.sqlite"),
                seed=i,
                reference=ref,
            )
            fleet.append(dev.start())
        if not _wait(lambda: all(d.transport.connected() for d in fleet), 60):
            raise RuntimeError("devices did not connect to the broker within 60 s")
        t0 = time.monotonic()
        down = False
        for tick in range(duration_s):
            # one message per device per second, on schedule, whatever the broker does
            while time.monotonic() < t0 + tick:
                if down and time.monotonic() - t0 >= events["down"] + outage_s:
                    broker.start()
                    events["up"] = time.monotonic() - t0
                    down = False
                time.sleep(0.01)
            if not down and "down" not in events and tick >= outage_at:
                broker.stop()
                events["down"] = time.monotonic() - t0
                down = True
            for d in fleet:
                d.emit()
            max_backlog = max(max_backlog, sum(d.pending() for d in fleet))
        events["last_publish"] = time.monotonic() - t0
        if down:
            broker.start()
            events["up"] = time.monotonic() - t0
        expected = devices * duration_s
        drained = _wait(lambda: sum(d.pending() for d in fleet) == 0, 120)
        events["outboxes_empty"] = time.monotonic() - t0
        stored = _wait(
            lambda: collector.store.scalar("SELECT COUNT(*) FROM messages") >= expected, 60
        )
        events["all_stored"] = time.monotonic() - t0
        collector.flush(30)
        store = collector.store
        rows = store.scalar("SELECT COUNT(*) FROM messages")
        distinct = store.scalar("SELECT COUNT(*) FROM (SELECT DISTINCT thing, seq FROM messages)")
        gaps = store.gaps()
        result = {
            "devices": devices,
            "duration_s": duration_s,
            "rate_per_device_per_s": 1,
            "outage_s": outage_s,
            "broker_down_at_s": round(events.get("down", -1), 1),
            "broker_up_at_s": round(events.get("up", -1), 1),
            "published": sum(d.emitted for d in fleet),
            "expected": expected,
            "stored": rows,
            "lost": sum(g.missing for g in gaps),
            "duplicates_stored": rows - distinct,
            "duplicates_received_and_dropped": collector.stats.duplicates,
            "max_outbox_backlog": max_backlog,
            "device_dropped_by_outbox": sum(d.outbox.stats()["dropped_total"] for d in fleet),
            "drained": drained and stored,
            "caught_up_after_last_publish_s": round(
                events["all_stored"] - events["last_publish"], 1
            ),
            "collector_reconnects": source.connects - 1,
            "collector_sessions_lost": source.sessions_lost,
            "subscription": f"$share/{group}/..." if group else "plain, persistent session",
        }
        result["ok"] = (
            result["stored"] == expected
            and result["lost"] == 0
            and result["duplicates_stored"] == 0
        )
        if not result["ok"]:  # say where it went wrong
            result["gaps"] = [(g.thing, g.first, g.last) for g in gaps[:20]]
            result["last_seq_stored"] = {
                r["thing"]: r["hi"]
                for r in store.query("SELECT thing, MAX(seq) AS hi FROM messages GROUP BY thing")
            }
            result["outbox_pending"] = {d.thing: d.pending() for d in fleet if d.pending()}
            result["collector_last_error"] = source.last_error
            result["broker_log_tail"] = broker.log()[-3000:]
        return result
    finally:
        for d in fleet:
            d.close(1)
        source.stop()
        collector.close()
        broker.stop()


def ingest_rate(n: int, work: Path, things: int = 50) -> dict[str, Any]:
    """Pre-encoded messages (bodies drawn once, reused), timed from the first submit to the
    last commit."""
    rng = np.random.default_rng(0)
    ref = syn.feature_reference(10)
    bodies = [syn.metrics_body(rng, reference=ref, requests=50) for _ in range(64)]
    now = time.time()
    payloads = []
    for i in range(n):
        thing, seq = f"dev-{i % things:03d}", i // things + 1
        msg = syn.message(
            "metrics", thing, seq, bodies[i % len(bodies)], window=(now + seq - 1, now + seq)
        )
        payloads.append((telemetry.data_topic(thing, "metrics"), telemetry.encode(msg)))
    collector = Collector.open(work / "ingest.db").start()
    try:
        t0 = time.perf_counter()
        for topic, payload in payloads:
            collector.submit(topic, payload)
        if not collector.flush(600):
            raise RuntimeError("collector did not finish")
        elapsed = time.perf_counter() - t0
        stats = collector.stats.to_dict()
    finally:
        collector.close()
    size = sum(p.stat().st_size for p in work.glob("ingest.db*"))
    return {
        "messages": n,
        "message_bytes": round(sum(len(p) for _, p in payloads) / n),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(n / elapsed),
        "stored": stats["stored"],
        "database_bytes": size,
        "target_per_s": 5000,
        "ok": stats["stored"] == n and n / elapsed >= 5000,
    }


def main() -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)  # reconnect chatter from every device otherwise
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 devices x 20 s, 5,000 messages")
    ap.add_argument("--devices", type=int)
    ap.add_argument("--duration", type=int, help="seconds of publishing")
    ap.add_argument("--outage", type=float, help="seconds the broker is down, mid-run")
    ap.add_argument("--messages", type=int, help="messages for the ingest-rate test")
    ap.add_argument(
        "--group",
        default="",
        help="collector shared-subscription group for [1] (default: a plain persistent "
        "subscription, because mosquitto 2.0.11 does not restore $share subscriptions from its "
        "persistence file after a restart; see the README)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--postgresql", action="store_true", help="the PostgreSQL mode (see above)")
    ap.add_argument("--period", type=float, default=10.0, help="[P1] seconds between messages")
    ap.add_argument("--burst", type=int, default=10, help="[P1] messages per bursting device")
    ap.add_argument("--report-rows", type=int, help="[P3] rows to generate (10,000,000)")
    ap.add_argument("--parts", default="p1,p2,p3", help="PostgreSQL mode: which parts to run")
    args = ap.parse_args()
    if args.postgresql:
        return postgresql_mode(args)
    devices = args.devices or (10 if args.quick else 50)
    duration = args.duration or (20 if args.quick else 60)
    outage = args.outage if args.outage is not None else (5.0 if args.quick else 10.0)
    messages = args.messages or (5000 if args.quick else 30000)
    if mosquitto_binary() is None:
        print("mosquitto is not installed: run scripts/setup.sh", file=sys.stderr)
        return 2
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    work = Path(tempfile.mkdtemp(prefix="edgekit-fleet-bench-"))
    work.chmod(0o755)  # mosquitto runs as its own user: it must reach its folder below
    try:
        print(
            f"\n[1] {devices} devices x 1 msg/s x {duration} s through mosquitto, "
            f"broker down {outage:g} s mid-run ...",
            flush=True,
        )
        scale = scale_and_outage(devices, duration, outage, work, args.group or None)
        print(
            f"    published {scale['published']}, stored {scale['stored']} / "
            f"{scale['expected']}, lost {scale['lost']}, duplicates stored "
            f"{scale['duplicates_stored']} (received twice and dropped: "
            f"{scale['duplicates_received_and_dropped']})"
        )
        print(
            f"    broker down {scale['broker_down_at_s']}s..{scale['broker_up_at_s']}s, "
            f"peak outbox backlog {scale['max_outbox_backlog']} messages, caught up "
            f"{scale['caught_up_after_last_publish_s']} s after the last publish; "
            f"subscription {scale['subscription']}, collector sessions lost "
            f"{scale['collector_sessions_lost']} -> " + ("PASS" if scale["ok"] else "FAIL")
        )
        if not scale["ok"]:
            for key in (
                "gaps",
                "last_seq_stored",
                "outbox_pending",
                "collector_last_error",
                "broker_log_tail",
            ):
                print(f"    {key}: {scale.get(key)}")
        print(f"\n[2] collector alone: {messages} metrics messages into SQLite ...", flush=True)
        rate = ingest_rate(messages, work)
        print(
            f"    {rate['messages_per_s']:,} messages/s ({rate['message_bytes']} B each, "
            f"{rate['seconds']} s, database {rate['database_bytes'] / 2**20:.1f} MB) -> "
            + ("PASS" if rate["ok"] else "FAIL")
            + " (target >= 5,000/s)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {"machine": info, "quick": args.quick, "scale_and_outage": scale, "ingest": rate}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if scale["ok"] and rate["ok"] else 1


def postgresql_mode(args: argparse.Namespace) -> int:
    from benchmarks import fleet_scale_pg as pg
    from tests.helpers.postgres import pg_bindir, running_postgres

    if mosquitto_binary() is None or pg_bindir() is None:
        print("mosquitto and postgresql are needed: run scripts/setup.sh", file=sys.stderr)
        return 2
    devices = args.devices or (1000 if args.quick else 10000)
    duration = args.duration or (30 if args.quick else 60)
    messages = args.messages or (30000 if args.quick else 300000)
    report_rows = args.report_rows or (1_000_000 if args.quick else 10_000_000)
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="edgekit-fleet-pg-"))
    work.chmod(0o755)
    results: dict[str, Any] = {"machine": info, "quick": args.quick}
    settings = {"shared_buffers": "256MB", "max_wal_size": "4GB", "work_mem": "64MB"}
    try:
        with running_postgres(settings) as server:
            import psycopg

            with psycopg.connect(server.url(), autocommit=True) as conn:
                info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
                info["postgresql_settings"] = "defaults (fsync on) + " + ", ".join(
                    f"{k}={v}" for k, v in settings.items()
                )
            print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
            parts = set(args.parts.split(","))
            if "p1" in parts:
                folder = work / "broker"
                folder.mkdir()
                folder.chmod(0o755)
                broker = FleetBroker(folder, free_port())
                broker.write_config()
                broker.start()
                try:
                    print(
                        f"\n[P1] {devices} light devices x 1 msg/{args.period:g} s x {duration} s"
                        " + burst, mosquitto -> 3 collectors -> PostgreSQL, one killed ...",
                        flush=True,
                    )
                    results["p1_fleet"] = pg.fleet_through_broker(
                        broker.url,
                        broker.log,
                        server.create_database("fleet_p1"),
                        work,
                        devices=devices,
                        duration_s=duration,
                        period_s=args.period,
                        publishers=2,
                        connections=25,
                        burst_devices=min(devices, 2000),
                        burst_n=args.burst,
                    )
                finally:
                    broker.stop()
                print("    " + json.dumps(results["p1_fleet"]), flush=True)
            if "p2" in parts:
                print(f"\n[P2] 3 collectors alone: {messages} light metrics messages ...")
                results["p2_ingest"] = pg.ingest_rate(server.create_database("fleet_p2"), messages)
                print("    " + json.dumps(results["p2_ingest"]), flush=True)
            if "p3" in parts:
                print(f"\n[P3] fleet report on {report_rows:,} generated rows ...", flush=True)
                url = server.create_database("fleet_p3")
                gen = pg.generate_rows(url, report_rows)
                p3 = {"rows": report_rows, "generate_s": round(gen, 1), **pg.report_time(url)}
                p3["ok"] = p3.get("exit") == 0 and p3["seconds"] < 5.0
                results["p3_report"] = p3
                print("    " + json.dumps(p3), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(v["ok"] for k, v in results.items() if k.startswith("p")) else 1


if __name__ == "__main__":
    sys.exit(main())
