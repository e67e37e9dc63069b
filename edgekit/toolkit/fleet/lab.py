"""Lab against device: the latency a device measured for a variant (its ``bench`` reply, made by
the same harness as ``edgekit bench``, same record schema) against the lab result stored in the
bundle for that device's target, ``variant["benchmarks"][target]``.

A device slower than the lab beyond a threshold is the regression alarm: a thermal throttle, a
wrong build of onnxruntime, a neighbour process, a target profile that lies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.contracts.bench import BenchRecord, stored_records
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import EdgekitError

# The default alarm: the device's mean latency more than 25 % above the lab's. Not p50: a
# slowed device (a throttled CPU, a busy neighbour; the emulator's duty-cycled `host*3`, `pi4`)
# loses whole time slices, which hit a few calls hard and leave the median call alone. Measured
# with `simulate bench --profiles 'host*3,pi4,host'` against tune's lab record (docs/fleet-
# selection.md): p50 0.94x / 1.42x / 0.93x, p90 1.30x / 1.48x / 1.08x, mean 1.49x / 2.86x / 0.95x
# (= throughput, one query at a time). The mean separates slowed from healthy devices.
DEFAULT_THRESHOLD = 0.25
DEFAULT_METRIC = "mean"
METRICS = ("mean", "p50", "p90", "p95", "p99")
LAB_RECORD_S = 3.0  # seconds of the lab record tune takes of its selection


class BundleIndex:
    """Bundles by name (manifest ``name``), from given folders and from folders searched for a
    ``manifest.json`` (e.g. the simulator's unarchived artifacts), rescanned when a name is new."""

    def __init__(
        self, bundles: Iterable[Path] = (), search_roots: Iterable[Path] = (), rescan_s: float = 5
    ) -> None:
        self._by_name: dict[str, Bundle] = {}
        self.search_roots = [Path(p) for p in search_roots]
        self.rescan_s = rescan_s
        self._scanned_at = -1e9
        for path in bundles:
            self.add(Bundle.open(path))

    def add(self, bundle: Bundle) -> None:
        self._by_name.setdefault(bundle.manifest["name"], bundle)

    def _scan(self) -> None:
        self._scanned_at = time.monotonic()
        for root in self.search_roots:
            if not root.is_dir():
                continue
            for manifest in sorted(root.glob("**/manifest.json")):
                try:
                    self.add(Bundle.open(manifest.parent))
                except (EdgekitError, OSError, ValueError):
                    continue  # not a bundle (or half unpacked): skip

    def get(self, name: str | None) -> Bundle | None:
        if not name:
            return None
        if name not in self._by_name and time.monotonic() - self._scanned_at > self.rescan_s:
            self._scan()
        return self._by_name.get(name)

    def names(self) -> list[str]:
        if time.monotonic() - self._scanned_at > self.rescan_s:
            self._scan()
        return sorted(self._by_name)

    def baseline(self, name: str | None) -> dict[str, Any] | None:
        bundle = self.get(name)
        if bundle is None:
            return None
        try:
            return bundle.baseline()
        except EdgekitError:
            return None


def lab_records(bundle: Bundle, variant: str, target: str) -> list[BenchRecord]:
    """Single-stream records of ``variant`` for ``target``, read by the one reader of the
    manifest's bench entries (``edge_agent.contracts.bench.stored_records``)."""
    return stored_records(
        ((bundle.variants.get(variant) or {}).get("benchmarks") or {}).get(target)
    )


def match_lab(
    device: Mapping[str, Any], lab: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The lab record measured the most like the device's: same provider and batch, then the
    nearest thread count."""
    provider = device.get("provider") or "CPUExecutionProvider"
    batch = int(device.get("batch") or 1)
    same = [
        r
        for r in lab
        if (r.get("provider") or "CPUExecutionProvider") == provider
        and int(r.get("batch") or 1) == batch
        and isinstance(r.get("latency_ms"), dict)
    ]
    if not same:
        return None
    threads = device.get("threads") or 0
    return min(same, key=lambda r: abs((r.get("threads") or 0) - threads))


@dataclass
class Comparison:
    thing: str
    target: str
    variant: str
    metric: str
    device_ms: float
    lab_ms: float
    threshold: float
    lab_threads: int | None
    device_threads: int | None

    @property
    def ratio(self) -> float:
        return self.device_ms / self.lab_ms if self.lab_ms > 0 else float("inf")

    @property
    def slower(self) -> bool:
        return self.ratio > 1 + self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "thing": self.thing,
            "target": self.target,
            "variant": self.variant,
            "metric": self.metric,
            "device_ms": self.device_ms,
            "lab_ms": self.lab_ms,
            "ratio": round(self.ratio, 4),
            "threshold": self.threshold,
            "slower": self.slower,
            "lab_threads": self.lab_threads,
            "device_threads": self.device_threads,
        }

    def alert(self, t: float | None = None) -> dict[str, Any]:
        return {
            "t": t or time.time(),
            "source": "fleet",
            "thing": self.thing,
            "rule": "lab_regression",
            "state": "firing",
            "severity": "critical" if self.ratio > 2 * (1 + self.threshold) else "warning",
            "message": (
                f"{self.variant} runs {self.ratio:.2f}x the lab's {self.metric} on {self.thing} "
                f"({self.device_ms:.3g} ms vs {self.lab_ms:.3g} ms for target {self.target})"
            ),
            "subject": self.variant,
            "value": round(self.ratio, 4),
            "threshold": 1 + self.threshold,
            "detail": self.to_dict(),
        }


def compare(
    thing: str,
    target: str,
    variant: str,
    device_record: dict[str, Any],
    bundle: Bundle,
    threshold: float = DEFAULT_THRESHOLD,
    metric: str = DEFAULT_METRIC,
) -> Comparison | None:
    """None when the device record has no latency or the bundle has no lab result to match."""
    dev_lat = device_record.get("latency_ms")
    if not isinstance(dev_lat, dict) or not isinstance(dev_lat.get(metric), (int, float)):
        return None
    lab = match_lab(device_record, lab_records(bundle, variant, target))
    if lab is None or not isinstance(lab["latency_ms"].get(metric), (int, float)):
        return None
    return Comparison(
        thing,
        target,
        variant,
        metric,
        float(dev_lat[metric]),
        float(lab["latency_ms"][metric]),
        threshold,
        lab.get("threads"),
        device_record.get("threads"),
    )


def measure_lab_record(
    bundle: Bundle, variant: str, threads: int, duration_s: float = LAB_RECORD_S
) -> dict[str, Any]:
    """The lab record of a variant with the settings it is deployed with: the agent's own
    harness (edge_agent.benchmark), one query at a time, as a device's bench command measures."""
    from edge_agent.benchmark import TimingConfig, run_single_stream

    samples = bundle.sample_inputs() if bundle.manifest.get("samples") else None
    rec = run_single_stream(
        bundle.verify_variant(variant),
        bundle.signature["inputs"],
        threads=threads,
        samples=samples,
        timing=TimingConfig(duration_s=duration_s),
        variant=variant,
    )
    return {
        **rec,
        "session_options": {"intra_op_num_threads": threads},
        "settings_from": "the selection tune recorded",
    }


def put_lab_record(
    manifest: dict[str, Any], variant: str, target: str, record: dict[str, Any], where: str
) -> None:
    """Store ``record`` under variant["benchmarks"][target], replacing the one of the same
    provider, threads and batch (the bench stage's layout, which stored_records reads)."""
    entry = manifest["variants"][variant].setdefault("benchmarks", {}).setdefault(target, {})
    entry["environment"] = {**(entry.get("environment") or {}), "lab": where}
    scenarios = entry.setdefault("scenarios", {})

    def key(r: dict[str, Any]) -> tuple:
        return (r.get("provider"), r.get("threads"), r.get("batch"))

    kept = [r for r in scenarios.get("single-stream") or [] if key(r) != key(record)]
    scenarios["single-stream"] = [*kept, record]
