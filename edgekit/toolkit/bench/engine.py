"""The benchmark run: every selected variant × provider × threads × batch through one scenario,
plus the native baseline, each configuration on a fresh session."""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.benchmark import TimingConfig
from edge_agent.benchmark.measures import SessionTiming
from edge_agent.benchmark.record import build_record
from edge_agent.benchmark.resources import ResourceMeter
from edge_agent.clock import utc_now
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError, BundleError, EdgekitError
from edge_agent.hardware import usable_cpus
from edgekit.toolkit.bench import loadgen
from edgekit.toolkit.bench.cost import Price, cost_figures
from edgekit.toolkit.bench.environment import environment
from edgekit.toolkit.bench.loadgen import SCENARIOS, LatencyBound, ScenarioOutcome
from edgekit.toolkit.bench.native import NativeSUT, NativeUnavailable, load_native
from edgekit.toolkit.bench.providers import Skipped, resolve, short_name
from edgekit.toolkit.bench.sut import onnx_sut

RUN_VERSION = 1
DEFAULT_TARGET = "local"
TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class BenchPlan:
    variants: list[str] | None = None  # None: every variant not rejected
    include_rejected: bool = False
    providers: list[str] | None = None  # None: cpu
    threads: list[int] = field(default_factory=lambda: [1])
    batches: list[int] | None = None  # None: the scenario's default
    scenario: str = "single-stream"
    timing: TimingConfig = field(default_factory=TimingConfig)
    qps: float | None = None
    latency_bound: LatencyBound | None = None
    workers: int | None = None
    native: bool = True
    trust_code: bool = False  # let the native baseline run the code the lineage names
    seed: int = 0
    sets: int = 8
    price: Price | None = None
    predictions_per_user: float | None = None
    target: str = DEFAULT_TARGET

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise BadInputError(
                f"unknown scenario {self.scenario!r}", hint="choose one of " + ", ".join(SCENARIOS)
            )
        if self.scenario == "server" and self.qps is None and self.latency_bound is None:
            raise BadInputError(
                "the server scenario needs a load",
                hint="give `qps` Q (queries/s), or `latency_bound` p99=10ms to search for the highest QPS",
            )
        if not TARGET_NAME.match(self.target or ""):
            raise BadInputError(
                f"`target` {self.target!r} is not a usable target name",
                hint="letters, digits, '.', '_' or '-', e.g. local, rpi4, c7g.large",
            )
        if self.scenario != "server":
            given = [
                flag
                for flag, value in (
                    ("`qps`", self.qps),
                    ("`latency_bound`", self.latency_bound),
                    ("`workers`", self.workers),
                )
                if value is not None
            ]
            if given:
                raise BadInputError(
                    f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to the server "
                    f"scenario, not {self.scenario}",
                    hint="add `scenario` server",
                )
        if self.qps is not None and not (math.isfinite(self.qps) and self.qps > 0):
            raise BadInputError(f"`qps` must be a number > 0, got {self.qps}")
        if self.workers is not None and self.workers < 1:
            raise BadInputError(f"`workers` must be >= 1, got {self.workers}")
        if any(t < 0 for t in self.threads) or not self.threads:
            raise BadInputError("`threads` takes integers >= 0 (0 = onnxruntime's default)")
        if self.batches is not None and (not self.batches or any(b < 1 for b in self.batches)):
            raise BadInputError("`batch` takes integers >= 1")
        if self.predictions_per_user is not None:
            if not (math.isfinite(self.predictions_per_user) and self.predictions_per_user > 0):
                raise BadInputError(
                    f"`predictions_per_user` must be a number > 0, got {self.predictions_per_user}"
                )
            if self.price is None:
                raise BadInputError(
                    "`predictions_per_user` needs a price to turn into a cost per user",
                    hint="add `price_per_hour` X or `instance` NAME",
                )

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.batches or SCENARIOS[self.scenario].default_batches)

    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "variants": self.variants,
            "include_rejected": self.include_rejected,
            "providers": self.providers or ["cpu"],
            "threads": self.threads,
            "batches": self.batch_sizes,
            "timing": self.timing.describe(),
            "stability": vars(self.timing.stability),
            "qps": self.qps,
            "latency_bound": str(self.latency_bound) if self.latency_bound else None,
            "workers": self.workers,
            "native": self.native,
            "trust_code": self.trust_code,
            "seed": self.seed,
            "input_sets": self.sets,
            "price": vars(self.price) if self.price else None,
            "predictions_per_user": self.predictions_per_user,
            "target": self.target,
        }


