"""`edgekit tune`: choose, per hardware target, the variant, provider and session options.

The steps, each in its own module:
  1. the target's profile, and whether this machine can stand in for it (targets.compat);
  2. the variants the target prefers, created if missing (sources.ensure_preferred);
  3. the accuracy and memory gate, before anything is timed (gate);
  4. the figures: measured here (measure + search), measured on the device
     (variant["benchmarks"][target] or the fleet), or none (ranked by the profile);
  5. the Pareto front, the selection per objective, the reason (pareto, objective, explain);
  6. manifest["selection"][target] with the session options the agent applies.
"""

from __future__ import annotations

import gc
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from edge_agent.contracts import manifest as manifest_io
from edge_agent.contracts.bundle import Bundle
from edge_agent.contracts.selection import SessionOptionsRecord, TuneDecision
from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.fleet import lab
from edgekit.toolkit.scoring.pareto import pareto_front
from edgekit.toolkit.targets import TargetProfile, can_emulate, get_target, local_profile
from edgekit.toolkit.targets.profile import CPU_PROVIDER
from edgekit.toolkit.tune import device, fleet_groups, sources
from edgekit.toolkit.tune.explain import Point, fmt_ratio, measured_reason, profile_reason
from edgekit.toolkit.tune.gate import VariantInfo, apply_gate, recheck_memory
from edgekit.toolkit.tune.measure import (
    BASE_DURATION_S,
    QUICK_DURATION_S,
    LocalMeasurer,
    allowed_cpus,
)
from edgekit.toolkit.tune.objective import (
    TIE,
    LatencyBudget,
    check_objective,
    latency_of,
    meets_budget,
    parse_latency_budget,
    score,
)
from edgekit.toolkit.tune.race import RaceConfig
from edgekit.toolkit.tune.search import Budget, SearchResult, Trial, search
from edgekit.toolkit.tune.space import (
    DEFAULT_GRAPH_LEVELS,
    Candidate,
    SessionOptions,
    candidate_space,
)
from edgekit.toolkit.tune.variants import matches

THROUGHPUT_BATCH = 32
QUICK_GRAPH_LEVELS = ("basic", "all")


@dataclass
class TuneRequest:
    bundle_dir: Path
    target: str = "local"
    objective: str = "latency"
    latency_budget: str | None = None
    max_drop: float | None = 0.01
    max_trials: int | None = None
    time_budget_s: float | None = None
    targets_dir: Path | None = None
    from_fleet: Path | str | None = None  # a fleet SQLite file or a postgresql:// URL
    create_missing: bool = True
    quick: bool = False
    graph_levels: tuple[str, ...] | None = None
    base_duration_s: float | None = None
    exhaustive_limit: int | None = None
    race: RaceConfig | None = field(default_factory=RaceConfig)  # None: choose from the search
    write: bool = True
    command: str = "edgekit tune"


