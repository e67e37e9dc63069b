"""Demo stage: quantize both demo models: `auto` plus explicit methods, each variant checked
against FP32 on the stored samples and recorded in its bundle."""

from __future__ import annotations

from typing import Any

from edge_agent.errors import EdgekitError
from toolkit.demo import DemoContext, stage
from toolkit.present.format import compact_table, fmt_num
from toolkit.quantize import QuantizeRequest, quantize_bundle

# (model key, method, options, variant name): auto first, then explicit methods.
PLAN: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("tabular", "auto", {}, None),
    ("tabular", "static", {}, None),
    ("tabular", "fp16", {}, None),
    ("cnn", "auto", {}, None),
    ("cnn", "dynamic", {}, None),
    ("cnn", "fp16", {}, None),
]


@stage(30, "quantize")
def quantize(ctx: DemoContext) -> None:
    table = compact_table("quantized variants (compared with FP32 on the stored samples)")
    for col in ("model", "requested", "variant", "method", "size", "label agreement", "min cosine"):
        table.add_column(
            col, justify="right" if col in ("size", "label agreement", "min cosine") else "left"
        )
    summary: dict[str, list] = {}
    for key, method, options, name in PLAN:
        bundle = ctx.bundles[key]
        try:
            result = quantize_bundle(
                bundle,
                QuantizeRequest(
                    method=method,
                    options=options,
                    name=name,
                    replace=True,
                    command=f"edgekit quantize {bundle} --method {method}",
                ),
            ).as_dict()
        except EdgekitError as exc:  # shown, not hidden: the demo goes on with the others
            table.add_row(key, method, "-", "refused", "-", "-", exc.message[:60])
            summary.setdefault(key, []).append({"method": method, "error": exc.message})
            continue
        parity = result["parity"]
        table.add_row(
            key,
            method,
            result["variant"],
            result["method"],
            f"{result['size_ratio']:.2f}×",
            fmt_num(parity["label_agreement"]),
            fmt_num(parity["min_cosine"], ".5f"),
        )
        summary.setdefault(key, []).append(
            {
                "method": method,
                "variant": result["variant"],
                "chosen": result["method"],
                "size_ratio": result["size_ratio"],
                "label_agreement": parity["label_agreement"],
            }
        )
        if method == "auto":
            for reason in result["quantization"]["auto"]["reasons"]:
                ctx.console.print(f"  [dim]{key} auto:[/] {reason}")
    ctx.console.print(table)
    ctx.results["quantize"] = summary
