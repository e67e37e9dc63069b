"""Demo stage: benchmark every variant of both demo models (single-stream, with the native
baseline) and write one HTML report per model under reports/."""

from __future__ import annotations

from edge_agent.benchmark import TimingConfig
from edge_agent.contracts.bundle import Bundle
from toolkit.bench.engine import BenchPlan, run_bench
from toolkit.bench.store import save_to_manifest, write_results
from toolkit.demo import DemoContext, stage
from toolkit.present.bench import results_table


@stage(40, "bench")
def bench(ctx: DemoContext) -> None:
    # quick: a tenth of a second or so per configuration keeps each model to a few seconds;
    # two batch sizes even then, so the report can draw throughput against batch size
    timing = TimingConfig(duration_s=0.12 if ctx.quick else 1.0, warmup_iterations=5)
    batches = [1, 8] if ctx.quick else [1, 32]
    ctx.results["bench"] = {}
    for key, path in ctx.bundles.items():
        # the demo exported these bundles itself, from its own factories: its code is trusted
        plan = BenchPlan(variants=None, batches=batches, timing=timing, trust_code=True)
        run = run_bench(path, plan)
        saved = save_to_manifest(run, "local", command=f"edgekit bench {path} (demo)")
        name = Bundle.open(path).manifest["name"]
        out_dir = ctx.out / "reports" / f"bench-{name}"
        paths = write_results(run, out_dir, Bundle.open(path).manifest)
        html = paths["html"]
        ctx.console.print(results_table(run.to_dict()))
        for s in run.skipped:
            ctx.console.print(f"  [yellow]skipped[/] {s['what']}: {s['reason']}", highlight=False)
        ctx.console.print(f"  report: {html}")
        ctx.results["bench"][key] = {
            "report": str(html),
            "results": str(paths["json"]),
            "variants": saved,
            "configurations": len(run.records),
            "p50_ms": {
                f"{r['variant'] if r['system'] == 'onnxruntime' else r['system']}/b{r['batch']}": r[
                    "latency_ms"
                ]["p50"]
                for r in run.records
            },
        }