class Progress:
    """What the engine reports while it runs; the CLI draws it with rich. No-op by default."""

    def start(self, total: int) -> None: ...

    def begin(self, label: str) -> None: ...

    def update(self, fraction: float) -> None: ...

    def end(
        self, label: str, record: dict[str, Any] | None, skipped: str | None = None
    ) -> None: ...


@dataclass
class BenchRun:
    bundle_name: str
    bundle_path: str
    plan: dict[str, Any]
    environment: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    created: str = field(default_factory=utc_now)
    wall_s: float = 0.0
    planned: int = 0  # configurations planned
    interrupted: str | None = None  # Ctrl-C: the configuration it stopped, not recorded

    @property
    def complete(self) -> bool:
        return self.interrupted is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "edgekit-bench",
            "schema_version": RUN_VERSION,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "planned_configurations": self.planned,
            "created": self.created,
            "bundle": {"name": self.bundle_name, "path": self.bundle_path},
            "scenario": self.plan["scenario"],
            "plan": self.plan,
            "environment": self.environment,
            "records": self.records,
            "skipped": self.skipped,
            "wall_s": self.wall_s,
        }


def select_variants(
    bundle: Bundle, names: list[str] | None, include_rejected: bool
) -> tuple[list[str], list[Skipped]]:
    """The variants to measure, in manifest order; rejected ones skipped unless asked for
    (--include-rejected, or named in --variant)."""
    named = names is not None and len(names) > 0 and not (len(names) == 1 and names[0] == "all")
    if named:
        assert names is not None  # named implies names
        unknown = [n for n in names if n not in bundle.variants]
        if unknown:
            raise BadInputError(
                f"bundle has no variant {', '.join(map(repr, unknown))}",
                hint="it has: " + ", ".join(bundle.variants) + " (or pass `variants` all)",
            )
        chosen = [n for n in bundle.variants if n in names]
    else:
        chosen = list(bundle.variants)
    keep, skipped = [], []
    for name in chosen:
        v = bundle.variants[name]
        if v.get("rejected") and not (include_rejected or named):
            reason = v.get("reject_reason") or "no reason recorded"
            skipped.append(
                Skipped(
                    name, f"rejected ({reason}); name it in --variant or pass --include-rejected"
                )
            )
        else:
            keep.append(name)
    return keep, skipped


ScenarioRunner = Callable[[BenchPlan, Any, Any, int, Callable[[float], None]], ScenarioOutcome]


def _server(plan: BenchPlan, sut: Any, queries: Any, batch: int, progress: Any) -> ScenarioOutcome:
    workers = plan.workers or max(2, usable_cpus())
    if plan.latency_bound is not None:
        return loadgen.search_qps(
            sut.run, queries, batch, plan.timing, plan.latency_bound,
            workers=workers, start_qps=plan.qps, seed=plan.seed, progress=progress,
        )  # fmt: skip
    assert plan.qps is not None  # BenchPlan.check: the server scenario has a qps or a bound
    return loadgen.server(
        sut.run, queries, batch, plan.timing, plan.qps, workers=workers, seed=plan.seed,
        progress=progress,
    )  # fmt: skip


