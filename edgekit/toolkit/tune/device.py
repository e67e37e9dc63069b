"""Figures measured on the device itself: the bench records stored in the manifest under
variant["benchmarks"][target] (by `edgekit bench` on the device, or the agent's self-benchmark
collected by the fleet), or read from a fleet database with --from-fleet.

Records are edge_agent.contracts.bench.BenchRecord (one configuration each), read from the
manifest by its one reader, `stored_records`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, cast

from edge_agent.contracts.bench import BenchRecord, stored_records
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError
from edgekit.toolkit.targets import TargetProfile
from edgekit.toolkit.tune.explain import Point
from edgekit.toolkit.tune.gate import VariantInfo
from edgekit.toolkit.tune.space import Candidate, SessionOptions

# Where --from-fleet reads from: a module with `fleet_bench(db, target) -> FleetBench`.
FLEET_READER = "edgekit.toolkit.fleet.tune_source"


def _options(rec: BenchRecord, target: TargetProfile) -> tuple[SessionOptions, bool]:
    """The session options a record was measured with, and whether they were recorded (False:
    the thread count is the target's core count, an extrapolation, not what the device ran)."""
    so = rec.get("session_options") or {}
    recorded = so.get("intra_op_num_threads") or rec.get("threads")
    threads = recorded or target.cores
    return (
        SessionOptions(
            intra_op_num_threads=int(threads),
            inter_op_num_threads=int(so.get("inter_op_num_threads") or 1),
            execution_mode=so.get("execution_mode") or "sequential",
            graph_optimization_level=so.get("graph_optimization_level") or "all",
        ),
        bool(recorded),
    )


def _metrics(rec: BenchRecord) -> dict[str, Any] | None:
    lat = rec.get("latency_ms") or {}
    if not all(k in lat for k in ("p50", "p90", "p99")):
        return None
    tp = rec.get("throughput") or {}
    batch = int(rec.get("batch") or 1)
    qps, sps = tp.get("queries_per_s"), tp.get("samples_per_s")
    return {
        "latency_ms": {k: float(lat[k]) for k in ("p50", "p90", "p99", "mean") if k in lat},
        "throughput_qps": qps,
        "samples_per_s": sps if sps is not None else (qps or 0.0) * batch,
        "batch": batch,
        "stable": (rec.get("stability") or {}).get("stable"),
        "memory_bytes": None,
    }


def _where(rec: BenchRecord, target: TargetProfile) -> str:
    env = rec.get("environment") or {}
    thing, cpu = env.get("thing"), env.get("cpu_model")
    label = f"device {thing}" if thing else f"a {target.name} device"
    return f"{label} ({cpu})" if cpu else label


def points_from_records(
    records: list[BenchRecord], target: TargetProfile, infos: dict[str, VariantInfo]
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
        options, recorded = _options(rec, target)
        metrics["settings"] = "measured" if recorded else "extrapolated"
        metrics["thing"] = rec.get("thing") or (rec.get("environment") or {}).get("thing")
        cand = Candidate(name, provider, options)
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
        return points_from_records(fleet_records(from_fleet, target), target, infos)  # ungrouped
    if target.is_local:
        return []
    records: list[BenchRecord] = []
    for name, v in bundle.variants.items():
        for rec in stored_records((v.get("benchmarks") or {}).get(target.name)):
            records.append(cast(BenchRecord, {"variant": name, **rec}))
    return points_from_records(records, target, infos)


def fleet_bench(db: Path | str, target: TargetProfile) -> Any:
    """What the fleet collector stored for devices of this target type (a FleetBench: records,
    devices and their hardware groups, notes); `db` is a SQLite file or a postgresql:// URL.

    The hook for the collector: a module FLEET_READER with `fleet_bench(db, target_name)`.
    """
    url = isinstance(db, str) and "://" in db  # a server store (postgresql://…)
    if not url and not Path(db).is_file():
        raise BadInputError(f"`from_fleet` {db}: no such database file")
    try:
        reader = importlib.import_module(FLEET_READER)
    except ImportError as exc:
        raise BadInputError(
            f"`from_fleet` needs the fleet collector's reader ({FLEET_READER}), "
            "which this edgekit does not have yet",
            hint="until then, record device results in the manifest with the bench stage",
        ) from exc
    return reader.fleet_bench(db if url else Path(db), target.name)


def fleet_records(db: Path | str, target: TargetProfile) -> list[BenchRecord]:
    """Bench records the fleet collector stored for devices of this target type."""
    return [cast(BenchRecord, r) for r in fleet_bench(db, target).records]
