"""The fleet's state read back from the store: devices, loss, latency percentiles from merged
histograms, lab against device, drift per feature, alerts, actions and deployments.

One dict (``fleet_summary``) feeds the terminal tables, ``--json`` and the HTML report.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edge_agent import telemetry
from edgekit.toolkit.fleet import fastjson, lab
from edgekit.toolkit.fleet.drift import FLEET, FeatureDrift, aggregate
from edgekit.toolkit.fleet.ingest import expand_drift
from edgekit.toolkit.fleet.rules import RulesConfig
from edgekit.toolkit.fleet.store import Store


def merged_latency(histograms: Iterable[str | Mapping[str, Any] | None]) -> dict[str, Any]:
    """Sum wire-form histograms (JSON text or dicts) and read p50/p90/p99 off the sum.

    Sums bucket counts in place (a report merges one histogram per device, 10,000 and more)."""
    counts: dict[int, int] = defaultdict(int)
    total, total_sum, lo, hi = 0, 0.0, math.inf, -math.inf
    for h in histograms:
        if not h:
            continue
        data = fastjson.loads(h) if isinstance(h, str) else h
        if not data.get("count") or data.get("scheme") != telemetry.HISTOGRAM_SCHEME:
            continue
        for index, count in data.get("buckets", []):
            counts[int(index)] += int(count)
        total += int(data["count"])
        total_sum += float(data.get("sum") or 0.0)
        if data.get("min") is not None:
            lo = min(lo, float(data["min"]))
        if data.get("max") is not None:
            hi = max(hi, float(data["max"]))
    wire = {
        "scheme": telemetry.HISTOGRAM_SCHEME,
        "count": total,
        "sum": total_sum,
        "min": lo if total else None,
        "max": hi if total else None,
        "buckets": [[i, counts[i]] for i in sorted(counts) if counts[i]],
    }
    return {
        "count": total,
        "mean": total_sum / total if total else None,
        "p50": telemetry.percentile(wire, 50),
        "p90": telemetry.percentile(wire, 90),
        "p99": telemetry.percentile(wire, 99),
        "max": wire["max"],
        "relative_error": telemetry.LATENCY_RELATIVE_ERROR,
    }


def drift_entries(store: Store, since: float | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM drift"
    params: tuple[float, ...] = ()
    if since is not None:
        sql, params = sql + " WHERE window_end >= ?", (since,)
    return [r for row in store.query(sql, params) for r in expand_drift(row)]


def fleet_drift(
    store: Store, bundles: lab.BundleIndex | None, config: RulesConfig | None = None
) -> list[FeatureDrift]:
    policy = (config or RulesConfig()).drift_policy
    return aggregate(drift_entries(store), bundles.baseline if bundles else None, policy)


def lab_vs_device(
    store: Store, bundles: lab.BundleIndex | None, config: RulesConfig | None = None
) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """The latest bench result per (device, variant) against the lab, through the collector's
    own rule (rules.lab_check): comparisons, notes on what was skipped, and the alerts the
    rule raises — the same alerts a live `fleet collect --bundle` raises."""
    from edgekit.toolkit.fleet.rules import lab_alerts, lab_check

    config = config or RulesConfig()
    targets = {r["thing"]: r["target"] for r in store.query("SELECT thing, target FROM devices")}
    rows = store.query(
        "SELECT b.* FROM bench b JOIN (SELECT thing, variant, MAX(seq) AS seq FROM bench "
        "GROUP BY thing, variant) last USING (thing, variant, seq) ORDER BY thing, variant"
    )
    out, notes, alerts = [], [], []
    for r in rows:
        target = config.target_for(r["thing"], targets.get(r["thing"]))
        results = {r["variant"]: fastjson.loads(r["record"])}
        cmps, why = lab_check(r["thing"], target, r["model_name"], results, bundles, config)
        notes += why
        out += [{**c.to_dict(), "measured_at": r["t"]} for c in cmps]
        alerts += lab_alerts(cmps, r["t"])
    return out, sorted(set(notes)), alerts


def device_rows(store: Store, gaps_by_thing: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per device, from the rollups (one row per device and variant, not per window)."""
    latency: dict[str, list[str]] = defaultdict(list)
    agg: dict[str, dict[str, Any]] = {}
    for r in store.query(
        "SELECT thing, latency, windows, requests, errors, rps_sum FROM latency_rollup "
        "ORDER BY thing"
    ):
        latency[r["thing"]].append(r["latency"])
        a = agg.setdefault(r["thing"], {"windows": 0, "requests": 0, "errors": 0, "rps": 0.0})
        a["windows"] += int(r["windows"])
        a["requests"] += int(r["requests"])
        a["errors"] += int(r["errors"])
        a["rps"] += float(r["rps_sum"])
    counts = {
        r["thing"]: int(r["n"])
        for r in store.query("SELECT thing, SUM(messages) AS n FROM thing_stats GROUP BY thing")
    }
    firing = {
        r["thing"]: r["n"]
        for r in store.query(
            "SELECT thing, COUNT(*) AS n FROM alerts WHERE state = 'firing' GROUP BY thing"
        )
    }
    out = []
    for d in store.query("SELECT * FROM devices ORDER BY thing"):
        t = d["thing"]
        a = agg.get(t, {"windows": 0, "requests": 0, "errors": 0, "rps": 0.0})
        lat = merged_latency(latency.get(t, []))
        out.append(
            {
                "thing": t,
                "target": d["target"],
                "bundle": d["bundle"],
                "variant": d["variant"],
                "component_version": d["component_version"],
                "cpu": d["cpu"],
                "first_seen": d["first_seen"],
                "last_seen": d["last_seen"],
                "messages": counts.get(t, 0),
                "lost": gaps_by_thing.get(t, 0),
                "windows": a["windows"],
                "requests": a["requests"],
                "errors": a["errors"],
                "requests_per_s": a["rps"] / a["windows"] if a["windows"] else None,
                "p50_ms": lat["p50"],
                "p90_ms": lat["p90"],
                "p99_ms": lat["p99"],
                "alerts": firing.get(t, 0),
            }
        )
    return out


