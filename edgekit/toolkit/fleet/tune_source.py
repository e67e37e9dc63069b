"""Device-measured bench results for `edgekit tune --from-fleet STORE` (edgekit.toolkit.tune.device
reads this module by name: ``fleet_bench(db, target) -> FleetBench``, or the older
``bench_records(db, target) -> list[record]``); STORE is a SQLite file or a postgresql:// URL
(edgekit.toolkit.fleet.store.open_fleet_store).

Each record is the agent's own bench record (edge_agent.benchmark, the same harness and schema as
`edgekit bench`), the latest per device and variant, with ``variant`` set, ``environment``
naming the device (``thing``, ``cpu_model``) and ``group`` naming the device's hardware group: the
hardware profile its ``hello`` reported (architecture, CPU model, usable cores, memory), so that
a fleet of unlike devices is judged group by group. A device's target is the one its hello
reported (the target its selection was made for); a component packaged without a tuned
selection reports none, and its devices are then matched by hardware group alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.toolkit.fleet import fastjson
from edgekit.toolkit.fleet.stores import open_fleet_store

GIB = 1024**3


def hardware_group(hello: dict[str, Any] | None) -> str:
    """A short, stable label for the hardware a hello describes: devices with the same label
    are interchangeable for a benchmark (same ISA and model of CPU, cores, memory)."""
    hw = (hello or {}).get("hardware") or {}
    cpu = hw.get("cpu") or {}
    arch = (hw.get("platform") or {}).get("architecture") or "?"
    cores = cpu.get("usable_cores") or cpu.get("logical_cores")
    mem = hw.get("memory_bytes")
    parts = [arch, str(cpu.get("model") or "unknown CPU")]
    if cores:
        parts.append(f"{cores} core{'s' if cores != 1 else ''}")
    if mem:
        parts.append(f"{round(mem / GIB)} GiB")
    return ", ".join(parts)


@dataclass
class FleetBench:
    """What the fleet database holds for one target: usable records, the devices they came
    from, and notes on what was matched how (or why nothing was)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # thing -> hardware group
    notes: list[str] = field(default_factory=list)


def _rows(db: str | Path) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    store = open_fleet_store(db, existing=True)
    try:
        rows = store.query(
            "SELECT b.thing, b.variant, b.t, b.record FROM bench b "
            "JOIN (SELECT thing, variant, MAX(seq) AS seq FROM bench GROUP BY thing, variant) "
            "last USING (thing, variant, seq) ORDER BY b.thing, b.variant"
        )
        devices = {
            r["thing"]: {"target": r["target"], "cpu": r["cpu"], "hello": r["hello"]}
            for r in store.query("SELECT thing, target, cpu, hello FROM devices")
        }
    finally:
        store.close()
    return rows, devices


def _hello(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = fastjson.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def bench_by_target(db: str | Path) -> dict[str | None, list[dict[str, Any]]]:
    """All usable device bench records, grouped by device target (None: target unknown)."""
    rows, devices = _rows(db)
    out: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        rec = fastjson.loads(r["record"])
        if not isinstance(rec.get("latency_ms"), dict):
            continue  # an error or a skip: nothing measured
        dev = devices.get(r["thing"]) or {}
        env = dict(rec.get("environment") or {})
        env.setdefault("thing", r["thing"])
        if dev.get("cpu"):
            env.setdefault("cpu_model", dev["cpu"])
        out[dev.get("target")].append(
            {
                **rec,
                "variant": rec.get("variant") or r["variant"],
                "thing": r["thing"],
                "group": hardware_group(_hello(dev.get("hello"))),
                "environment": env,
                "received_at": r["t"],
            }
        )
    return dict(out)


def fleet_bench(db: str | Path, target: str) -> FleetBench:
    """The records of the devices whose target is ``target``; when none reports it, those of
    the devices that report no target (matched by hardware group), with a note saying so."""
    by_target = bench_by_target(db)
    res = FleetBench()
    records = by_target.get(target) or []
    if not records and by_target.get(None):
        records = by_target[None]
        things = sorted({r["thing"] for r in records})
        res.notes.append(
            f"no device reports target {target}; {len(things)} device(s) report no target "
            f"({', '.join(things)}): their component was packaged without a tuned selection. "
            "Matched by hardware group instead; to give them a target: `edgekit tune BUNDLE "
            f"--target {target}`, then `edgekit package` again and deploy it"
        )
    elif not records:
        others = sorted(t for t in by_target if t)
        res.notes.append(
            f"no bench result from a {target} device"
            + (f" (the fleet has results for {', '.join(others)})" if others else "")
            + ": run `edgekit simulate bench` or send cmd/edgekit/{thing}/bench to the devices"
        )
    res.records = records
    res.devices = {r["thing"]: r["group"] for r in records}
    return res


def bench_records(db: str | Path, target: str) -> list[dict[str, Any]]:
    """The device bench records of every device whose target is ``target``."""
    return bench_by_target(db).get(target, [])
