"""`edgekit bench compare OLD NEW`: per configuration the ratio of the headline figure, and a
regression flag when NEW is worse than OLD by more than the threshold (for CI)."""

from __future__ import annotations

import math
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.bench.engine import config_key

DEFAULT_THRESHOLD = 0.10


def _label(key: tuple[Any, ...]) -> dict[str, Any]:
    names = ("scenario", "system", "variant", "provider", "threads", "batch")
    return dict(zip(names, key, strict=True))


def compare_runs(
    old: dict[str, Any], new: dict[str, Any], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Any]:
    """Rows for configurations in both runs; NEW/OLD ratio of the headline; regressions flagged.

    Lower-is-better figures (latency) regress when the ratio exceeds 1 + threshold;
    higher-is-better ones (throughput, QPS) when it falls below 1 - threshold.
    """
    if not math.isfinite(threshold) or threshold < 0:
        raise BadInputError(f"`threshold` must be a number >= 0, got {threshold}")
    old_by = {config_key(r): r for r in old["records"]}
    new_by = {config_key(r): r for r in new["records"]}
    rows = []
    for key in [k for k in old_by if k in new_by]:
        a, b = old_by[key], new_by[key]
        ha, hb = a["headline"], b["headline"]
        better = hb.get("better") or ("lower" if hb["unit"] == "ms" else "higher")
        row: dict[str, Any] = {
            **_label(key),
            "metric": hb["name"],
            "unit": hb["unit"],
            "better": better,
            "old": ha["value"],
            "new": hb["value"],
            "ratio": None,
            "regression": False,
            "notes": [],
        }
        if ha["name"] != hb["name"]:
            row["notes"].append(f"headline changed from {ha['name']!r}")
        if ha["value"] > 0:
            ratio = hb["value"] / ha["value"]
            row["ratio"] = ratio
            row["regression"] = (
                ratio > 1 + threshold if better == "lower" else ratio < 1 - threshold
            )
        elif hb["value"] > 0 and better == "lower":
            row["regression"] = True
        for side, rec in (("old", a), ("new", b)):
            if not rec["stability"]["stable"]:
                row["notes"].append(f"{side} run unstable")
        rows.append(row)
    return {
        "threshold": threshold,
        "rows": rows,
        "regressions": sum(r["regression"] for r in rows),
        "only_old": [_label(k) for k in old_by if k not in new_by],
        "only_new": [_label(k) for k in new_by if k not in old_by],
        "environments": {"old": old.get("environment", {}), "new": new.get("environment", {})},
        "passed": not any(r["regression"] for r in rows),
    }