def _alerts(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    rows = store.query("SELECT * FROM alerts ORDER BY t, id LIMIT ?", (limit,))
    out = []
    for r in rows:
        a = dict(r)
        a["detail"] = json.loads(a["detail"] or "{}")
        out.append(a)
    return out


def fleet_summary(
    store: Store,
    bundles: lab.BundleIndex | None = None,
    config: RulesConfig | None = None,
) -> dict[str, Any]:
    gaps = store.gaps()
    lost_by_thing: dict[str, int] = defaultdict(int)
    for g in gaps:
        lost_by_thing[g.thing] += g.missing
    by_type = {
        r["type"]: int(r["n"])
        for r in store.query("SELECT type, SUM(messages) AS n FROM thing_stats GROUP BY type")
    }
    span = store.query("SELECT MIN(first_window) AS lo, MAX(last_window) AS hi FROM thing_stats")[0]
    per_variant = defaultdict(list)
    for r in store.query("SELECT variant, latency FROM latency_rollup"):
        per_variant[r["variant"] or None].append(r["latency"])
    drift = fleet_drift(store, bundles, config)
    comparisons, notes, lab_alerts = lab_vs_device(store, bundles, config)
    alerts = _alerts(store)
    alert_counts: dict[str, int] = defaultdict(int)
    for a in alerts:
        if a["state"] == "firing":
            alert_counts[a["rule"]] += 1
    deployments = [
        {**dict(r), "versions": json.loads(r["versions"] or "{}")}
        for r in store.query("SELECT * FROM deployments ORDER BY started_at, thing")
    ]
    actions = [dict(r) for r in store.query("SELECT * FROM actions ORDER BY t")]
    return {
        "db": store.location,
        "generated_at": time.time(),
        "span": {"start": span["lo"], "end": span["hi"]},
        "messages": {
            "stored": sum(by_type.values()),
            "by_type": by_type,
            "duplicates_dropped": store.counter("duplicates"),
            "rejected": store.counter("rejected"),
            "lost": sum(g.missing for g in gaps),
            "lost_before_first_seen": sum(g.missing for g in gaps if g.leading),
        },
        "gaps": [
            {
                "thing": g.thing,
                "first": g.first,
                "last": g.last,
                "missing": g.missing,
                "leading": g.leading,
            }
            for g in gaps
        ],
        "devices": device_rows(store, lost_by_thing),
        "fleet_latency": {
            "all": merged_latency(h for hs in per_variant.values() for h in hs),
            "by_variant": {
                str(v): merged_latency(hs)
                for v, hs in sorted(per_variant.items(), key=lambda kv: str(kv[0]))
            },
        },
        "lab_vs_device": comparisons,
        "lab_notes": notes,
        "lab_alerts": lab_alerts,
        "drift": {
            "fleet": [f.to_dict() for f in drift if f.thing == FLEET],
            "by_device": [f.to_dict() for f in drift if f.thing != FLEET],
            "baselines": sorted({f.model or "" for f in drift if f.verdict is not None}),
        },
        "alerts": alerts,
        "alert_counts": dict(alert_counts),
        "actions": actions,
        "deployments": deployments,
    }


def import_run_dir(store: Store, run_dir: str | Path) -> int:
    """Deployment history the simulator wrote (devices/<thing>/deployments/<id>.json)."""
    records = []
    for path in sorted(Path(run_dir).glob("devices/*/deployments/*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        res = doc.get("result") or {}
        if "deployment_id" not in res or "thing" not in res:
            continue
        components = (doc.get("deployment") or {}).get("components") or []
        records.append({**res, "components": components})
    return store.add_deployments(records)
