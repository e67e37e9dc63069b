"""Benchmark result tables (`edgekit bench`, the demo): one row per configuration, and cost."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from edgekit.toolkit.present.format import compact_table


def _num(x: float | None) -> str:
    """Short and readable at any magnitude: 0.0364, 2.41, 18.3, 28,475."""
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _headline_column(record: dict[str, Any]) -> str:
    h = record["headline"]
    if h["unit"] == "ms":
        return f"{h['name'].replace(' latency', '')} ms"
    if h["name"].startswith("max QPS"):
        return "max QPS"
    return h["unit"]


def _config(r: dict[str, Any], with_provider: bool) -> str:
    from edgekit.toolkit.bench.providers import short_name

    where = (
        f"{short_name(r['provider'])} " if with_provider and r["system"] == "onnxruntime" else ""
    )
    return f"{where}t{r['threads'] or 'def'} b{r['batch']}"


def _who(r: dict[str, Any]) -> str:
    native = r["system"] != "onnxruntime"
    return f"{r['system'].removeprefix('native:')} (native)" if native else r["variant"]


def results_table(doc: dict[str, Any]) -> Table:
    """One row per configuration, narrow enough for an 80-column terminal; every figure is in
    --json, results.csv and the report."""
    records = doc["records"]
    providers = {r["provider"] for r in records if r["system"] == "onnxruntime"}
    offline = bool(records) and records[0]["headline"]["unit"] == "samples/s"
    head = _headline_column(records[0]) if records else "headline"
    notes = []
    if len(providers) == 1:
        notes.append(f"provider {next(iter(providers))}")
    if records and records[0]["headline"]["name"].startswith("max QPS"):
        notes.append(f"max QPS: {records[0]['headline']['name']}")
    if offline:
        notes.append("* best batch")
    if any(not r["stability"]["stable"] for r in records):
        notes.append("! unstable")
    table = compact_table(f"{doc['bundle']['name']} — {doc['scenario']}", "; ".join(notes) or None)
    table.add_column("variant", overflow="fold")
    table.add_column("config", overflow="fold")
    columns = ["p50 ms", "samples/s", "cold ms", "RSS MB", "×native"]
    if not offline:
        columns.insert(0, head)
    for c in columns:
        table.add_column(c, justify="right", no_wrap=True)
    for r in records:
        speed = (r.get("vs_native") or {}).get("p50_speedup")
        rss = r["resources"].get("peak_rss_bytes")
        mark = ("*" if r["scenario_result"].get("is_best") else "") + (
            "" if r["stability"]["stable"] else "[red]![/]"
        )
        figures = [
            _num(r["latency_ms"]["p50"]),
            _num(r["throughput"]["samples_per_s"]) + (mark if offline else ""),
            _num(r["session"]["cold_first_ms"]),
            f"{rss / 2**20:.0f}" if rss else "–",
            f"{speed:.2f}" if speed else "–",
        ]
        if not offline:
            figures.insert(0, _num(r["headline"]["value"]) + mark)
        table.add_row(_who(r), _config(r, len(providers) > 1), *figures)
    return table


def cost_table(doc: dict[str, Any]) -> Table | None:
    """Cost per million predictions (and per user-month) at the measured throughput."""
    priced = [r for r in doc["records"] if r.get("cost")]
    if not priced:
        return None
    first = priced[0]["cost"]
    per_user = "cost_per_user_month" in first
    providers = {r["provider"] for r in priced if r["system"] == "onnxruntime"}
    title = f"cost at {first['price']} = {first['per_hour']:g}/h, full utilisation"
    if per_user:
        title += f", {first['predictions_per_user_month']:g} predictions per user-month"
    table = compact_table(title)
    table.add_column("variant", overflow="fold")
    table.add_column("config", overflow="fold")
    table.add_column("per 1M predictions", justify="right")
    if per_user:
        table.add_column("per user-month", justify="right")
        table.add_column("users/machine", justify="right")
    for r in priced:
        c = r["cost"]
        row = [_who(r), _config(r, len(providers) > 1), f"{c['cost_per_million']:.3g}"]
        if per_user:
            row += [f"{c['cost_per_user_month']:.3g}", _num(c.get("users_per_machine"))]
        table.add_row(*row)
    return table
