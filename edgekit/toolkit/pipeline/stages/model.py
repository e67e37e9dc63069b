"""Stages that work on the bundle: quantize, evaluate (the gate, and the version now deployed),
bench, tune. Each calls its package's API on the stage's own copy of the bundle."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import CheckFailedError, EdgekitError
from edgekit.toolkit.pipeline.keys import file_digest
from edgekit.toolkit.pipeline.spec import PipelineSpec
from edgekit.toolkit.pipeline.stages import Runtime, Stage, StageContext, register


def _command(ctx: StageContext, stage: str) -> str:
    return f"edgekit run {ctx.spec.path} (stage {stage})"


@dataclass
class QuantizeConfig:
    methods: list[str] = field(default_factory=lambda: ["auto"])
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> options
    allow_refusal: bool = True  # a method the model cannot take is recorded, not fatal


@register("quantize", 30)
class Quantize(Stage):
    Config = QuantizeConfig
    changes_bundle = True

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        calibration = spec.data("calibration")
        return {
            "options": asdict(self.cfg),
            "calibration": file_digest(calibration) if calibration else None,
            "target_column": spec.target_column,
        }

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle

        made, refused = {}, {}
        for method in self.cfg.methods:
            ctx.say(f"quantize {method}")
            try:
                result = quantize_bundle(
                    ctx.bundle,
                    QuantizeRequest(
                        method=method,
                        options=dict(self.cfg.options.get(method) or {}),
                        calibration=ctx.spec.data("calibration"),
                        target_column=ctx.spec.target_column,
                        replace=True,
                        command=_command(ctx, "quantize"),
                    ),
                ).as_dict()
            except EdgekitError as exc:
                if not self.cfg.allow_refusal:
                    raise
                refused[method] = exc.message
                continue
            made[method] = {
                "variant": result["variant"],
                "method": result["method"],
                "size_ratio": result["size_ratio"],
                "label_agreement": result["parity"].get("label_agreement"),
                "min_cosine": result["parity"].get("min_cosine"),
                "reasons": ((result.get("quantization") or {}).get("auto") or {}).get(
                    "reasons", []
                ),
            }
        return {"bundle": ctx.bundle, "variants": made, "refused": refused}


@dataclass
class EvaluateConfig:
    max_drop: float = 0.01
    metric: str | None = None
    min_value: float | None = None  # the FP32 model itself must reach this
    auto_exclude: int = 0
    compare_deployed: bool = False  # at least as good as the version on the devices
    tolerance: float = 0.0  # how much worse than the deployed version still counts as as good


def deployed_bundle(spec: PipelineSpec, runtime: Runtime) -> Path | None:
    """The bundle of the version the devices run now: given by the trigger, or the run store's
    last deployment of this pipeline's component."""
    if runtime.deployed_bundle is not None:
        return Path(runtime.deployed_bundle)
    component = (spec.stage_options("package") or {}).get("component")
    if runtime.store is None or not component:
        return None
    found = runtime.store.deployed(component)
    return Path(found["bundle"]) if found and found.get("bundle") else None


@register("evaluate", 35)
class Evaluate(Stage):
    Config = EvaluateConfig
    changes_bundle = True

    def inputs(self, spec: PipelineSpec, runtime: Runtime) -> dict[str, Any]:
        deployed = deployed_bundle(spec, runtime) if self.cfg.compare_deployed else None
        return {
            "options": asdict(self.cfg),
            "evaluation": file_digest(spec.required_data("evaluation")),
            "target_column": spec.target_column,
            "deployed": file_digest(deployed / "manifest.json")
            if deployed and deployed.is_dir()
            else None,
        }

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgekit.toolkit.evaluate import EvaluateRequest, evaluate_bundle
        from edgekit.toolkit.scoring.metrics import LOWER_IS_BETTER

        c: EvaluateConfig = self.cfg
        data = ctx.spec.required_data("evaluation")
        request = EvaluateRequest(
            data=data,
            target_column=ctx.spec.target_column,
            max_drop=c.max_drop,
            metric=c.metric,
            auto_exclude=c.auto_exclude,
            command=_command(ctx, "evaluate"),
        )
        report = evaluate_bundle(ctx.bundle, request)
        metric = report["metric"]
        lower = metric in LOWER_IS_BETTER
        values = {n: (r.get("metrics") or {}).get(metric) for n, r in report["variants"].items()}
        value = values.get("fp32")
        out: dict[str, Any] = {
            "bundle": ctx.bundle,
            "metric": metric,
            "values": values,
            "passed": report["passed"],
            "rejected": [n for n in report["quantized"] if n not in report["passed"]],
            "deployed": None,
            "report": report,  # what `edgekit evaluate --json` prints: the tables draw from it
        }
        if c.min_value is not None and (
            value is None or (value > c.min_value if lower else value < c.min_value)
        ):
            raise CheckFailedError(
                f"gate: {metric} of the model is {value}, "
                f"{'above the maximum' if lower else 'below the minimum'} {c.min_value}",
                hint="improve the model or change stages.evaluate.min_value",
            )
        if c.compare_deployed:
            out["deployed"] = self._against_deployed(ctx, request, metric, value, lower)
        ctx.say(
            f"{metric} {value}"
            + (f", {len(out['rejected'])} variant(s) rejected" if out["rejected"] else "")
        )
        return out

    def _against_deployed(
        self, ctx: StageContext, request: Any, metric: str, value: Any, lower: bool
    ) -> dict[str, Any] | None:
        """Score the deployed version on the same data (on a copy: its record stays as it was)."""
        from edgekit.toolkit.evaluate import EvaluateRequest, evaluate_bundle

        deployed = deployed_bundle(ctx.spec, ctx.runtime)
        if deployed is None or not (deployed / "manifest.json").is_file():
            ctx.say("no deployed version to compare with")
            return None
        copy = ctx.work / "deployed-copy"
        shutil.copytree(deployed, copy)
        try:
            report = evaluate_bundle(
                copy,
                EvaluateRequest(
                    data=request.data,
                    target_column=request.target_column,
                    metric=metric,
                    variants=["fp32"],
                    command=_command(ctx, "evaluate deployed"),
                ),
            )
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        old = (report["variants"]["fp32"].get("metrics") or {}).get(metric)
        tol = self.cfg.tolerance
        if value is None or old is None:
            better = False
        else:
            better = value <= old + tol if lower else value >= old - tol
        verdict = {
            "bundle": str(deployed),
            "metric": metric,
            "deployed": old,
            "new": value,
            "tolerance": tol,
            "at_least_as_good": better,
        }
        if not better:
            raise CheckFailedError(
                f"the new model is worse than the deployed one on {request.data.name}: "
                f"{metric} {value} vs {old} deployed (tolerance {tol:g})",
                hint="nothing was deployed; the devices keep the current version",
                details={"deployed": verdict},
            )
        ctx.say(f"deployed version: {metric} {old} → new {value}")
        return verdict


