"""The plain-language reason for a selection: what was chosen, by how much it wins, at what
cost in accuracy, and why each other variant lost (rejected, no speed-up, or just slower)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.toolkit.tune.gate import VariantInfo
from edgekit.toolkit.tune.objective import LatencyBudget, latency_of
from edgekit.toolkit.tune.space import Candidate

SAME = 0.03  # within 3 % counts as "no difference"


@dataclass
class Point:
    """A candidate with what is known about it: its variant's gate info and, if measured,
    its metrics and where they were measured."""

    candidate: Candidate
    info: VariantInfo
    metrics: dict[str, Any] | None = None
    source: str = "profile"  # "this machine", "emulated", "device", "profile"

    @property
    def measured(self) -> bool:
        return self.metrics is not None

    @property
    def figures(self) -> dict[str, Any]:
        """The metrics of a point known to be measured (the type checker cannot tell)."""
        assert self.metrics is not None, f"{self.candidate.describe()} was not measured"
        return self.metrics

    def axes(self, budget: LatencyBudget | None = None) -> dict[str, float]:
        return {
            "accuracy": -(self.info.drop or 0.0),
            "latency_ms": latency_of(self.metrics, budget) if self.metrics else 0.0,
            "bytes": float(self.info.bytes),
        }

    def to_dict(self, budget: LatencyBudget | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.candidate.to_dict(),
            "kind": self.info.kind,
            "bytes": self.info.bytes,
            "metric": self.info.metric,
            "metric_value": self.info.value,
            "drop": self.info.drop,
            "source": self.source,
        }
        if self.metrics:
            lat = self.metrics["latency_ms"]
            out["latency_ms"] = {k: lat[k] for k in ("p50", "p90", "p99", "mean") if k in lat}
            if "samples_per_s" in self.metrics:
                out["samples_per_s"] = self.metrics["samples_per_s"]
            out["stable"] = self.metrics.get("stable")
        return out


def _best_per_variant(
    points: list[Point], objective: str, budget: LatencyBudget | None
) -> dict[str, Point]:
    """Each variant's fastest point among those measured at its highest effort."""
    top: dict[str, float] = {}
    for p in points:
        if p.measured:
            e = p.figures.get("effort", 1.0)
            top[p.candidate.variant] = max(e, top.get(p.candidate.variant, 0.0))
    best: dict[str, Point] = {}
    for p in points:
        if not p.measured or p.figures.get("effort", 1.0) < top[p.candidate.variant] - 1e-9:
            continue
        cur = best.get(p.candidate.variant)
        if cur is None or _speed(p, objective, budget) > _speed(cur, objective, budget):
            best[p.candidate.variant] = p
    return best


def _best_per_threads(
    points: list[Point], variant: str, objective: str, budget: LatencyBudget | None
) -> dict[int, Point]:
    """A variant's fastest point per intra-op thread count (each at its highest effort)."""
    groups: dict[int, list[Point]] = {}
    for p in points:
        if p.measured and p.candidate.variant == variant:
            groups.setdefault(p.candidate.options.intra_op_num_threads, []).append(p)
    out = {}
    for n, group in groups.items():
        top = max(p.figures.get("effort", 1.0) for p in group)
        at_top = [p for p in group if p.figures.get("effort", 1.0) >= top - 1e-9]
        out[n] = max(at_top, key=lambda p: _speed(p, objective, budget))
    return out


def _wins_at_thread_counts(
    points: list[Point], name: str, objective: str, budget: LatencyBudget | None
) -> str:
    """'; at 1 thread 1.04× faster than fp32' where a variant that loses overall (because
    fp32 gains more from threads) wins at a thread count: the figure a single-thread
    benchmark of the same variant reports."""
    mine = _best_per_threads(points, name, objective, budget)
    ref = _best_per_threads(points, "fp32", objective, budget)
    wins = []
    for n in sorted(set(mine) & set(ref)):
        r = _speed(mine[n], objective, budget) / _speed(ref[n], objective, budget)
        if r >= 1 + SAME:
            wins.append(f"at {n} thread{'s' if n > 1 else ''} {_ratio_text(r, objective)}")
    return ("; " + ", ".join(wins)) if wins else ""


def _speed(p: Point, objective: str, budget: LatencyBudget | None) -> float:
    """Higher is faster: samples/s for throughput, 1/latency otherwise."""
    if objective == "throughput":
        return float(p.figures["samples_per_s"])
    return 1.0 / max(latency_of(p.figures, budget), 1e-9)


def fmt_ratio(r: float) -> str:
    """1.03 -> '1.03', 2.41 -> '2.4': two decimals near 1, where one would read '1.0'."""
    return f"{r:.2f}" if abs(r - 1) < 0.1 else f"{r:.1f}"


def _ratio_text(ratio: float, objective: str) -> str:
    if objective == "throughput":
        return f"{fmt_ratio(ratio)}× the throughput of fp32"
    if ratio >= 1:
        return f"{fmt_ratio(ratio)}× faster than fp32"
    return f"{fmt_ratio(1 / ratio)}× slower than fp32"


