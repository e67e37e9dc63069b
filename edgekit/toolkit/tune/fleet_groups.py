"""`tune --from-fleet`: device figures judged per hardware group.

Devices are grouped by the hardware profile their ``hello`` reported (edgekit.toolkit.fleet.tune_source
labels it). Within a group each candidate (variant, provider, session options) is judged on the
slowest device that measured it: the worst latency at every percentile and the lowest throughput,
so one fast device never speaks for slow ones. Each group gets its own choice (tuner records the
largest group's for the target and lists every group's); the reasons name the group, its
devices, and which variants were measured on which devices.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from edgekit.toolkit.tune.explain import Point


def _m(p: Point) -> dict[str, Any]:
    """A device point's metrics (device points always carry them)."""
    assert p.metrics is not None, p
    return p.metrics


def worst_of(points: list[Point]) -> dict[str, Any]:
    """One candidate's metrics over several devices: the slowest device's at each figure."""
    lat: dict[str, float] = {}
    for p in points:
        for k, v in _m(p)["latency_ms"].items():
            lat[k] = max(lat.get(k, 0.0), float(v))
    qps = [_m(p).get("throughput_qps") for p in points]
    sps = [_m(p).get("samples_per_s") for p in points]
    return {
        "latency_ms": lat,
        "throughput_qps": min((q for q in qps if q is not None), default=None),
        "samples_per_s": min((s for s in sps if s is not None), default=0.0),
        "batch": _m(points[0]).get("batch", 1),
        "stable": all(_m(p).get("stable") is not False for p in points),
        "memory_bytes": None,
        "settings": (
            "measured"
            if all(_m(p).get("settings") == "measured" for p in points)
            else "extrapolated"
        ),
        "devices": sorted({_m(p)["thing"] for p in points}),
    }


@dataclass
class DeviceGroup:
    label: str
    devices: list[str]
    points: list[Point]  # one per candidate: the worst device's figures
    measured: dict[str, list[str]] = field(default_factory=dict)  # variant -> devices
    selected: Point | None = None
    reason: str = ""

    def measured_text(self) -> str:
        return "; ".join(f"{v} on {', '.join(ds)}" for v, ds in sorted(self.measured.items()))

    def to_dict(self) -> dict[str, Any]:
        sel = self.selected
        return {
            "group": self.label,
            "devices": self.devices,
            "measured": self.measured,
            "selected": sel.candidate.to_dict() if sel else None,
            "reason": self.reason,
        }


def group(label: str, device_points: list[Point]) -> DeviceGroup:
    """The group's candidates, each on its slowest device (``metrics["thing"]`` says whose)."""
    by_cand: dict[Any, list[Point]] = defaultdict(list)
    measured: dict[str, set[str]] = defaultdict(set)
    for p in device_points:
        by_cand[p.candidate.key].append(p)
        measured[p.candidate.variant].add(_m(p)["thing"])
    points = []
    for members in by_cand.values():
        metrics = worst_of(members)
        devs = metrics["devices"]
        source = f"{label}: " + (
            f"slowest of {', '.join(devs)}" if len(devs) > 1 else f"device {devs[0]}"
        )
        points.append(Point(members[0].candidate, members[0].info, metrics, source))
    things = sorted({_m(p)["thing"] for p in device_points})
    return DeviceGroup(label, things, points, {v: sorted(d) for v, d in measured.items()})


def groups(device_points: list[Point], group_of: dict[str, str]) -> list[DeviceGroup]:
    """Per hardware group (``group_of``: thing -> label), in the order of their labels."""
    split: dict[str, list[Point]] = defaultdict(list)
    for p in device_points:
        split[group_of.get(_m(p)["thing"], "unknown hardware")].append(p)
    return [group(label, pts) for label, pts in sorted(split.items())]
