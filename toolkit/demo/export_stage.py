"""Demo stage: export both models to verified bundles and show their summaries."""

from __future__ import annotations

from edge_agent.contracts.bundle import Bundle
from export.builder import ExportRequest, export_bundle
from export.exporters import ExportOptions
from toolkit.demo import DemoContext, stage
from toolkit.demo.models import TABULAR_TARGET
from toolkit.present.bundle import summary_tables


@stage(20, "export")
def export(ctx: DemoContext) -> None:
    tab, cnn = ctx.artifacts["tabular"], ctx.artifacts["cnn"]
    requests = {
        "tabular": ExportRequest(
            source=str(tab["model"]),
            data=tab["test"],
            output=ctx.out / "bundles" / "breast-cancer",
            target_column=TABULAR_TARGET,
            overwrite=True,
            command=f"edgekit export {tab['model']} --data {tab['test']} --target-column {TABULAR_TARGET}",
        ),
        "cnn": ExportRequest(
            source=cnn["factory"],
            data=cnn["test"],
            output=ctx.out / "bundles" / "digits-cnn",
            target_column="target",
            overwrite=True,
            options=ExportOptions(weights=cnn["weights"], task="classification"),
            command=f"edgekit export {cnn['factory']} --weights {cnn['weights']} --data {cnn['test']} --task classification",
        ),
    }
    ctx.results["export"] = {}
    for key, request in requests.items():
        bundle, report = export_bundle(request)
        ctx.bundles[key] = bundle.path
        for table in summary_tables(Bundle.open(bundle.path), []):
            ctx.console.print(table)
        variant = bundle.variant("fp32")
        ctx.results["export"][key] = {
            "bundle": str(bundle.path),
            "name": bundle.manifest["name"],
            "task": bundle.task,
            "inputs": {t["name"]: t["shape"] for t in bundle.signature["inputs"]},
            "outputs": {t["name"]: t["shape"] for t in bundle.signature["outputs"]},
            "labels": bundle.labels,
            "parity_passed": report["passed"],
            "parity_rows": report["rows"],
            "parity": {
                name: r.get("label_agreement", r.get("max_abs_diff"))
                for name, r in report["outputs"].items()
            },
            "bytes": variant["bytes"],
            "sha256": variant["sha256"],
        }
