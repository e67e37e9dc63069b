"""Tune tables (`edgekit tune`, the demo): the Pareto front or ranking, and the gate per variant."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from edgekit.toolkit.present.format import compact_table, fmt_bytes, name_column, shorten_middle
from edgekit.toolkit.tune.tuner import TuneResult


def front_table(result: TuneResult) -> Table:
    return front_table_from(front_doc(result))


def front_doc(result: TuneResult) -> dict[str, Any]:
    """The Pareto front (or the profile's ranking) as plain data: what the table shows, kept
    with a pipeline run's tune result so `edgekit run` and the demo draw the same table."""
    measured = result.mode != "profile"
    title = f"Pareto front for {result.target.name} (accuracy, latency, size)"
    if not measured:
        title = f"ranking for {result.target.name} (accuracy, size; nothing measured)"
    cols = ["", "variant", "provider", "session options", "Δ metric", "size"]
    pct = result.budget.percentile if result.budget else "p50"
    other = "p99" if pct != "p99" else "p50"
    if measured:
        cols += [f"{pct} ms", f"{other} ms", "samples/s"]
    chosen = result.selected.candidate.key
    points = result.front if measured else result.points
    rows = []
    for p in points:
        mark = "[bold green]★[/]" if p.candidate.key == chosen else ""
        if not p.info.passed:
            mark = "[red]✗[/]"  # shown in the profile ranking, pruned by the gate
        row = [
            mark,
            shorten_middle(p.info.label),
            p.candidate.provider.replace("ExecutionProvider", ""),
            p.candidate.options.short(),
            p.info.delta_text() or "-",
            fmt_bytes(p.info.bytes),
        ]
        if measured and p.metrics:
            lat = p.metrics["latency_ms"]
            row += [f"{lat[pct]:.3f}", f"{lat[other]:.3f}", f"{p.metrics['samples_per_s']:.0f}"]
        rows.append(row)
    pruned = any(not p.info.passed for p in points)
    caption = "✗ pruned by the accuracy or memory gate" if pruned else None
    return {"title": title, "columns": cols, "rows": rows, "caption": caption}


def front_table_from(doc: dict[str, Any]) -> Table:
    t = compact_table(doc["title"])  # up to nine columns: borders would not fit 80
    for c in doc["columns"]:
        if c in ("variant", "session options"):
            name_column(t, c)
        else:
            t.add_column(c, justify="right" if c == "size" or c.endswith((" ms", "/s")) else "left")
    for row in doc["rows"]:
        t.add_row(*row)
    if doc.get("caption"):
        t.caption = doc["caption"]
    return t


def gate_table(result: TuneResult) -> Table:
    t = Table(title="variants and the gate")
    name_column(t, "variant")
    name_column(t, "kind")
    for c in ("size", "metric", "drop", "gate"):
        t.add_column(c, justify="right" if c == "size" else "left")
    for name, i in result.variants.items():
        t.add_row(
            shorten_middle(name),
            shorten_middle(i.label),
            fmt_bytes(i.bytes),
            f"{i.metric}={i.value:.4g}" if i.value is not None else "-",
            i.delta_text() or "-",
            "[green]pass[/]" if i.passed else f"[red]pruned[/]: {i.pruned}",
        )
    return t
