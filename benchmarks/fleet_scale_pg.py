"""The PostgreSQL mode of benchmarks/fleet_scale.py (``--postgresql``): the fleet beyond one
machine's SQLite.

[P1] N light devices (publishers only: each thing its own seq, QoS 1, republished until the
     broker acknowledges; things share MQTT connections) at 1 message per P s each, plus a
     burst in the middle, through mosquitto to 3 `edgekit fleet collect` processes on one
     shared subscription writing one PostgreSQL. One collector is SIGKILLed mid-run and
     restarted (same client id) by the script as a supervisor would. Pass: every acknowledged
     message stored once, no sequence gaps.
[P2] Ingest rate: 3 collector processes alone (no broker) storing pre-encoded light
     ``metrics`` messages into PostgreSQL at once; messages/s from first submit to last commit.
[P3] `edgekit fleet report --store URL --json` on R rows generated server-side
     (INSERT … SELECT generate_series) into messages and metrics.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.fleet import start_collector

ROOT = Path(__file__).resolve().parents[1]
LIGHT_BODY_SEED = 7


def light_body() -> dict[str, Any]:
    """A small metrics window (counts, throughput, latency histogram; no drift block)."""
    from edgekit.toolkit.fleet import synthetic as syn

    body = syn.metrics_body(np.random.default_rng(LIGHT_BODY_SEED), requests=20, reference={})
    body.pop("drift", None)
    return body


# ------------------------------------------------------------------------------------------------
# [P1] light publishers
# ------------------------------------------------------------------------------------------------


def _publisher(
    url: str,
    things: list[str],
    period_s: float,
    duration_s: float,
    burst: tuple[float, int, int],
    connections: int,
    start_at: float,
    out: Path,
) -> None:
    """One process: ``connections`` MQTT 5 clients publishing for ``things``."""
    from awscrt import mqtt5

    from edge_agent import telemetry
    from edge_agent.telemetry.transports.mqtt import parse_url
    from edgekit.toolkit.fleet import synthetic as syn

    _, host, port = parse_url(url, "--broker", "mqtt://host:port")
    clients = []
    for c in range(connections):
        cl = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=host,
                port=port,
                connect_options=mqtt5.ConnectPacket(
                    client_id=f"pub-{os.getpid()}-{c}", keep_alive_interval_sec=60
                ),
                ack_timeout_sec=30,
            )
        )
        cl.start()
        clients.append(cl)
    body = light_body()
    seqs = dict.fromkeys(things, 0)
    phase = {t: (hash(t) % 1000) / 1000 * period_s for t in things}
    pending: list[tuple[Any, str, int, bytes]] = []
    failures = 0

    def publish(thing: str, seq: int | None = None, payload: bytes | None = None) -> None:
        if payload is None:
            seqs[thing] += 1
            seq = seqs[thing]
            now = time.time()
            msg = syn.message("metrics", thing, seq, body, window=(now - period_s, now))
            payload = telemetry.encode(msg)
        cl = clients[hash(thing) % connections]
        fut = cl.publish(
            mqtt5.PublishPacket(
                topic=telemetry.data_topic(thing, "metrics"),
                payload=payload,
                qos=mqtt5.QoS.AT_LEAST_ONCE,
            )
        )
        pending.append((fut, thing, seq, payload))

    def settle(block: bool) -> None:
        nonlocal failures
        keep = []
        for fut, thing, seq, payload in pending:
            if not block and not fut.done():
                keep.append((fut, thing, seq, payload))
                continue
            try:
                res = fut.result(60)
                code = getattr(getattr(res, "puback", None), "reason_code", None)
                # no subscriber yet: for the benchmark that is not delivered (resent), so that
                # loss measures the collectors' path alone
                ok = code == mqtt5.PubackReasonCode.SUCCESS
            except Exception:
                ok = False
            if not ok:  # the device's outbox would resend it: same seq, same bytes
                failures += 1
                keep.append(("retry", thing, seq, payload))
        pending[:] = []
        for fut, thing, seq, payload in keep:
            if fut == "retry":
                publish(thing, seq, payload)
            else:
                pending.append((fut, thing, seq, payload))

    while time.time() < start_at:
        time.sleep(0.01)
    t0 = time.monotonic()
    sent_period = dict.fromkeys(things, -1)
    burst_at, burst_things, burst_n = burst
    burst_done = False
    while (elapsed := time.monotonic() - t0) < duration_s:
        k = int(elapsed // period_s)
        within = elapsed - k * period_s
        for t in things:
            if sent_period[t] < k and within >= phase[t]:
                sent_period[t] = k
                publish(t)
        if not burst_done and elapsed >= burst_at:
            burst_done = True
            for t in things[:burst_things]:
                for _ in range(burst_n):
                    publish(t)
        settle(block=False)
        time.sleep(0.02)
    while pending:
        settle(block=True)
    for cl in clients:
        cl.stop()
    out.write_text(json.dumps({"last_seq": seqs, "republished": failures}))


def fleet_through_broker(
    broker_url: str,
    broker_log: Any,
    store_url: str,
    work: Path,
    *,
    devices: int,
    duration_s: float,
    period_s: float,
    publishers: int,
    connections: int,
    burst_devices: int,
    burst_n: int,
) -> dict[str, Any]:
    from edgekit.toolkit.fleet.stores import open_fleet_store

    store = open_fleet_store(store_url)
    count = lambda: int(store.scalar("SELECT COUNT(*) FROM messages"))  # noqa: E731
    ids = ["bench-col-1", "bench-col-2", "bench-col-3"]
    logs = work / "collectors.log"
    cols = {c: start_collector(broker_url, store_url, c, stderr=logs.open("ab")) for c in ids}
    deadline = time.monotonic() + 120
    while not all(f"as {c}" in broker_log() for c in ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # ... and subscribe (a message with no subscriber yet is resent anyway)
    things = [f"dev-{i:05d}" for i in range(devices)]
    shards = [things[i::publishers] for i in range(publishers)]
    start_at = time.time() + 2.0
    ctx = mp.get_context("spawn")
    procs = []
    for i, shard in enumerate(shards):
        p = ctx.Process(
            target=_publisher,
            args=(
                broker_url,
                shard,
                period_s,
                duration_s,
                (duration_s / 2, burst_devices // publishers, burst_n),
                connections,
                start_at,
                work / f"pub-{i}.json",
            ),
        )
        p.start()
        procs.append(p)
    samples: list[tuple[float, int]] = []
    events: dict[str, float] = {}
    t0 = start_at
    try:
        while any(p.is_alive() for p in procs):
            now = time.time()
            samples.append((now - t0, count()))
            if "killed" not in events and now - t0 >= 0.4 * duration_s:
                cols["bench-col-2"].send_signal(signal.SIGKILL)
                cols["bench-col-2"].wait(10)
                events["killed"] = now - t0
            if "restarted" not in events and now - t0 >= 0.6 * duration_s:
                cols["bench-col-2"] = start_collector(
                    broker_url, store_url, "bench-col-2", stderr=logs.open("ab")
                )
                events["restarted"] = now - t0
            time.sleep(1.0)
        for p in procs:
            p.join()
        events["published"] = time.time() - t0
        last: dict[str, int] = {}
        republished = 0
        for i in range(len(shards)):
            doc = json.loads((work / f"pub-{i}.json").read_text())
            last.update(doc["last_seq"])
            republished += doc["republished"]
        expected = sum(last.values())
        deadline = time.monotonic() + 300
        while count() < expected and time.monotonic() < deadline:
            samples.append((time.time() - t0, count()))
            time.sleep(1.0)
        events["all_stored"] = time.time() - t0
        time.sleep(2.0)  # late redeliveries would show as duplicates dropped, never as rows
        stats = {}
        for cid, p in cols.items():
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=120)
            try:
                stats[cid] = json.loads(out)
            except ValueError:
                stats[cid] = {"error": out.decode(errors="replace")[-500:]}
        rows = count()
        gaps = store.gaps()
        stored_last = {
            r["thing"]: int(r["hi"])
            for r in store.query("SELECT thing, MAX(seq) AS hi FROM messages GROUP BY thing")
        }
        missing_tail = sum(max(0, n - stored_last.get(t, 0)) for t, n in last.items())
        peak = 0.0
        for (ta, ca), (tb, cb) in zip(samples, samples[5:], strict=False):
            if tb > ta:
                peak = max(peak, (cb - ca) / (tb - ta))
        result = {
            "devices": devices,
            "period_s": period_s,
            "duration_s": duration_s,
            "burst": f"{burst_devices} devices x {burst_n} messages at {duration_s / 2:g} s",
            "publisher_processes": publishers,
            "mqtt_connections": publishers * connections,
            "collectors": 3,
            "published": expected,
            "republished_after_failed_puback": republished,
            "stored": rows,
            "lost": sum(g.missing for g in gaps) + missing_tail,
            "duplicates_stored": rows
            - int(
                store.scalar("SELECT COUNT(*) FROM (SELECT DISTINCT thing, seq FROM messages) d")
            ),
            "duplicates_received_and_dropped": store.counter("duplicates"),
            "collector_killed_at_s": round(events.get("killed", -1), 1),
            "collector_restarted_at_s": round(events.get("restarted", -1), 1),
            "peak_ingest_msg_per_s_5s": round(peak),
            "mean_ingest_msg_per_s": round(rows / max(1e-9, events["all_stored"])),
            "caught_up_after_last_publish_s": round(events["all_stored"] - events["published"], 1),
            "collector_stats": {
                c: {k: s.get(k) for k in ("stored", "duplicates", "failed_batches")}
                for c, s in stats.items()
            },
        }
        result["ok"] = rows == expected and result["lost"] == 0 and result["duplicates_stored"] == 0
        return result
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in cols.values():
            if p.poll() is None:
                p.kill()
        store.close()


# ------------------------------------------------------------------------------------------------
# [P2] collectors alone into PostgreSQL
# ------------------------------------------------------------------------------------------------


def _ingest_worker(store_url: str, lo: int, hi: int, things: int, barrier, out) -> None:
    from edge_agent import telemetry
    from edgekit.toolkit.fleet import synthetic as syn
    from edgekit.toolkit.fleet.collector import Collector

    body = light_body()
    now = time.time()
    payloads = []
    for i in range(lo, hi):
        thing, seq = f"dev-{i % things:05d}", i // things + 1
        msg = syn.message("metrics", thing, seq, body, window=(now + seq - 1, now + seq))
        payloads.append((telemetry.data_topic(thing, "metrics"), telemetry.encode(msg)))
    collector = Collector.open(store_url)
    collector.rules = None  # the ingest path alone (rules are measured by the SQLite mode)
    collector.start()
    barrier.wait()
    t0 = time.time()
    for topic, payload in payloads:
        collector.submit(topic, payload)
    ok = collector.flush(900)
    t1 = time.time()
    stored = collector.stats.stored
    collector.close()
    out.put((t0, t1, stored, ok, sum(len(p) for _, p in payloads)))


def ingest_rate(store_url: str, n: int, processes: int = 3, things: int = 10000) -> dict[str, Any]:
    from edgekit.toolkit.fleet.stores import open_fleet_store

    open_fleet_store(store_url).close()
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    bounds = np.linspace(0, n, processes + 1).astype(int)
    procs = [
        ctx.Process(
            target=_ingest_worker,
            args=(store_url, int(bounds[i]), int(bounds[i + 1]), things, barrier, out),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    got = [out.get(timeout=1200) for _ in procs]
    for p in procs:
        p.join()
    t0, t1 = min(g[0] for g in got), max(g[1] for g in got)
    stored = sum(g[2] for g in got)
    rate = n / (t1 - t0)
    return {
        "messages": n,
        "message_bytes": round(sum(g[4] for g in got) / n),
        "collector_processes": processes,
        "seconds": round(t1 - t0, 2),
        "messages_per_s": round(rate),
        "stored": stored,
        "target_per_s": 20000,
        "ok": stored == n and all(g[3] for g in got) and rate >= 20000,
    }


# ------------------------------------------------------------------------------------------------
# [P3] fleet report on many rows
# ------------------------------------------------------------------------------------------------


def generate_rows(store_url: str, rows: int, things: int = 10000) -> float:
    """``rows`` metrics messages (and their metrics rows) made by the server itself."""
    import psycopg

    from edge_agent import telemetry
    from edgekit.toolkit.fleet.ingest import _wire
    from edgekit.toolkit.fleet.stores import open_fleet_store

    open_fleet_store(store_url).close()
    hist = json.dumps(_wire(light_body()["latency_ms"]))
    t0 = time.perf_counter()
    per = rows // things
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            "INSERT INTO messages (thing, seq, type, received_at, created_at, window_start, "
            "window_end, part_index, part_count, component_version, model_name, variant) "
            "SELECT 'dev-' || lpad(t::text, 5, '0'), s, 'metrics', 1.7e9 + s * 10, "
            "1.7e9 + s * 10, 1.7e9 + s * 10 - 10, 1.7e9 + s * 10, 0, 1, '1.0.0', 'demo', 'fp32' "
            "FROM generate_series(1, %s) s, generate_series(0, %s) t",
            (per, things - 1),
        )
        conn.execute(
            "INSERT INTO metrics (thing, seq, window_start, window_end, model_name, variant, "
            "component_version, requests, ok, errors, rows, requests_per_s, p50, p90, p99, "
            "latency, outbox_pending, outbox_dropped) "
            "SELECT thing, seq, window_start, window_end, model_name, variant, "
            "component_version, 20, 20, 0, 20, 2.0, 2.0, 3.0, 4.0, %s, 0, 0 FROM messages",
            (hist,),
        )
        conn.execute(
            "INSERT INTO devices (thing, first_seen, last_seen, variant, "
            "component_version, bundle) SELECT DISTINCT thing, 1.7e9, 1.8e9, 'fp32', "
            "'1.0.0', 'demo' FROM messages ON CONFLICT DO NOTHING"
        )
        # the rollups ingest keeps (edgekit.toolkit.fleet.rollup): every window here has the same
        # histogram, so a device's merged histogram is that one with its counts times `per`
        conn.execute(
            "INSERT INTO thing_stats SELECT thing, type, COUNT(*), MIN(seq), MAX(seq), "
            "MIN(window_start), MAX(window_end) FROM messages GROUP BY thing, type"
        )
        one = json.loads(hist)
        merged = {
            **one,
            "count": one["count"] * per,
            "sum": one["sum"] * per,
            "buckets": [[i, c * per] for i, c in one["buckets"]],
        }
        with conn.cursor().copy("COPY latency_rollup FROM STDIN") as copy:
            for t in range(things):
                copy.write_row(
                    (f"dev-{t:05d}", "fp32", per, 20 * per, 0, 2.0 * per, json.dumps(merged))
                )
        conn.execute("VACUUM ANALYZE messages")
        conn.execute("VACUUM ANALYZE metrics")
    del telemetry
    return time.perf_counter() - t0


def report_time(store_url: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from edgekit.toolkit.cli import main; main()",
            "fleet",
            "report",
            "--store",
            store_url,
            "--json",
        ],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=3600,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": round(elapsed, 2), "exit": proc.returncode}
    if proc.returncode == 0:
        s = json.loads(proc.stdout)
        out.update(
            stored=s["messages"]["stored"],
            devices=len(s["devices"]),
            lost=s["messages"]["lost"],
            fleet_p99_ms=s["fleet_latency"]["all"]["p99"],
        )
    else:
        out["stderr"] = proc.stderr.decode(errors="replace")[-1000:]
    return out