RUNNERS: dict[str, ScenarioRunner] = {
    "single-stream": lambda plan, sut, q, b, p: loadgen.single_stream(
        sut.run, q, b, plan.timing, p
    ),
    "multi-stream": lambda plan, sut, q, b, p: loadgen.multi_stream(sut.run, q, b, plan.timing, p),
    "offline": lambda plan, sut, q, b, p: loadgen.offline(sut.run, q, b, plan.timing, p),
    "server": _server,
}


def _measure_config(
    plan: BenchPlan, make_sut: Callable[[], Any], batch: int, progress: Progress
) -> dict[str, Any]:
    meter = ResourceMeter().start()
    sut = make_sut()
    sets = sut.input_sets(batch)
    sut.cold_call(sets.feeds[0])
    limits = getattr(sut, "limits", None)
    with limits() if limits else contextlib.nullcontext():
        outcome = RUNNERS[plan.scenario](plan, sut, sets.feeds, batch, progress.update)
    copies = sut.copies(sets)
    resources = meter.stop()
    record = build_record(
        scenario=plan.scenario,
        system=sut.system,
        variant=sut.variant,
        provider=sut.provider,
        threads=sut.threads,
        batch=batch,
        measurement=outcome.measurement,
        session=SessionTiming(sut.create_s, sut.cold_first_s),
        resources=resources,
        inputs=sets,
        timing=plan.timing,
        model_bytes=sut.model_bytes,
        providers_in_use=sut.providers_in_use,
        scenario_result=outcome.scenario_result,
        samples_per_query=outcome.samples_per_query,
        copies=copies,
        notes=list(getattr(getattr(sut, "native", None), "notes", []) or []),
    )
    if outcome.headline:
        record["headline"] = outcome.headline
    record["headline"].setdefault(
        "better", "higher" if record["headline"]["unit"] != "ms" else "lower"
    )
    return record


Config = tuple[str, Callable[[], Any], int]


def run_bench(
    bundle_dir: str | Path, plan: BenchPlan, progress: Progress | None = None
) -> BenchRun:
    """Measure the bundle as planned. Configurations that cannot run are skipped with a reason."""
    progress = progress or Progress()
    t_start = time.perf_counter()
    bundle = Bundle.open(bundle_dir)
    variants, skipped = select_variants(bundle, plan.variants, plan.include_rejected)
    providers, skipped_providers = resolve(plan.providers)
    skipped += skipped_providers
    run = BenchRun(bundle.manifest["name"], str(bundle.path), plan.describe(), environment())
    if not providers:
        raise BadInputError(
            "none of the requested execution providers can run here",
            hint="; ".join(f"{s.what}: {s.reason}" for s in skipped_providers),
            details={"skipped": [s.as_dict() for s in skipped]},
        )
    try:
        samples = bundle.sample_inputs()
    except BundleError as exc:
        samples = None
        skipped.append(Skipped("samples", f"{exc.message}; inputs generated to the signature"))
    native = _native_configs(bundle, plan, samples, skipped)  # loaded first, as it was
    configs = _onnx_configs(bundle, plan, variants, providers, samples) + native
    _measure_all(run, plan, configs, skipped, progress)
    _annotate(run, plan)
    run.skipped = [s.as_dict() for s in skipped]
    run.wall_s = time.perf_counter() - t_start
    return run


def _onnx_configs(
    bundle: Bundle, plan: BenchPlan, variants: list[str], providers: list[str], samples: Any
) -> list[Config]:
    """One configuration per variant × provider × threads × batch, each opening a fresh
    onnxruntime session when it is measured."""
    inputs = bundle.signature["inputs"]
    configs: list[Config] = []
    for name in variants:
        path = bundle.verify_variant(name)
        for provider in providers:
            for threads in plan.threads:
                for batch in plan.batch_sizes:
                    label = f"{name} · {short_name(provider)} · {threads or 'default'} thr · batch {batch}"

                    def make(name=name, path=path, provider=provider, threads=threads) -> Any:
                        return onnx_sut(
                            provider, model=path, signature_inputs=inputs, variant=name,
                            threads=threads, samples=samples, sets=plan.sets, seed=plan.seed,
                        ).open()  # fmt: skip

                    configs.append((label, make, batch))
    return configs


