"""Device-measured bench results for `edgekit tune --from-fleet STORE` (toolkit.tune.device reads
this module by name: ``bench_records(db, target) -> list[record]``); STORE is a SQLite file or a
postgresql:// URL (toolkit.fleet.store.open_fleet_store).

Each record is the agent's own bench record (edge_agent.benchmark, the same harness and schema as
`edgekit bench`), the latest per device and variant, with ``variant`` set and ``environment``
naming the device (``thing``, ``cpu_model``) so tune can say where a figure came from. A
device's type is the target its hello reported (the target its selection was made for).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from toolkit.fleet import fastjson
from toolkit.fleet.store import open_fleet_store


def bench_by_target(db: str | Path) -> dict[str, list[dict[str, Any]]]:
    """All usable device bench records, grouped by device target (None: target unknown)."""
    store = open_fleet_store(db, existing=True)
    try:
        rows = store.query(
            "SELECT b.thing, b.variant, b.t, b.record, d.target, d.cpu FROM bench b "
            "JOIN (SELECT thing, variant, MAX(seq) AS seq FROM bench GROUP BY thing, variant) "
            "last USING (thing, variant, seq) LEFT JOIN devices d USING (thing) "
            "ORDER BY b.thing, b.variant"
        )
    finally:
        store.close()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        rec = fastjson.loads(r["record"])
        if not isinstance(rec.get("latency_ms"), dict):
            continue  # an error or a skip: nothing measured
        env = dict(rec.get("environment") or {})
        env.setdefault("thing", r["thing"])
        if r["cpu"]:
            env.setdefault("cpu_model", r["cpu"])
        out[r["target"]].append(
            {
                **rec,
                "variant": rec.get("variant") or r["variant"],
                "thing": r["thing"],
                "environment": env,
                "received_at": r["t"],
            }
        )
    return dict(out)


def bench_records(db: str | Path, target: str) -> list[dict[str, Any]]:
    """The device bench records of every device whose target is ``target``."""
    return bench_by_target(db).get(target, [])
