"""Figures measured on the device itself: the bench records stored in the manifest under
variant["benchmarks"][target] (by `edgekit bench` on the device, or the agent's self-benchmark
collected by the fleet), or read from a fleet database with --from-fleet.

Records have the shape of edge_agent.benchmark.record (one configuration each); a target's
entry may be one record, a list of them, or {"records": [...]}.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edge_agent.bundle import Bundle
from edge_agent.errors import BadInputError
from toolkit.targets import TargetProfile
from toolkit.tune.explain import Point
from toolkit.tune.gate import VariantInfo
from toolkit.tune.space import Candidate, SessionOptions

# Where --from-fleet reads from: a module with `bench_records(db, target) -> list[record]`.
FLEET_READER = "toolkit.fleet.tune_source"


def _records(entry: Any) -> list[dict[str, Any]]:
    if isinstance(entry, list):
        return [r for r in entry if isinstance(r, dict)]
    if isinstance(entry, dict):
        scenarios = entry.get("scenarios")  # the bench stage's layout
        if isinstance(scenarios, dict):
            env = entry.get("environment") or {}
            return [
                {"environment": env, **r}
                for r in scenarios.get("single-stream") or []
                if isinstance(r, dict)
            ]
        inner = entry.get("records") or entry.get("results")
        if isinstance(inner, list):
            return [r for r in inner if isinstance(r, dict)]
        if "latency_ms" in entry:
            return [entry]
    return []


def _options(rec: dict[str, Any], target: TargetProfile) -> SessionOptions:
    so = rec.get("session_options") or {}
    threads = so.get("intra_op_num_threads") or rec.get("threads") or target.cores
    return SessionOptions(
        intra_op_num_threads=int(threads),
        inter_op_num_threads=int(so.get("inter_op_num_threads") or 1),
        execution_mode=so.get("execution_mode") or "sequential",
        graph_optimization_level=so.get("graph_optimization_level") or "all",
    )


def _metrics(rec: dict[str, Any]) -> dict[str, Any] | None:
    lat = rec.get("latency_ms") or {}
    if not all(k in lat for k in ("p50", "p90", "p99")):
        return None
    tp = rec.get("throughput") or {}
    batch = int(rec.get("batch") or 1)
    qps = tp.get("queries_per_s") if isinstance(tp, dict) else None
    sps = tp.get("samples_per_s") if isinstance(tp, dict) else None
    return {
        "latency_ms": {k: float(lat[k]) for k in ("p50", "p90", "p99", "mean") if k in lat},
        "throughput_qps": qps,
        "samples_per_s": sps if sps is not None else (qps or 0.0) * batch,
        "batch": batch,
        "stable": (rec.get("stability") or {}).get("stable"),
        "memory_bytes": None,
    }


def _where(rec: dict[str, Any], target: TargetProfile) -> str:
    env = rec.get("environment") or {}
    thing = env.get("thing") or rec.get("thing")
    cpu = env.get("cpu_model") or (env.get("cpu") or {}).get("model")
    label = f"device {thing}" if thing else f"a {target.name} device"
    return f"{label} ({cpu})" if cpu else label


def points_from_records(
    records: list[dict[str, Any]], target: TargetProfile, infos: dict[str, VariantInfo]
) -> list[Point]:
    out = []
    for rec in records:
        name = rec.get("variant")
        if name not in infos or rec.get("scenario", "single-stream") != "single-stream":
            continue
        metrics = _metrics(rec)
        if metrics is None:
            continue
        provider = rec.get("provider") or "CPUExecutionProvider"
        cand = Candidate(name, provider, _options(rec, target))
        out.append(Point(cand, infos[name], metrics, _where(rec, target)))
    return out


def points(
    bundle: Bundle,
    target: TargetProfile,
    infos: dict[str, VariantInfo],
    from_fleet: Path | None = None,
) -> list[Point]:
    """Device-measured points for the target: the fleet's when asked, else the manifest's."""
    if from_fleet is not None:
        return points_from_records(fleet_records(from_fleet, target), target, infos)
    if target.is_local:
        return []
    records = []
    for name, v in bundle.variants.items():
        for rec in _records((v.get("benchmarks") or {}).get(target.name)):
            records.append({"variant": name, **rec})
    return points_from_records(records, target, infos)


def fleet_records(db: Path | str, target: TargetProfile) -> list[dict[str, Any]]:
    """Bench records the fleet collector stored for devices of this target type.

    The hook for the collector: a module FLEET_READER with `bench_records(db, target_name)`.
    """
    url = isinstance(db, str) and "://" in db  # a server store (postgresql://…)
    if not url and not Path(db).is_file():
        raise BadInputError(f"--from-fleet {db}: no such database file")
    try:
        reader = importlib.import_module(FLEET_READER)
    except ImportError as exc:
        raise BadInputError(
            f"--from-fleet needs the fleet collector's reader ({FLEET_READER}), "
            "which this edgekit does not have yet",
            hint="until then, record device results in the manifest with the bench stage",
        ) from exc
    return list(reader.bench_records(db if url else Path(db), target.name))
