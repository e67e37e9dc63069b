"""The benchmark's HTML report: one self-contained file with the latency distribution per
variant, throughput against batch size, latency against QPS (server), accuracy against latency
with the Pareto front, the results table, the environment and what was skipped and why.

It is drawn from the run document (results.json) and the manifest, so it can be rebuilt later.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.benchmark.stats import PERCENTILES
from edgekit.toolkit.bench.cost import cost_figures, load_prices
from edgekit.toolkit.bench.pareto import accuracy_front, main_metric
from edgekit.toolkit.bench.providers import short_name
from edgekit.toolkit.reports import HtmlReport, new_figure, plain_log_ticks

MAX_LINES = 12


def _series(r: Mapping[str, Any]) -> str:
    if r["system"] != "onnxruntime":
        return f"{r['system']} · {r['threads'] or 'default'} thr"
    return f"{r['variant']} · {short_name(r['provider'])} · {r['threads'] or 'default'} thr"


def _finish(ax: Any, xlabel: str, ylabel: str, grid: str = "both") -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which=grid)


def _latency_distribution(report: HtmlReport, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    smallest = min(r["batch"] for r in records)
    chosen = [r for r in records if r["batch"] == smallest and r.get("histogram", {}).get("counts")]
    if not chosen:
        return
    fig, ax = new_figure()
    for r in chosen[:MAX_LINES]:
        edges = np.asarray(r["histogram"]["edges_ms"])
        counts = np.asarray(r["histogram"]["counts"], dtype=float)
        share = counts / max(counts.sum(), 1.0)
        ax.stairs(share, edges, label=f"{_series(r)} (p50 {r['latency_ms']['p50']:.3g} ms)")
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    _finish(ax, "latency per query (ms, log scale)", "share of queries", grid="major")
    note = f" (first {MAX_LINES} of {len(chosen)})" if len(chosen) > MAX_LINES else ""
    report.figure(fig, f"Latency distribution per variant at batch {smallest}{note}.")


def _throughput_vs_batch(report: HtmlReport, records: list[dict[str, Any]]) -> None:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(_series(r), []).append(r)
    if not any(len({r["batch"] for r in g}) > 1 for g in groups.values()):
        report.paragraph(
            "Throughput against batch size: only one batch size was measured (run with --batch 1,8,32).",
            "note",
        )
        return
    fig, ax = new_figure()
    for label, group in list(groups.items())[:MAX_LINES]:
        group = sorted(group, key=lambda r: r["batch"])
        ax.plot(
            [r["batch"] for r in group],
            [r["throughput"]["samples_per_s"] for r in group],
            marker="o",
            label=label,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    batches = sorted({r["batch"] for r in records})
    from matplotlib.ticker import NullLocator

    ax.set_xticks(batches, [str(b) for b in batches])  # the measured sizes, not powers of 2
    ax.xaxis.set_minor_locator(NullLocator())
    _finish(ax, "batch size", "samples/s")
    report.figure(fig, "Throughput against batch size.")


def _latency_vs_qps(report: HtmlReport, records: list[dict[str, Any]]) -> None:
    server = [r for r in records if r["scenario"] == "server"]
    if not server:
        return
    fig, ax = new_figure()
    bound = None
    for r in server[:MAX_LINES]:
        result = r.get("scenario_result") or {}
        curve = result.get("curve")
        if curve:
            key = result["latency_bound"]["percentile"]
            bound = result["latency_bound"]["ms"]
            pts = sorted(curve, key=lambda c: c["target_qps"])
            ax.plot(
                [c["target_qps"] for c in pts],
                [c[key] for c in pts],
                marker="o",
                label=f"{_series(r)} ({key})",
            )
            fails = [c for c in pts if not c["passed"]]
            ax.scatter(
                [c["target_qps"] for c in fails],
                [c[key] for c in fails],
                marker="x",
                color="red",
                zorder=3,
            )
        else:
            ax.scatter(
                [result.get("target_qps", 0)],
                [r["latency_ms"]["p99"]],
                label=f"{_series(r)} (p99)",
            )
    if bound:
        ax.axhline(bound, color="red", linestyle="--", linewidth=1, label=f"bound {bound:g} ms")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    _finish(ax, "offered queries/s (Poisson arrivals)", "latency under load (ms, log scale)")
    report.figure(fig, "Latency against QPS in the server scenario; red crosses failed the bound.")


def _accuracy_vs_latency(
    report: HtmlReport, records: list[dict[str, Any]], variants: Mapping[str, Any], task: str
) -> list[dict[str, Any]]:
    points, rows, higher = [], [], True
    metric_name = None
    for name, v in variants.items():
        mine = [r for r in records if r["system"] == "onnxruntime" and r["variant"] == name]
        metric = main_metric(v.get("evaluation"), task)
        if not mine or metric is None:
            continue
        smallest = min(r["batch"] for r in mine)
        latency = min(r["latency_ms"]["p50"] for r in mine if r["batch"] == smallest)
        metric_name, value, higher = metric
        points.append((name, latency, value))
    if not points:
        report.paragraph(
            "Accuracy against latency: no variant has evaluation results in the manifest "
            "(run `edgekit evaluate BUNDLE --data FILE`).",
            "note",
        )
        return []
    assert metric_name is not None  # set with the first point
    front = set(accuracy_front(points, higher))
    fig, ax = new_figure(6.5, 4.0)
    for name, lat, value in points:
        on = name in front
        ax.scatter(
            [lat],
            [value],
            s=60 if on else 30,
            marker="o" if on else "s",
            color="#2b6cb0" if on else "#a0aec0",
            zorder=3,
        )
        ax.annotate(name, (lat, value), textcoords="offset points", xytext=(5, 4), fontsize=8)
        rows.append({"variant": name, "p50 ms": lat, metric_name: value, "pareto": on})
    front_pts = sorted([p for p in points if p[0] in front], key=lambda p: p[1])
    ax.step(
        [p[1] for p in front_pts],
        [p[2] for p in front_pts],
        where="post",
        color="#2b6cb0",
        label="Pareto front",
    )
    ax.set_xlabel("p50 latency at the smallest batch (ms)")
    ax.set_ylabel(f"{metric_name} ({'higher' if higher else 'lower'} is better)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    report.figure(
        fig,
        "Accuracy against latency; the Pareto front (no variant both faster and better) in blue.",
    )
    report.table(rows, caption="Pareto front", flag="pareto")
    return rows


def _mb(n: int | None) -> float | None:
    return None if n is None else n / 2**20


def _results_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        lat = r["latency_ms"]
        rows.append(
            {
                "system": r["system"],
                "variant": r["variant"],
                "provider": short_name(r["provider"]) if r["system"] == "onnxruntime" else "–",
                "threads": r["threads"],
                "batch": r["batch"],
                "headline": f"{r['headline']['name']}: {r['headline']['value']:.4g} {r['headline']['unit']}",
                "min ms": lat["min"],
                "mean ms": lat["mean"],
                **{f"{k} ms": lat[k] for k, _ in PERCENTILES},
                "max ms": lat["max"],
                "inferences/s": r["throughput"]["inferences_per_s"],
                "samples/s": r["throughput"]["samples_per_s"],
                "create ms": r["session"]["create_ms"],
                "cold ms": r["session"]["cold_first_ms"],
                "peak RSS MB": (r["resources"].get("peak_rss_bytes") or 0) / 2**20 or None,
                "RSS increase MB": _mb(r["resources"].get("peak_rss_increase_bytes")),
                "CPU %": r["resources"].get("cpu_percent"),
                "size KB": (r.get("model_bytes") or 0) / 1024 or None,
                "vs native": (r.get("vs_native") or {}).get("p50_speedup"),
                "stable": r["stability"]["stable"],
                "unstable": not r["stability"]["stable"],
            }
        )
    return rows


def _cost_section(report: HtmlReport, doc: dict[str, Any], records: list[dict[str, Any]]) -> None:
    onnx = [r for r in records if r["system"] == "onnxruntime"]
    if not onnx:
        return
    priced = [r for r in onnx if r.get("cost")]
    report.heading("Business figures")
    if priced:
        report.table(
            [
                {
                    "variant": r["variant"],
                    "config": _series(r) + f" · batch {r['batch']}",
                    "price/h": r["cost"]["per_hour"],
                    "per 1M predictions": r["cost"]["cost_per_million"],
                    "per user-month": r["cost"].get("cost_per_user_month"),
                }
                for r in priced
            ],
            caption=f"At {priced[0]['cost']['price']} = {priced[0]['cost']['per_hour']:g}/h, full utilisation",
        )
        return
    best: dict[str, dict[str, Any]] = {}
    for r in onnx:
        if (
            r["variant"] not in best
            or r["throughput"]["samples_per_s"] > best[r["variant"]]["throughput"]["samples_per_s"]
        ):
            best[r["variant"]] = r
    rows = []
    for price in load_prices().values():
        row: dict[str, Any] = {"price": f"{price.name} ({price.per_hour:g}/h)"}
        for name, r in best.items():
            row[f"{name} per 1M"] = cost_figures(r["throughput"]["samples_per_s"], price)[
                "cost_per_million"
            ]
        rows.append(row)
    report.paragraph(
        "Cost per million predictions at each row of the shipped price table, at each variant's best "
        "measured throughput on this machine and full utilisation (give --price-per-hour for your own).",
        "note",
    )
    report.table(rows)


def build_report(doc: dict[str, Any], manifest: Mapping[str, Any] | None = None) -> HtmlReport:
    records = doc["records"]
    env = doc["environment"]
    plan = doc["plan"]
    title = f"edgekit bench — {doc['bundle']['name']} — {doc['scenario']}"
    report = HtmlReport(
        title,
        f"{len(records)} configurations on {env.get('cpu_model') or 'unknown CPU'}, "
        f"onnxruntime {env.get('onnxruntime')}, {doc['created']}",
    )
    if doc.get("complete") is False:
        report.paragraph(
            f"Incomplete: interrupted during {doc.get('interrupted')}; "
            f"{len(records)} of {doc.get('planned_configurations')} planned configurations "
            "were measured and are shown.",
            "warn",
        )
    unstable = [r for r in records if not r["stability"]["stable"]]
    if unstable:
        report.paragraph(
            f"{len(unstable)} configuration(s) never stabilised (the last windows disagreed by more "
            f"than {plan['stability']['tolerance']:.0%}); their figures are shown but marked.",
            "warn",
        )
    variants = dict((manifest or {}).get("variants", {}))
    measured = sorted({r["variant"] for r in records if r["system"] == "onnxruntime"})
    report.heading("Variants")
    report.table(
        [
            {
                "variant": name,
                "precision": variants.get(name, {}).get("precision"),
                "size KB": (variants.get(name, {}).get("bytes") or 0) / 1024 or None,
                "rejected": variants.get(name, {}).get("rejected"),
                "measured": name in measured,
            }
            for name in (variants or dict.fromkeys(measured))
        ]
    )
    report.heading("Results")
    report.table(_results_rows(records), flag="unstable")
    report.heading("Latency distribution")
    _latency_distribution(
        report,
        [
            r
            for r in records
            if r["scenario"] != "server" or not r.get("scenario_result", {}).get("curve")
        ]
        or records,
    )
    report.heading("Throughput against batch size")
    _throughput_vs_batch(report, records)
    if doc["scenario"] == "server":
        report.heading("Latency against QPS")
        _latency_vs_qps(report, records)
    report.heading("Accuracy against latency")
    _accuracy_vs_latency(report, records, variants, (manifest or {}).get("task", "classification"))
    _cost_section(report, doc, records)
    if doc.get("skipped"):
        report.heading("Skipped")
        report.table(doc["skipped"], ["what", "reason"])
    report.heading("Environment")
    report.key_values(
        {
            "CPU": env.get("cpu_model"),
            "ISA": ", ".join(env.get("isa") or []),
            "cores (physical / logical / usable)": f"{env.get('physical_cores')} / {env.get('logical_cores')} / {env.get('usable_cores')}",
            "memory GB": (env.get("memory_bytes") or 0) / 2**30 or None,
            "OS": env.get("os"),
            "Python": env.get("python"),
            "onnxruntime": env.get("onnxruntime"),
            "providers": ", ".join(env.get("providers") or []),
            "load average": ", ".join(map(str, env.get("load_average") or [])),
        }
    )
    report.heading("Plan")
    report.key_values({k: v for k, v in plan.items() if v is not None})
    return report


def write_report(doc: dict[str, Any], manifest: Mapping[str, Any] | None, path: str | Path) -> Path:
    return build_report(doc, manifest).write(path)
