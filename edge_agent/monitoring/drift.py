"""Drift statistics on the baseline's fixed bins: PSI plus a test that knows the sample size.

PSI's usual 0.1 / 0.25 bands say nothing under a few hundred samples: pure sampling noise on
10 bins gives PSI ≈ 9/n on average (PSI ≈ χ²/n). So a window is judged in two steps:

1. fewer than ``min_samples`` rows → ``too_few_samples`` (not drift, not ok);
2. otherwise ``drift`` only when the shift is both *real* (Pearson χ² goodness-of-fit against
   the baseline shares has p < ``alpha``) and *material* (PSI ≥ ``psi_threshold``).

χ² is only valid when every bin expects a handful of rows, so before testing, adjacent bins are
pooled until each expects at least ``MIN_EXPECTED`` (the textbook rule of five). Without that, a
40-row window and a bin holding 1 % of the baseline (an unseen-category bin, a tail) turn one
stray row into "drift". PSI is computed on the same pooled bins, so both figures see the same
evidence.

Both the agent (per window) and the fleet collector (on summed counts) call ``assess``.
Pure Python + math: no scipy on the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Shares below this are floored before PSI/χ² so an empty reference bin cannot divide by zero.
SHARE_FLOOR = 1e-4
# Pearson's χ² approximation needs about this many expected rows in every bin.
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds for one verdict; the agent takes them from its configuration."""

    min_samples: int = 100
    alpha: float = 0.001
    psi_threshold: float = 0.1


def _floored(shares: Sequence[float]) -> list[float]:
    raw = [max(float(s), SHARE_FLOOR) for s in shares]
    total = sum(raw)
    return [s / total for s in raw]


def psi(counts: Sequence[float], reference_shares: Sequence[float]) -> float:
    """Population stability index of observed bin counts against reference shares."""
    if len(counts) != len(reference_shares):
        raise ValueError(f"{len(counts)} counts for {len(reference_shares)} reference bins")
    n = float(sum(counts))
    if n <= 0:
        return 0.0
    actual = _floored([c / n for c in counts])
    expected = _floored(reference_shares)
    return float(sum((a - e) * math.log(a / e) for a, e in zip(actual, expected, strict=True)))


def chi_square(counts: Sequence[float], reference_shares: Sequence[float]) -> tuple[float, int]:
    """Pearson χ² statistic and degrees of freedom (bins − 1) against the reference shares."""
    n = float(sum(counts))
    expected = _floored(reference_shares)
    stat = (
        sum((c - n * e) ** 2 / (n * e) for c, e in zip(counts, expected, strict=True)) if n else 0.0
    )
    return float(stat), max(len(counts) - 1, 1)


def chi_square_sf(x: float, dof: int) -> float:
    """P(X ≥ x) for X ~ χ²(dof): the regularized upper incomplete gamma Q(dof/2, x/2)."""
    if x <= 0:
        return 1.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _gamma_q(a: float, x: float) -> float:
    # Series for P when x < a + 1, Lentz continued fraction for Q otherwise.
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def pool_bins(
    counts: Sequence[float], reference_shares: Sequence[float], n: float
) -> tuple[list[float], list[float]]:
    """Merge adjacent bins until each expects at least MIN_EXPECTED of the n rows.

    Bins keep their order (numeric bins are ordered by value, categories by baseline share), so
    pooling only ever joins neighbours; a short last group is folded into the one before it.
    """
    expected = _floored(reference_shares)
    pooled_counts: list[float] = []
    pooled_shares: list[float] = []
    run_count = run_share = 0.0
    for count, share in zip(counts, expected, strict=True):
        run_count += float(count)
        run_share += share
        if run_share * n >= MIN_EXPECTED:
            pooled_counts.append(run_count)
            pooled_shares.append(run_share)
            run_count = run_share = 0.0
    if run_share > 0 or run_count > 0:
        if pooled_counts:
            pooled_counts[-1] += run_count
            pooled_shares[-1] += run_share
        else:
            pooled_counts.append(run_count)
            pooled_shares.append(run_share)
    return pooled_counts, pooled_shares


def assess(
    counts: Sequence[float], reference_shares: Sequence[float], policy: DriftPolicy | None = None
) -> dict[str, Any]:
    """One drift entry of the metrics message: n, counts, psi, chi2, p_value, status."""
    policy = policy or DriftPolicy()
    n = int(round(sum(counts)))
    entry: dict[str, Any] = {
        "n": n,
        "counts": [int(c) for c in counts],
        "psi": None,
        "chi2": None,
        "p_value": None,
        "status": "too_few_samples",
    }
    if n < max(policy.min_samples, 1) or not reference_shares:
        return entry
    pooled_counts, pooled_shares = pool_bins(counts, reference_shares, n)
    if len(pooled_counts) < 2:  # too few rows to expect five in two groups
        return entry
    value = psi(pooled_counts, pooled_shares)
    stat, dof = chi_square(pooled_counts, pooled_shares)
    p = chi_square_sf(stat, dof)
    entry.update(
        psi=round(value, 6), chi2=round(stat, 4), p_value=p, bins_tested=len(pooled_counts)
    )
    entry["status"] = "drift" if (p < policy.alpha and value >= policy.psi_threshold) else "ok"
    return entry


def reference_shares(feature: dict[str, Any]) -> list[float]:
    """The baseline's reference share per bin, in the same bin order the counts use.

    Categorical features get the baseline categories in order plus a trailing OTHER bin (share
    of the baseline's own ``__other__`` if it has one, else 0), matching
    ``edge_agent.monitoring.baseline.categorical_counts``.
    """
    from edge_agent.monitoring.baseline import OTHER

    if feature["kind"] == "numeric":
        return [float(s) for s in feature.get("bin_shares", [])]
    categories = feature.get("categories", {})
    shares = [float(v) for v in categories.values()]
    if OTHER not in categories:
        shares.append(0.0)
    return shares