def _native_configs(
    bundle: Bundle, plan: BenchPlan, samples: Any, skipped: list[Skipped]
) -> list[Config]:
    """The native baseline's configurations (threads × batch), when asked for and the source
    model can be rebuilt here; otherwise none, with the reason in `skipped`."""
    if not plan.native:
        return []
    t0 = time.perf_counter()
    try:
        native = load_native(bundle, trust_code=plan.trust_code)
        native_load_s = time.perf_counter() - t0
    except NativeUnavailable as exc:
        skipped.append(Skipped("native baseline", str(exc)))
        return []
    except Exception as exc:  # rebuilding someone's model may fail in many ways
        skipped.append(Skipped("native baseline", f"{type(exc).__name__}: {str(exc)[:300]}"))
        return []
    inputs = bundle.signature["inputs"]
    configs: list[Config] = []
    for threads in plan.threads:
        for batch in plan.batch_sizes:
            label = f"native {native.framework} · {threads or 'default'} thr · batch {batch}"

            def make_native(threads=threads) -> Any:
                return NativeSUT(
                    native, inputs, threads=threads, samples=samples, sets=plan.sets,
                    seed=plan.seed, create_s=native_load_s,
                )  # fmt: skip

            configs.append((label, make_native, batch))
    return configs


def _measure_all(
    run: BenchRun,
    plan: BenchPlan,
    configs: list[Config],
    skipped: list[Skipped],
    progress: Progress,
) -> None:
    """Measure each configuration into `run`; one that cannot run is skipped with its reason,
    and Ctrl-C keeps what was measured (the run says where it was interrupted)."""
    run.planned = len(configs)
    progress.start(len(configs))
    current = "the first configuration"
    try:
        for label, make_sut, batch in configs:
            current = label
            progress.begin(label)
            try:
                record = _measure_config(plan, make_sut, batch, progress)
            except EdgekitError:
                raise
            except Exception as exc:  # a configuration that cannot run is skipped, not fatal
                first = str(exc).splitlines()[0][:300] if str(exc) else ""
                reason = f"{type(exc).__name__}: {first}"
                skipped.append(Skipped(label, reason))
                progress.end(label, None, reason)
                continue
            run.records.append(record)
            progress.end(label, record)
    except KeyboardInterrupt:
        # Ctrl-C: the configurations measured so far are kept (the run says it is incomplete);
        # the one in progress is dropped
        run.interrupted = current


def config_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["scenario"],
        record["system"],
        record["variant"],
        record["provider"],
        record["threads"],
        record["batch"],
    )


def _annotate(run: BenchRun, plan: BenchPlan) -> None:
    """Cross-record figures: speed-up over native, offline's best batch, cost."""
    native = {
        (r["threads"], r["batch"]): r for r in run.records if r["system"].startswith("native:")
    }
    for r in run.records:
        base = native.get((r["threads"], r["batch"]))
        if base is not None and r is not base:
            r["vs_native"] = {
                "system": base["system"],
                "p50_speedup": base["latency_ms"]["p50"] / r["latency_ms"]["p50"]
                if r["latency_ms"]["p50"] > 0
                else None,
                "throughput_ratio": r["throughput"]["samples_per_s"]
                / base["throughput"]["samples_per_s"]
                if base["throughput"]["samples_per_s"] > 0
                else None,
            }
        if plan.price is not None:
            r["cost"] = cost_figures(
                r["throughput"]["samples_per_s"], plan.price, plan.predictions_per_user
            )
    if plan.scenario == "offline":
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for r in run.records:
            groups.setdefault((r["system"], r["variant"], r["provider"], r["threads"]), []).append(
                r
            )
        for group in groups.values():
            best = max(group, key=lambda r: r["throughput"]["samples_per_s"])
            for r in group:
                r["scenario_result"]["best_batch"] = best["batch"]
                r["scenario_result"]["is_best"] = r is best
