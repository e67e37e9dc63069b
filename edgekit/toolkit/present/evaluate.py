"""Evaluation tables (`edgekit evaluate`, the demo): the gate, the metrics, the quantization error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.table import Table

from edgekit.toolkit.present.format import compact_table, fmt_bytes, fmt_num

# Shown in the table when present (all of them are in --json and the manifest).
TABLE_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "f1_macro",
    "f1_weighted",
    "roc_auc",
    "roc_auc_ovr",
    "log_loss",
    "mae",
    "mse",
    "rmse",
    "r2",
)


def results_table(report: dict[str, Any]) -> Table:
    """One row per variant: the gate metric, its change, agreement with FP32 and the verdict."""
    metric = report["metric"]
    table = compact_table(
        f"evaluation on {report['data']['rows']} rows "
        f"(gate: {metric}, max drop {report['max_drop']:g})"
    )
    for col in ("variant", "precision", "size", metric, "change", "agreement", "cosine", "gate"):
        table.add_column(
            col,
            justify="left" if col in ("variant", "precision", "gate") else "right",
            overflow="fold",
        )
    ref = report["variants"]["fp32"]
    ref_value = ref["metrics"].get(metric, ref["vs_fp32"].get(metric))
    for name, r in report["variants"].items():
        g, vs = r["gate"], r["vs_fp32"]
        value = r["metrics"].get(metric, vs.get(metric))
        change = None if value is None or ref_value is None else value - ref_value
        if g.get("reference"):
            verdict = "[dim]ref[/]"
        elif g["passed"]:
            verdict = "[green]pass[/]"
        else:
            verdict = "[red]reject[/]"
        table.add_row(
            name,
            r["precision"],
            fmt_bytes(r["bytes"]),
            fmt_num(value),
            "-" if name == "fp32" or change is None else f"{change:+.4f}",
            fmt_num(vs.get("label_agreement")),
            fmt_num(vs.get("cosine_mean"), ".5f"),
            verdict,
        )
    return table


def metrics_table(report: dict[str, Any]) -> Table | None:
    """Variants down, the task's main metrics across (at most six, so it fits a terminal
    however many variants --auto-exclude adds); all of them are in --json."""
    variants = report["variants"]
    first = next(iter(variants.values()))
    shown = [m for m in TABLE_METRICS if first["metrics"].get(m) is not None]
    if not shown:
        return None
    table = compact_table("metrics (sklearn.metrics; all of them in --json and the manifest)")
    table.add_column("variant", overflow="fold")
    for m in shown:
        table.add_column(m, justify="right")
    for name, v in variants.items():
        table.add_row(name, *[fmt_num(v["metrics"].get(m)) for m in shown])
    return table


def debug_table(name: str, debug: dict[str, Any]) -> Table:
    table = compact_table(
        f"{name}: largest quantization error (qdq_loss_debug, {debug['rows']} rows)",
        "lower SQNR = larger error; worst* = NaN/inf lost or made",
    )
    for col in ("tensor", "kind", "QDQ SQNR dB", "vs float SQNR dB"):
        table.add_column(col, justify="right" if "dB" in col else "left", overflow="fold")
    for t in debug["worst_tensors"]:
        table.add_row(
            t["tensor"],
            t["kind"],
            "worst*" if t["qdq_sqnr_db"] is None else fmt_num(t["qdq_sqnr_db"], ".1f"),
            fmt_num(t["vs_float_sqnr_db"], ".1f"),
        )
    return table


def print_report(console: Any, report: dict[str, Any]) -> None:
    """The results and metrics tables, the qdq_loss_debug tables, retries and rejections
    (shared by the command and the pipeline's evaluate stage)."""
    for item in report_renderables(report):
        console.print(item)


def report_renderables(report: dict[str, Any]) -> Iterator[Any]:
    yield results_table(report)
    table = metrics_table(report)
    if table is not None:
        yield table
    for name, r in report["variants"].items():
        debug = r.get("debug") or {}
        if "worst_tensors" in debug:
            yield debug_table(name, debug)
            worst = ", ".join(n["node"] for n in debug["worst_nodes"][:5])
            yield f"  worst nodes: {worst}  (retry with --auto-exclude K)"
        if "error" in debug:
            yield f"  {name}: qdq_loss_debug could not run: {debug['error']}"
        if r.get("auto_exclude"):
            a = r["auto_exclude"]
            yield (
                f"  {name}: {a['from']} re-quantized leaving {', '.join(a['excluded_nodes'])} "
                "in float"
            )
    for name, r in report["variants"].items():
        if not r["gate"].get("passed"):
            yield f"[red]✗[/] {name}: {r['gate']['reason']}"