def measured_reason(
    selected: Point,
    points: list[Point],
    infos: dict[str, VariantInfo],
    objective: str,
    budget: LatencyBudget | None,
    where: str,
    unmeasured: str = "not measured (search budget)",
) -> str:
    """Why the selected point won, from what was measured: against fp32, what threads bought,
    the latency bound, then one clause per other variant."""
    best = _best_per_variant(points, objective, budget)
    ref = best.get("fp32")
    sel = selected
    head = f"{sel.info.label}, {sel.candidate.options.short()}"
    parts = _selected_parts(sel, ref, points, objective, budget, where)
    lines = [f"{head}: " + "; ".join(parts)]
    lines += _other_variants(sel, best, ref, points, infos, objective, budget, where, unmeasured)
    return "; ".join(lines)


def _selected_parts(
    sel: Point,
    ref: Point | None,
    points: list[Point],
    objective: str,
    budget: LatencyBudget | None,
    where: str,
) -> list[str]:
    """The selected point against fp32 (or why fp32 itself), its threads against one thread,
    and whether it meets the latency bound."""
    parts = []
    if sel.candidate.variant != "fp32" and ref is not None:
        ratio = _speed(sel, objective, budget) / _speed(ref, objective, budget)
        text = _ratio_text(ratio, objective)
        if objective == "size":
            text = (
                f"{fmt_ratio(ref.info.bytes / max(sel.info.bytes, 1))}× smaller than fp32, " + text
            )
        delta = sel.info.delta_text()
        parts.append(text + (f" at {delta}" if delta else ""))
    elif objective == "size":
        parts.append("the smallest variant that passes the gate")
    else:
        parts.append(
            f"the {'highest throughput' if objective == 'throughput' else 'fastest'} {where}"
        )
    # what threads bought, for the chosen variant
    same = [
        p
        for p in points
        if p.measured
        and p.candidate.variant == sel.candidate.variant
        and p.candidate.provider == sel.candidate.provider
        and p.candidate.options.intra_op_num_threads == 1
        and p.figures.get("effort", 1.0) == sel.figures.get("effort", 1.0)
    ]
    if sel.candidate.options.intra_op_num_threads > 1 and same:
        one = max(same, key=lambda p: _speed(p, objective, budget))
        gain = _speed(sel, objective, budget) / _speed(one, objective, budget)
        parts.append(
            f"{sel.candidate.options.intra_op_num_threads} threads {fmt_ratio(gain)}× 1 thread"
        )
    if budget is not None:
        value = float(sel.figures["latency_ms"][budget.percentile])
        verdict = "meets" if value <= budget.limit_ms else "misses"
        parts.append(f"{verdict} {budget} ({budget.percentile} {value:.3g} ms)")
    return parts


def _other_variants(
    sel: Point,
    best: dict[str, Point],
    ref: Point | None,
    points: list[Point],
    infos: dict[str, VariantInfo],
    objective: str,
    budget: LatencyBudget | None,
    where: str,
    unmeasured: str,
) -> list[str]:
    """One clause per variant not chosen: rejected, not measured, no speed-up, slower than
    the chosen one, or (fp32) larger or as fast."""
    lines: list[str] = []
    for name, info in infos.items():
        if name == sel.candidate.variant:
            continue
        if not info.passed:
            lines.append(f"{name} rejected: {info.pruned}")
            continue
        other = best.get(name)
        if other is None:
            lines.append(f"{name}: {unmeasured}")
            continue
        if ref is not None and name != "fp32":
            r = _speed(other, objective, budget) / _speed(ref, objective, budget)
            if r < 1 + SAME:
                pair = ""
                if other.candidate.options != ref.candidate.options:
                    pair = (
                        f", {other.candidate.options.short()} vs fp32 "
                        f"{ref.candidate.options.short()}"
                    )
                lines.append(
                    f"{name}: no speed-up {where} ({_ratio_text(r, objective)}{pair}"
                    f"{_wins_at_thread_counts(points, name, objective, budget)})"
                )
                continue
            lines.append(f"{name}: {_ratio_text(r, objective)}, less than {sel.candidate.variant}")
        elif name == "fp32":
            r = _speed(sel, objective, budget) / _speed(other, objective, budget)
            if objective == "size":
                lines.append(f"fp32: {info.bytes / max(sel.info.bytes, 1):.1f}× larger")
            elif r < 1 + SAME and sel.candidate.variant != "fp32":
                lines.append("fp32: as fast; the chosen variant wins on the tie-break")
    return lines


def profile_reason(
    selected: Point,
    infos: dict[str, VariantInfo],
    target_name: str,
    why: str | None,
    objective: str = "latency",
) -> str:
    head = f"{selected.info.label}, {selected.candidate.options.short()}"
    fp32 = infos.get("fp32")
    if objective == "size":
        choice = "the smallest variant that passes the gate"
        if fp32 is not None and selected.candidate.variant != "fp32":
            choice += f" ({fmt_ratio(fp32.bytes / max(selected.info.bytes, 1))}× smaller than fp32)"
    elif why is not None:
        choice = f"the {target_name} profile's first choice that passes the gate ({why})"
    else:
        choice = (
            f"of the variants that pass the gate, the kind the {target_name} profile ranks "
            f"highest ({selected.info.kind}), though its settings differ from the profile's recipe"
        )
    basis = "" if objective == "size" else ": ranked by the profile's preferences"
    text = (
        f"{head}: {choice}. Nothing was measured on {target_name}{basis}; "
        "measure on the device (the agent's bench command) to confirm"
    )
    pruned = [f"{n} rejected: {i.pruned}" for n, i in infos.items() if not i.passed]
    return "; ".join([text, *pruned])
