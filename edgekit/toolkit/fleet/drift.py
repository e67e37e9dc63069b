"""Drift per feature, per device and across the fleet, from the bin counts devices send.

Counts sit on the baseline's fixed bins, so adding them over windows and devices is exact; the
verdict on the sum uses the same test as the agent (``edge_agent.monitoring.drift.assess``: PSI and a
sample-size-aware χ² test) against the baseline's reference shares. Without the bundle's
baseline the reference is unknown: the summary then falls back to the devices' own per-window
PSI (mean) and the share of windows they judged drifted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent.monitoring import drift as drift_stats

FLEET = "*fleet*"

Baselines = Callable[[str | None], Mapping[str, Any] | None]  # model name -> baseline document


@dataclass
class FeatureDrift:
    model: str | None
    group: str  # features | predictions
    name: str
    thing: str  # a device, or FLEET
    counts: list[int] = field(default_factory=list)
    windows: int = 0
    drift_windows: int = 0
    window_psi_sum: float = 0.0
    window_psi_n: int = 0
    mismatched: int = 0  # windows whose bins did not match (another baseline)
    verdict: dict[str, Any] | None = None  # assess() on the summed counts, with a baseline

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def psi(self) -> float | None:
        if self.verdict and self.verdict.get("psi") is not None:
            return float(self.verdict["psi"])
        return None

    @property
    def window_psi_mean(self) -> float | None:
        return self.window_psi_sum / self.window_psi_n if self.window_psi_n else None

    @property
    def status(self) -> str:
        if self.verdict:
            return str(self.verdict["status"])
        return "drift" if self.drift_windows * 2 > max(self.windows, 1) else "no_baseline"

    @property
    def score(self) -> float | None:
        """What the heat map shows: merged PSI, else the mean window PSI."""
        return self.psi if self.psi is not None else self.window_psi_mean

    def add(self, counts: list[int], psi: float | None, status: str | None) -> None:
        if not self.counts:
            self.counts = [0] * len(counts)
        if len(counts) != len(self.counts):
            self.mismatched += 1
            return
        self.counts = [a + int(b) for a, b in zip(self.counts, counts, strict=True)]
        self.windows += 1
        self.drift_windows += status == "drift"
        if psi is not None:
            self.window_psi_sum += float(psi)
            self.window_psi_n += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "group": self.group,
            "feature": self.name,
            "thing": self.thing,
            "n": self.n,
            "windows": self.windows,
            "drift_windows": self.drift_windows,
            "psi": self.psi,
            "window_psi_mean": self.window_psi_mean,
            "p_value": (self.verdict or {}).get("p_value"),
            "status": self.status,
            "counts": self.counts,
        }


def _reference(baseline: Mapping[str, Any] | None, group: str, name: str) -> list[float] | None:
    if not baseline:
        return None
    for entry in baseline.get(group) or []:
        if entry.get("name") == name:
            shares = drift_stats.reference_shares(entry)
            return shares or None
    return None


def aggregate(
    rows: Iterable[Mapping[str, Any]],
    baselines: Baselines | None = None,
    policy: drift_stats.DriftPolicy | None = None,
) -> list[FeatureDrift]:
    """Rows (thing, model_name, grp, name, counts, psi, status) → one entry per (feature,
    device) plus one per feature for the whole fleet (thing == FLEET)."""
    acc: dict[tuple[str | None, str, str, str], FeatureDrift] = {}
    for r in rows:
        counts = r["counts"]
        if isinstance(counts, str):
            counts = json.loads(counts)
        for thing in (r["thing"], FLEET):
            key = (r["model_name"], r["grp"], r["name"], thing)
            fd = acc.get(key)
            if fd is None:
                fd = acc[key] = FeatureDrift(r["model_name"], r["grp"], r["name"], thing)
            fd.add(counts, r["psi"], r["status"])
    cache: dict[str | None, Mapping[str, Any] | None] = {}
    for fd in acc.values():
        if baselines is None:
            continue
        if fd.model not in cache:
            cache[fd.model] = baselines(fd.model)
        ref = _reference(cache[fd.model], fd.group, fd.name)
        if ref is not None and len(ref) == len(fd.counts):
            fd.verdict = drift_stats.assess(fd.counts, ref, policy)
    return sorted(acc.values(), key=lambda f: (f.group, f.name, f.thing != FLEET, f.thing))