@dataclass
class TuneResult:
    target: TargetProfile
    mode: str  # "measured", "emulated", "device", "profile"
    measured_on: str | None
    objective: str
    budget: LatencyBudget | None
    variants: dict[str, VariantInfo]
    points: list[Point]
    front: list[Point]
    selected: Point
    reason: str
    budget_met: bool | None
    search: SearchResult | None = None
    notes: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)  # --from-fleet: per hardware group

    @property
    def interrupted(self) -> bool:
        """Ctrl-C stopped the search: the result stands on what was measured before it and
        is not recorded in the manifest."""
        return bool(self.search and self.search.interrupted)

    def selection_record(self) -> TuneDecision:
        """What goes into manifest["selection"][target]; the agent reads the first five keys."""
        c = self.selected.candidate
        rec: TuneDecision = {
            "variant": c.variant,
            "provider": c.provider,
            "session_options": cast(SessionOptionsRecord, c.options.to_manifest()),
            "reason": self.reason,
            "measured_on": self.measured_on,
            "mode": self.mode,
            "objective": self.objective,
            "latency_budget": str(self.budget) if self.budget else None,
            "budget_met": self.budget_met,
            "max_drop": None,
            "metrics": self.selected.to_dict(self.budget),
            "front": [p.to_dict(self.budget) for p in self.front],
            "search": self.search_summary(),
            "notes": self.notes,
        }
        if self.groups:
            rec["groups"] = self.groups
        rec["tuned_at"] = manifest_io.utc_now()
        return rec

    def search_summary(self) -> dict[str, Any] | None:
        s = self.search
        if s is None:
            return None
        return {
            "strategy": s.strategy,
            "space": s.space_size,
            "trials": s.n_trials,
            "rounds": s.rounds,
            "stopped": s.stopped,
            "race": s.race,
            "elapsed_s": round(s.elapsed_s, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": not self.interrupted,
            "target": self.target.name,
            "mode": self.mode,
            "measured_on": self.measured_on,
            "objective": self.objective,
            "latency_budget": str(self.budget) if self.budget else None,
            "budget_met": self.budget_met,
            "selection": {
                **self.selected.candidate.to_dict(),
                "reason": self.reason,
                "measured_on": self.measured_on,
            },
            "selected": self.selected.to_dict(self.budget),
            "front": [p.to_dict(self.budget) for p in self.front],
            "variants": {n: i.to_dict() for n, i in self.variants.items()},
            "candidates": [p.to_dict(self.budget) for p in self.points],
            "search": self.search_summary(),
            "notes": self.notes,
            "groups": self.groups,
            "created_variants": self.created,
        }


def _host() -> str:
    local = local_profile()
    return f"this machine ({local.data['cpu']['model']}, {platform.machine()})"


def _providers_for(
    target: TargetProfile, bundle: Bundle, names: list[str], usable: list[str]
) -> dict[str, list[str]]:
    """Each variant's providers: those of the first recipe it matches, else all usable ones."""
    out = {}
    for name in names:
        recipe = next((r for r in target.prefer if matches(r, name, bundle.variant(name))), None)
        allowed = target.providers_for(recipe) if recipe else target.providers
        out[name] = [p for p in allowed if p in usable] or usable
    return out


def _prior_order(
    space: list[Candidate], target: TargetProfile, infos: dict[str, VariantInfo]
) -> list[Candidate]:
    """Search order, most promising first, interleaving variants: every variant's likeliest
    options (full graph optimisation, more threads, sequential) come before any variant's
    second-likeliest, so a trial budget that cuts the tail still measures every variant,
    fp32 (the reference) included. Within a tier, the target's preferred kinds go first."""
    level_order = {"all": 0, "extended": 1, "basic": 2, "disable": 3}

    def option_key(c: Candidate) -> Any:
        o = c.options
        return (
            level_order[o.graph_optimization_level],
            -o.intra_op_num_threads,
            o.execution_mode != "sequential",
            o.inter_op_num_threads,
        )

    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in space:
        groups.setdefault((c.variant, c.provider), []).append(c)
    ranked = []
    for (variant, _), members in groups.items():
        members.sort(key=option_key)
        pref = target.preference_rank(infos[variant].kind)
        ranked += [((i, pref, variant), c) for i, c in enumerate(members)]
    ranked.sort(key=lambda x: x[0])
    return [c for _, c in ranked]


def _top_effort(points: list[Point]) -> list[Point]:
    """The points measured at the highest effort reached: the only ones compared directly."""
    measured = [p for p in points if p.measured]
    if not measured:
        return []
    top = max(p.figures.get("effort", 1.0) for p in measured)
    return [p for p in measured if p.figures.get("effort", 1.0) >= top - 1e-9]


def choose(
    points: list[Point],
    objective: str,
    budget: LatencyBudget | None,
    avoid: frozenset[str] = frozenset(),
) -> tuple[Point, bool | None]:
    """The best measured point for the objective; ties (within TIE) go to accuracy, then to a
    kind the target's profile does not advise against (`avoid`: a 1 % win of FP16 on a CPU
    without FP16 arithmetic is noise), then fewer CPUs, then the smaller file.
    Returns (point, budget met?)."""
    measured = [p for p in _top_effort(points) if p.info.passed]
    ranked = sorted(measured, key=lambda p: score(objective, p.figures, p.info.bytes, budget))
    best = ranked[0]
    best_score = score(objective, best.figures, best.info.bytes, budget)

    def close(p: Point) -> bool:
        s = score(objective, p.figures, p.info.bytes, budget)
        if s[0] != best_score[0] or (objective == "size" and s[1] != best_score[1]):
            return False
        a, b = abs(s[-1]), abs(best_score[-1])
        return abs(a - b) <= TIE * max(a, b)

    tied = [p for p in ranked if close(p)]
    pick = min(
        tied,
        key=lambda p: (
            p.info.drop or 0.0,
            p.info.kind in avoid,
            p.candidate.options.cpus_needed,
            p.info.bytes,
            score(objective, p.figures, p.info.bytes, budget),
        ),
    )
    return pick, (meets_budget(pick.figures, budget) if budget else None)


def tune(
    request: TuneRequest, progress: Callable[[Trial, int, int], None] | None = None
) -> TuneResult:
    """Tune and record; a dry run (``write=False``) works on a scratch copy of the bundle, so
    the variants it would create and the evaluations it would add leave the bundle untouched."""
    if request.write:
        return _tune(request, progress)
    Bundle.open(request.bundle_dir)  # a clear error for a folder that is not a bundle
    with tempfile.TemporaryDirectory(prefix="edgekit-tune-dry-") as tmp:
        scratch = Path(tmp) / Path(request.bundle_dir).name
        shutil.copytree(request.bundle_dir, scratch, symlinks=True)
        result = _tune(replace(request, bundle_dir=scratch), progress)
    if result.created:
        result.notes.append(
            f"dry run: {', '.join(result.created)} would be created; made in a scratch copy "
            "and discarded, the bundle was not changed"
        )
    return result


def _tune(
    request: TuneRequest, progress: Callable[[Trial, int, int], None] | None = None
) -> TuneResult:
    objective = check_objective(request.objective)
    budget = parse_latency_budget(request.latency_budget)
    if request.max_drop is not None and request.max_drop < 0:
        raise BadInputError("`max_drop` must be >= 0", hint="e.g. `max_drop` 0.01 (one point)")
    search_budget = Budget(request.max_trials, request.time_budget_s)
    target = get_target(request.target, request.targets_dir)
    notes: list[str] = []
    bundle, infos, created = _gated_variants(request, target, notes)
    fleet = _fleet_groups(request, target, infos, notes)
    primary = _choose_per_group(fleet, infos, objective, budget, target) if fleet else None
    mode, points, measured_on, search_result = _points(
        request, bundle, target, infos, objective, budget, search_budget, progress, notes, fleet,
        primary,
    )  # fmt: skip
    _recheck_memory(infos, points, target)
    alive = [p for p in points if p.info.passed]
    if not alive:
        raise CheckFailedError(
            f"no candidate for {target.name} fits its memory: "
            + "; ".join(f"{n}: {i.pruned}" for n, i in infos.items() if i.pruned),
            hint="choose a smaller variant or a target with more memory",
        )
    if mode == "profile":
        selected, reason, front = _select_by_profile(
            bundle, target, infos, alive, objective, budget, notes
        )
        budget_met = None
    else:
        selected, budget_met = choose(alive, objective, budget, frozenset(target.avoid))
        where = "on this CPU" if mode in ("measured", "emulated") else f"on {measured_on}"
        if primary is not None:
            reason = _primary_reason(fleet, primary, notes)
        else:
            reason = measured_reason(selected, alive, infos, objective, budget, where)
        if selected.figures.get("settings") == "extrapolated":
            notes.append(
                f"the device records do not say how many threads they ran: "
                f"{selected.candidate.options.intra_op_num_threads} thread(s) is the "
                f"{target.name} profile's core count, an extrapolation, not a measured setting"
            )
        front = pareto_front(_top_effort(alive), lambda p: p.axes(budget))
    result = TuneResult(
        target=target,
        mode=mode,
        measured_on=measured_on,
        objective=objective,
        budget=budget,
        variants=infos,
        points=points,
        front=_compact_front(front, budget),
        selected=selected,
        reason=reason,
        budget_met=budget_met,
        search=search_result,
        notes=notes,
        created=created,
        groups=[g.to_dict() for g in fleet],
    )
    if result.interrupted:
        result.notes.append(
            f"interrupted: chosen from the {len(points)} candidate(s) measured before Ctrl-C; "
            + manifest_left(result.notes)
        )
        return result
    if budget_met is False:
        assert budget is not None  # only a budget can be missed
        raise CheckFailedError(
            f"no candidate meets `latency_budget` {budget} on {target.name}: the best, "
            f"{selected.candidate.describe()}, has {budget.percentile} "
            f"{selected.figures['latency_ms'][budget.percentile]:.3g} ms",
            hint="relax the budget, allow a larger `max_drop`, or choose a faster target",
            details={"result": result.to_dict()},
        )
    if request.write:
        record(bundle, result, request)
    return result


def _gated_variants(
    request: TuneRequest, target: TargetProfile, notes: list[str]
) -> tuple[Bundle, dict[str, VariantInfo], list[str]]:
    """The bundle after the variants the target prefers were made and evaluated (when asked),
    and the accuracy and memory gate over its variants; an error when none passes."""
    bundle = Bundle.open(request.bundle_dir)
    bundle.verify()
    created = sources.ensure_preferred(bundle, target, notes) if request.create_missing else []
    bundle = Bundle.open(request.bundle_dir)
    sources.evaluate_missing(bundle, request.max_drop, notes)
    bundle = Bundle.open(request.bundle_dir)
    infos = apply_gate(bundle.variants, request.max_drop, target.model_memory_budget)
    sources.prune_duplicates(bundle, infos, notes)
    if not any(i.passed for i in infos.values()):
        raise CheckFailedError(
            f"no variant of {bundle.manifest['name']} passes the gate for {target.name}: "
            + "; ".join(f"{n}: {i.pruned}" for n, i in infos.items()),
            hint="raise `max_drop`, or re-quantize with other settings",
        )
    return bundle, infos, created


def _points(
    request: TuneRequest,
    bundle: Bundle,
    target: TargetProfile,
    infos: dict[str, VariantInfo],
    objective: str,
    budget: LatencyBudget | None,
    search_budget: Budget,
    progress: Callable[[Trial, int, int], None] | None,
    notes: list[str],
    fleet: list[fleet_groups.DeviceGroup],
    primary: fleet_groups.DeviceGroup | None,
) -> tuple[str, list[Point], str | None, Any]:
    """(mode, points, measured on, search result): the device's own figures when there are
    any, else measured here (or on an emulated stand-in), else ranked by the profile."""
    local = local_profile()
    emulation = can_emulate(target, local)
    if request.from_fleet is not None:
        device_points = primary.points if primary else []
    else:
        device_points = device.points(bundle, target, infos)
    if request.from_fleet is not None and not device_points:
        notes.append(
            f"{request.from_fleet} holds no usable bench results from {target.name} devices "
            "for this bundle's variants"
        )
    if device_points:  # the real device beats any stand-in
        if primary is not None:
            measured_on = f"{primary.label} ({', '.join(primary.devices)})"
            notes.append(
                f"figures measured on {sum(len(g.devices) for g in fleet)} device(s) in "
                f"{len(fleet)} hardware group(s), not on this machine: "
                + "; ".join(f"{g.label} ({', '.join(g.devices)})" for g in fleet)
            )
        else:
            measured_on = ", ".join(sorted({p.source for p in device_points}))
            notes.append(f"figures measured on the device ({measured_on}), not on this machine")
        return "device", device_points, measured_on, None
    if emulation.possible:
        mode = "measured" if target.is_local else "emulated"
        points, search_result, measured_on = _measure_here(
            request,
            bundle,
            target,
            local,
            emulation,
            infos,
            objective,
            budget,
            search_budget,
            progress,
        )
        notes.extend(emulation.limits)
        if not target.is_local:
            notes.append(
                f"measured on {measured_on} as a stand-in for {target.name}: the same "
                f"instruction-set tier, threads capped at {emulation.max_threads}"
            )
        return mode, points, measured_on, search_result
    notes.append(
        f"nothing was measured on {target.name}: "
        + "; ".join(emulation.reasons)
        + ". Ranked by the profile's quantization preferences."
    )
    return "profile", _rank_by_profile(bundle, target, infos), None, None


def _recheck_memory(
    infos: dict[str, VariantInfo], points: list[Point], target: TargetProfile
) -> None:
    """Replace each variant's estimated memory with the most any of its points measured."""
    for name, info in infos.items():
        mems = [
            p.metrics.get("memory_bytes")
            for p in points
            if p.metrics and p.candidate.variant == name
        ]
        found = [m for m in mems if m]
        if found:
            recheck_memory(info, max(found), target.model_memory_budget)


def _select_by_profile(
    bundle: Bundle,
    target: TargetProfile,
    infos: dict[str, VariantInfo],
    alive: list[Point],
    objective: str,
    budget: LatencyBudget | None,
    notes: list[str],
) -> tuple[Point, str, list[Point]]:
    """Sizes are known without measuring: --objective size picks the smallest (ties in the
    profile's order); otherwise the profile's first choice. Returns (selected, reason, front)."""
    selected = min(alive, key=lambda p: p.info.bytes) if objective == "size" else alive[0]
    recipe = next(
        (
            r
            for r in target.prefer
            if matches(r, selected.candidate.variant, bundle.variant(selected.candidate.variant))
        ),
        None,
    )
    reason = profile_reason(
        selected, infos, target.name, recipe["why"] if recipe else None, objective
    )
    caveat = _local_caveat(bundle, selected.candidate.variant)
    if caveat:
        notes.append(caveat)
    front = pareto_front(alive, lambda p: p.axes(), {"accuracy": +1, "bytes": -1})
    if budget is not None:
        notes.append(f"the latency budget {budget} was not checked: nothing was measured")
    if objective == "throughput":
        notes.append("--objective throughput needs measurements: ranked by the profile")
    return selected, reason, front


UNMEASURED_ON_DEVICES = (
    "not measured on these devices: not shipped to them (package the candidates with "
    "`edgekit package --bench-variants all`, then bench on the devices)"
)


def _fleet_groups(
    request: TuneRequest, target: TargetProfile, infos: dict[str, VariantInfo], notes: list[str]
) -> list[fleet_groups.DeviceGroup]:
    """--from-fleet: the devices' figures per hardware group. Empty without --from-fleet."""
    if request.from_fleet is None:
        return []
    bench = device.fleet_bench(request.from_fleet, target)
    notes.extend(bench.notes)
    raw = device.points_from_records(bench.records, target, infos)
    return fleet_groups.groups(raw, bench.devices) if raw else []


def _choose_per_group(
    fleet: list[fleet_groups.DeviceGroup],
    infos: dict[str, VariantInfo],
    objective: str,
    budget: LatencyBudget | None,
    target: TargetProfile,
) -> fleet_groups.DeviceGroup | None:
    """Each group's own choice and reason (naming the group, its devices, and which variants
    were measured where). Returns the group whose choice is recorded for the target: the one
    with the most devices; of equals, the one whose choice is slowest (the binding one)."""
    avoid = frozenset(target.avoid)
    for g in fleet:
        alive = [p for p in g.points if p.info.passed]
        if not alive:
            g.reason = "no candidate measured here passes the gate"
            continue
        g.selected, _ = choose(alive, objective, budget, avoid)
        devices = ", ".join(g.devices)
        where = f"on {g.label} ({devices}), judged on the slowest device"
        g.reason = (
            f"group {g.label} ({devices}): "
            + measured_reason(
                g.selected, alive, infos, objective, budget, where, UNMEASURED_ON_DEVICES
            )
            + f". Measured: {g.measured_text()}"
        )
    chosen = [g for g in fleet if g.selected is not None]
    if not chosen:
        return None

    def rank(g: fleet_groups.DeviceGroup) -> tuple[int, float]:
        assert g.selected is not None  # only the groups that chose are ranked
        return len(g.devices), latency_of(g.selected.figures, budget)

    return max(chosen, key=rank)


def _primary_reason(
    fleet: list[fleet_groups.DeviceGroup], primary: fleet_groups.DeviceGroup, notes: list[str]
) -> str:
    """The recorded selection's reason; the other groups' choices go to the notes."""
    if len(fleet) == 1:
        return primary.reason
    others = [g for g in fleet if g is not primary]
    for g in others:
        if g.selected is not None:
            assert primary.selected is not None  # the recorded group is one that chose
            same = g.selected.candidate.key == primary.selected.candidate.key
            notes.append(
                f"group {g.label} ({', '.join(g.devices)}) would choose "
                f"{g.selected.candidate.describe()}"
                + (" too" if same else ": package that for them as its own deployment")
            )
    return (
        f"recorded for the largest of {len(fleet)} hardware groups "
        f"({len(primary.devices)} of {sum(len(g.devices) for g in fleet)} devices); "
        "every group's own choice is under `groups`. " + primary.reason
    )


def _local_caveat(bundle: Bundle, variant: str) -> str | None:
    """When this machine measured the profile's choice slower than fp32, say so: a hint that
    the device may not gain either (small models often do not), never a substitute for it."""
    front = ((bundle.manifest.get("selection") or {}).get("local") or {}).get("front") or []
    best: dict[str, float] = {}
    for p in front:
        lat = (p.get("latency_ms") or {}).get("p50")
        if lat is not None:
            best[p["variant"]] = min(lat, best.get(p["variant"], float("inf")))
    if variant == "fp32" or variant not in best or "fp32" not in best:
        return None
    ratio = best[variant] / best["fp32"]
    if ratio <= 1.0:
        return None
    return (
        f"on this machine ({platform.machine()}) {variant} ran {fmt_ratio(ratio)}× slower than fp32 "
        "(tune --target local): small models often gain nothing from INT8, so measure on the "
        "device before relying on this ranking"
    )


def _compact_front(front: list[Point], budget: LatencyBudget | None) -> list[Point]:
    """One point per (accuracy, size) value pair is enough for a variant: its fastest."""
    best: dict[tuple[str, str], Point] = {}
    for p in front:
        key = (p.candidate.variant, p.candidate.provider)
        cur = best.get(key)
        if cur is None or (
            p.measured and latency_of(p.figures, budget) < latency_of(cur.figures, budget)
        ):
            best[key] = p
    return sorted(best.values(), key=lambda p: p.axes(budget)["latency_ms"])


@dataclass
class MeasurementPlan:
    """What tune measures on this machine and how: the ordered space and the measurer."""

    space: list[Candidate]
    measurer: LocalMeasurer
    pin: list[int] | None


def measurement_plan(
    request: TuneRequest,
    bundle: Bundle,
    target: TargetProfile,
    local: TargetProfile,
    emulation: Any,
    infos: dict[str, VariantInfo],
    objective: str,
) -> MeasurementPlan:
    usable = [p for p in target.providers if p in local.providers] or ["CPUExecutionProvider"]
    names = [n for n, i in infos.items() if i.passed]
    levels = request.graph_levels or (QUICK_GRAPH_LEVELS if request.quick else DEFAULT_GRAPH_LEVELS)
    space = candidate_space(
        names,
        usable,
        emulation.max_threads,
        graph_levels=tuple(levels),
        providers_for=_providers_for(target, bundle, names, usable),
    )
    space = _prior_order(space, target, infos)
    cpus = allowed_cpus()
    pin = cpus[: emulation.max_threads] if len(cpus) > emulation.max_threads else None
    batch = THROUGHPUT_BATCH if objective == "throughput" and _dynamic_batch(bundle) else 1
    measurer = LocalMeasurer(
        bundle,
        cpus=pin,
        base_duration_s=request.base_duration_s
        or (QUICK_DURATION_S if request.quick else BASE_DURATION_S),
        batch=batch,
    )
    return MeasurementPlan(space, measurer, pin)


def plan_here(request: TuneRequest) -> tuple[MeasurementPlan, dict[str, VariantInfo]]:
    """The plan tune would follow for this request on this machine, without measuring or
    creating anything: for references that must cover exactly tune's space with tune's
    measurer (benchmarks/tune_quality.py's exhaustive search)."""
    objective = check_objective(request.objective)
    target = get_target(request.target, request.targets_dir)
    bundle = Bundle.open(request.bundle_dir)
    infos = apply_gate(bundle.variants, request.max_drop, target.model_memory_budget)
    local = local_profile()
    emulation = can_emulate(target, local)
    if not emulation.possible:
        raise BadInputError(
            f"{target.name} cannot be measured on this machine: " + "; ".join(emulation.reasons)
        )
    return measurement_plan(request, bundle, target, local, emulation, infos, objective), infos


def _measure_here(
    request: TuneRequest,
    bundle: Bundle,
    target: TargetProfile,
    local: TargetProfile,
    emulation: Any,
    infos: dict[str, VariantInfo],
    objective: str,
    budget: LatencyBudget | None,
    search_budget: Budget,
    progress: Callable[[Trial, int, int], None] | None,
) -> tuple[list[Point], SearchResult, str]:
    plan = measurement_plan(request, bundle, target, local, emulation, infos, objective)
    kwargs: dict[str, Any] = {}
    if request.exhaustive_limit is not None:
        kwargs["exhaustive_limit"] = request.exhaustive_limit
    reference = "fp32" if any(c.variant == "fp32" for c in plan.space) else None
    # Sessions that quantize/evaluate left in reference cycles are freed now, once, rather
    # than by a collection in the middle of a timed window.
    gc.collect()
    result = search(
        plan.space,
        plan.measurer,
        lambda t: score(objective, t.metrics, infos[t.candidate.variant].bytes, budget),
        search_budget,
        on_trial=progress,
        race_config=request.race,
        reference_variant=reference,
        **kwargs,
    )
    source = "this machine" if target.is_local else "emulated"
    points = [
        Point(t.candidate, infos[t.candidate.variant], {**t.metrics, "effort": t.effort}, source)
        for t in result.trials.values()
    ]
    if not points and result.interrupted:
        raise KeyboardInterrupt  # nothing measured: nothing to keep
    if not points:
        raise CheckFailedError(
            "the search budget ran out before a single candidate was measured",
            hint="raise `time_budget` or `max_trials`",
        )
    where = _host()
    if plan.pin:
        where += f", pinned to {len(plan.pin)} CPU(s)"
    return points, result, where


def _dynamic_batch(bundle: Bundle) -> bool:
    for t in bundle.signature["inputs"]:
        shape = t.get("shape") or []
        if not shape or isinstance(shape[0], int) and shape[0] > 0:
            return False
    return True


def _fallback_provider(target: TargetProfile) -> str:
    """Where a variant that matches none of the profile's recipes would run: the CPU."""
    return CPU_PROVIDER if CPU_PROVIDER in target.providers else target.providers[-1]


def _unmatched_rank(target: TargetProfile, kind: str, provider: str) -> int:
    """Rank of a variant whose settings match no recipe: that of the first recipe of its kind
    meant for the provider it falls back to; after every recipe when none is (an int8 model
    that TensorRT cannot take must not outrank the FP16 that runs on the GPU)."""
    for i, recipe in enumerate(target.prefer):
        if recipe["kind"] == kind and provider in target.providers_for(recipe):
            return i
    return len(target.prefer) + target.preference_rank(kind)


def _rank_by_profile(
    bundle: Bundle, target: TargetProfile, infos: dict[str, VariantInfo]
) -> list[Point]:
    """Unmeasured points, in the profile's order of preference (the first is the choice)."""
    options = SessionOptions(target.cores, 1, "sequential", "all")
    ranked: list[tuple[Any, Point]] = []
    for name, info in infos.items():
        v = bundle.variant(name)
        for i, recipe in enumerate(target.prefer):
            if matches(recipe, name, v):
                provider = target.providers_for(recipe)[0]
                ranked.append(((i, 0, name), Point(Candidate(name, provider, options), info)))
                break
        else:
            # not what the profile asks for (e.g. U8S8 on an S8S8 target): on the CPU
            provider = _fallback_provider(target)
            rank = _unmatched_rank(target, info.kind, provider)
            ranked.append(((rank, 1, name), Point(Candidate(name, provider, options), info)))
    ranked.sort(key=lambda x: x[0])
    return [p for _, p in ranked]


def record(bundle: Bundle, result: TuneResult, request: TuneRequest) -> None:
    """Write the selection for this target into the manifest (validated, atomic)."""
    rec = result.selection_record()
    rec["max_drop"] = request.max_drop
    c = result.selected.candidate
    lab_record = None
    if result.mode in ("measured", "emulated") and c.provider == CPU_PROVIDER:
        # the lab figure a device's bench reply is compared with (fleet lab_regression):
        # the selection as deployed, on the harness the device runs
        lab_record = lab.measure_lab_record(
            bundle,
            c.variant,
            c.options.intra_op_num_threads,
            lab.LAB_RECORD_S / 3 if request.quick else lab.LAB_RECORD_S,
        )
    with Bundle.updating(bundle.path) as fresh:  # a locked read-modify-write
        fresh.manifest.setdefault("selection", {})[result.target.name] = rec
        if lab_record is not None:
            lab.put_lab_record(
                fresh.manifest, c.variant, result.target.name, lab_record, str(result.measured_on)
            )
        manifest_io.append_history(
            fresh.manifest,
            "tune",
            request.command,
            target=result.target.name,
            variant=result.selected.candidate.variant,
            mode=result.mode,
        )


def manifest_left(notes: list[str]) -> str:
    """What an interrupted tune left in the manifest: nothing, or the variants it made and the
    evaluations it ran before the search (they stand; only the selection is not recorded)."""
    kept = [n for n in notes if n.startswith(("created ", "evaluated "))]
    if not kept:
        return "the manifest was not changed"
    return f"the selection was not recorded (kept from before the search: {'; '.join(kept)})"
