"""Demo stage: evaluate every variant of both bundles on the held-out test data with the
accuracy gate; a failing static INT8 variant gets its qdq_loss_debug report and one retry
without its worst nodes (--auto-exclude)."""

from __future__ import annotations

from toolkit.demo import DemoContext, stage
from toolkit.demo.models import TABULAR_TARGET
from toolkit.evaluate import EvaluateRequest, evaluate_bundle
from toolkit.present.evaluate import print_report

AUTO_EXCLUDE = 2
MAX_DROP = 0.01


@stage(35, "evaluate")
def evaluate(ctx: DemoContext) -> None:
    data = {
        "tabular": (ctx.artifacts["tabular"]["test"], TABULAR_TARGET),
        "cnn": (ctx.artifacts["cnn"]["test"], "target"),
    }
    ctx.results["evaluate"] = {}
    for key, (path, target) in data.items():
        bundle = ctx.bundles[key]
        ctx.console.print(f"[bold]{key}[/]: {bundle.name} on {path.name}")
        report = evaluate_bundle(
            bundle,
            EvaluateRequest(
                data=path,
                target_column=target,
                max_drop=MAX_DROP,
                auto_exclude=AUTO_EXCLUDE,
                command=f"edgekit evaluate {bundle} --data {path} --target-column {target} "
                f"--max-drop {MAX_DROP} --auto-exclude {AUTO_EXCLUDE}",
            ),
        )
        print_report(ctx.console, report)
        ctx.results["evaluate"][key] = {
            "metric": report["metric"],
            "passed": report["passed"],
            "rejected": [n for n in report["quantized"] if n not in report["passed"]],
            "values": {
                n: r["metrics"].get(report["metric"], r["vs_fp32"].get(report["metric"]))
                for n, r in report["variants"].items()
            },
        }