@dataclass
class BenchConfig:
    duration_s: float = 0.5
    batches: list[int] = field(default_factory=lambda: [1])
    target: str = "local"
    native: bool = False  # also time the source model in its own framework (the baseline)
    trust_code: bool = False  # the native baseline may import the model's factory module
    report: str | None = None  # a folder (beside the pipeline file) for report.html and results


@register("bench", 40)
class Bench(Stage):
    Config = BenchConfig
    changes_bundle = True

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edge_agent import owned
        from edge_agent.benchmark import TimingConfig
        from edge_agent.contracts.bundle import Bundle
        from edgekit.toolkit.bench.engine import BenchPlan, run_bench
        from edgekit.toolkit.bench.store import REPORT_KIND, save_to_manifest, write_results

        c: BenchConfig = self.cfg
        if c.report:  # a refused report folder stops the stage before it measures anything
            owned.check_replace(
                ctx.spec.resolve(c.report),
                [REPORT_KIND],
                [ctx.bundle],
                option="stages.bench.report",
            )
        plan = BenchPlan(
            variants=None,
            batches=c.batches,
            timing=TimingConfig(duration_s=c.duration_s, warmup_iterations=5),
            native=c.native,
            trust_code=c.trust_code,
        )
        run = run_bench(ctx.bundle, plan)
        saved = save_to_manifest(run, c.target, command=_command(ctx, "bench"))
        p50 = {
            f"{r['variant'] if r['system'] == 'onnxruntime' else r['system']}/b{r['batch']}": r[
                "latency_ms"
            ]["p50"]
            for r in run.records
        }
        ctx.say(", ".join(f"{k} p50 {v:.3f} ms" for k, v in p50.items()))
        out: dict[str, Any] = {
            "bundle": ctx.bundle,
            "target": c.target,
            "variants": saved,
            "p50_ms": p50,
            "configurations": len(run.records),
            "skipped": list(run.skipped),
            "run": run.to_dict(),  # what `edgekit bench --json` prints: the table draws from it
        }
        if c.report:
            # outside the cache entry, like `edgekit bench -o`: the user's report folder
            paths = write_results(run, ctx.spec.resolve(c.report), Bundle.open(ctx.bundle).manifest)
            out.update(report=str(paths["html"]), results=str(paths["json"]))
        return out


@dataclass
class TuneConfig:
    targets: list[str] = field(default_factory=lambda: ["local"])
    objective: str = "latency"
    max_drop: float = 0.01
    max_trials: int | None = None
    quick: bool = True


@register("tune", 50)
class Tune(Stage):
    Config = TuneConfig
    changes_bundle = True

    def run(self, ctx: StageContext) -> dict[str, Any]:
        from edgekit.toolkit.present.tune import front_doc
        from edgekit.toolkit.tune.tuner import TuneRequest, tune

        c: TuneConfig = self.cfg
        selection = {}
        for target in c.targets:
            result = tune(
                TuneRequest(
                    ctx.bundle,
                    target,
                    objective=c.objective,
                    max_drop=c.max_drop,
                    max_trials=c.max_trials,
                    quick=c.quick,
                    command=_command(ctx, "tune"),
                )
            )
            sel = result.selected.candidate
            selection[target] = {
                "variant": sel.variant,
                "provider": sel.provider,
                "session_options": sel.options.to_manifest(),
                "mode": result.mode,
                "measured_on": result.measured_on,
                "reason": result.reason,
                "notes": list(result.notes),
                "trials": result.search.n_trials if result.search else 0,
                "front": front_doc(result),  # the table `edgekit tune` prints
            }
            ctx.say(f"{target}: {sel.variant} ({result.mode})")
        return {"bundle": ctx.bundle, "selection": selection}
