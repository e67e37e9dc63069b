"""`edgekit quantize`: a new INT8 or FP16 variant of a bundle's FP32 model, checked and recorded."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import (
    JSON_OPTION,
    err,
    fmt_bytes,
    fmt_num,
    handle_errors,
    out,
    print_json,
    split_csv,
)
from edgekit.toolkit.cli.targets_cmd import TARGETS_DIR_OPTION


def variant_table(result: dict[str, Any]) -> Table:
    q, parity = result["quantization"], result["parity"]
    table = Table(title=f"variant {result['variant']} ({q['method']}, {result['precision']})")
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("size", f"{fmt_bytes(result['bytes'])} ({result['size_ratio']:.2f}× fp32)")
    table.add_row(
        "settings", ", ".join(f"{k}={v}" for k, v in q["config"].items() if v not in ([], None))
    )
    pre = q["preprocess"]
    table.add_row(
        "pre-processing", pre.get("steps") if pre.get("applied") else f"none: {pre.get('reason')}"
    )
    if q.get("calibration"):
        c = q["calibration"]
        where = c.get("path") or "stored samples"
        dropped = c.get("rows_dropped_missing_values")
        note = f" ({dropped} rows with missing values left out)" if dropped else ""
        table.add_row("calibration", f"{c['rows']} rows from {where}{note}")
    if q.get("quantized_ops"):
        table.add_row("quantized ops", ", ".join(f"{k}×{v}" for k, v in q["quantized_ops"].items()))
    table.add_row(
        f"vs fp32 ({parity['rows']} samples)",
        f"label agreement {fmt_num(parity['label_agreement'])}, min cosine "
        f"{fmt_num(parity['min_cosine'], '.5f')}, max abs diff {fmt_num(parity['max_abs_diff'], '.3g')}",
    )
    if q.get("auto"):
        table.add_row("auto", "\n".join(q["auto"]["reasons"]))
        found = q["auto"].get("search")
        if found:
            lines = []
            for t in found["tried"]:
                metric = found["gate"]["metric"]
                if "error" in t:
                    lines.append(f"{t['label']}: failed ({t['error'][:80]})")
                    continue
                speed = f", {t['latency_ms']:.3g} ms" if "latency_ms" in t else ""
                mark = "pass" if t["passed"] else "fail"
                lines.append(f"{t['label']}: {metric} {t[metric]:.4f} {mark}{speed}")
            fused = found.get("graph_fusion") or {}
            if fused.get("applied") or fused.get("fused"):
                lines.append(
                    f"graph fusion: {'kept' if fused.get('applied') else 'not kept'} "
                    f"({fused.get('reason') or fused.get('fused')})"
                )
            lines.append(found["why"])
            table.add_row("auto search", "\n".join(lines))
    if (q.get("hardware_defaults") or {}).get("options"):
        d = q["hardware_defaults"]
        taken = ", ".join(f"{k}={v}" for k, v in d["options"].items())
        table.add_row("hardware defaults", f"{taken} ({d['reason']})")
    return table


@app.command("quantize")
@handle_errors
def quantize_command(
    bundle: Path = typer.Argument(..., help="Bundle folder made by `edgekit export`."),
    method: str = typer.Option(..., "--method", help="dynamic | static | fp16 | auto"),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="Calibration data (CSV, Parquet, NPY, NPZ); default: the bundle's samples.",
    ),
    target_column: str | None = typer.Option(
        None, "--target-column", help="Label column/array in the calibration file, to drop."
    ),
    per_channel: bool | None = typer.Option(
        None, "--per-channel/--no-per-channel", help="Per-channel weight scales."
    ),
    reduce_range: bool | None = typer.Option(
        None, "--reduce-range/--no-reduce-range", help="7-bit weights (x86 without VNNI)."
    ),
    calibrate: str | None = typer.Option(
        None, "--calibrate", help="Static calibration: minmax | entropy | percentile."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="Static format: qdq (default) | qoperator."
    ),
    activation_type: str | None = typer.Option(
        None, "--activation-type", help="int8 | uint8 (static)."
    ),
    weight_type: str | None = typer.Option(None, "--weight-type", help="int8 | uint8."),
    exclude_nodes: list[str] = typer.Option(
        [], "--exclude-nodes", help="Node names to leave in float (repeat or comma-separate)."
    ),
    exclude_op_types: list[str] = typer.Option(
        [],
        "--exclude-op-types",
        help="Operator types to leave in float (repeat or comma-separate).",
    ),
    target: str | None = options.target(
        None, "quantize with its hardware defaults (and auto's choice), not this machine's."
    ),
    targets_dir: Path | None = TARGETS_DIR_OPTION,
    name: str | None = typer.Option(None, "--name", help="Variant name (default by method)."),
    overwrite: bool = options.overwrite("a variant of the same name"),
    replace: bool = options.alias("--replace", "--overwrite"),
    no_preprocess: bool = typer.Option(
        False, "--no-preprocess", help="Skip quant_pre_process (not advised)."
    ),
    max_drop: float = typer.Option(
        0.01,
        "--max-drop",
        help="auto: the largest loss its candidates may show on the samples (label agreement, "
        "or cosine to fp32 — pooled per sentence for encoders), as in `edgekit evaluate`.",
    ),
    no_search: bool = typer.Option(
        False, "--no-search", help="auto: take the rule's choice without trying candidates."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Quantize the FP32 variant (onnxruntime.quantization / onnxconverter-common) into a new variant."""
    from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle

    quant_options = {
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "calibrate": calibrate,
        "format": fmt,
        "activation_type": activation_type,
        "weight_type": weight_type,
        "nodes_to_exclude": split_csv(exclude_nodes) or None,
        "op_types_to_exclude": split_csv(exclude_op_types) or None,
    }
    hardware = None
    if target is not None:
        from edgekit.toolkit.targets import get_target

        hardware = get_target(target, targets_dir).as_hardware()
    request = QuantizeRequest(
        method=method,
        hardware=hardware,
        options=quant_options,
        calibration=calibration,
        target_column=target_column,
        name=name,
        replace=options.merged(overwrite, replace, "--replace", "--overwrite"),
        preprocess=not no_preprocess,
        command=shlex.join(["edgekit", *sys.argv[1:]]),
        max_drop=max_drop,
        search=not no_search,
    )
    from edgekit.toolkit.quantize.auto import NothingToQuantize

    try:
        with err.status(f"quantizing ({method})…"):
            result = quantize_bundle(bundle, request).as_dict()
    except NothingToQuantize as exc:  # auto's answer, not a failure: exit 0, no variant
        if as_json:
            print_json(
                {"ok": True, "variant": None, "nothing_to_quantize": exc.message, "hint": exc.hint}
            )
        else:
            out.print(f"nothing to quantize: {exc.message}")
            if exc.hint:
                out.print(f"[dim]{exc.hint}[/]")
        return
    if as_json:
        print_json({"ok": True, **result})
        return
    if result["duplicate_of"]:
        out.print(
            f"[yellow]=[/] the new variant would be byte-identical to [bold]"
            f"{result['duplicate_of']}[/] (same sha256): nothing added, {result['duplicate_of']} "
            "is reused"
        )
        return
    out.print(variant_table(result))
    out.print(
        f"[green]✓[/] added variant [bold]{result['variant']}[/] to {result['bundle']}; "
        "judge it with `edgekit evaluate`"
    )
