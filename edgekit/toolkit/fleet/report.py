"""`edgekit fleet report`: the summary as rich tables, and as one self-contained HTML page with
latency over time per device, throughput, drift per feature as heat maps, alerts and
deployments on a time line."""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgekit.toolkit.fleet.drift import FLEET
from edgekit.toolkit.fleet.store import Store
from edgekit.toolkit.fleet.summary import drift_entries, merged_latency
from edgekit.toolkit.reports import HtmlReport, new_figure, plain_log_ticks

MAX_LINES = 20  # devices drawn one line each; beyond that, the fleet band only
SEVERITY_COLOR = {"info": "#3182ce", "warning": "#dd6b20", "critical": "#c53030"}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _clock(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------------------------
# terminal
# ------------------------------------------------------------------------------------------------


def print_summary(s: dict[str, Any], console: Console) -> None:
    """The fleet summary in the terminal: one step per table, in the order a reader asks."""
    _print_headline(s, console)
    _print_devices(s, console)
    _print_lab(s, console)
    _print_drift(s, console)
    _print_alerts_and_deployments(s, console)


def _print_headline(s: dict[str, Any], console: Console) -> None:
    m = s["messages"]
    fl = s["fleet_latency"]["all"]
    console.print(
        f"[bold]fleet[/]: {len(s['devices'])} devices, {m['stored']} messages "
        f"({', '.join(f'{k} {v}' for k, v in sorted(m['by_type'].items())) or 'none'}), "
        f"{m['duplicates_dropped']} duplicates dropped, "
        + (f"[red]{m['lost']} lost[/]" if m["lost"] else "0 lost")
        + (f", {m['rejected']} rejected" if m["rejected"] else "")
    )
    console.print(
        f"fleet latency over {fl['count']} requests: p50 {_ms(fl['p50'])} ms, "
        f"p90 {_ms(fl['p90'])} ms, p99 {_ms(fl['p99'])} ms "
        f"(merged histograms, ±{fl['relative_error']:.0%})"
    )


def _print_devices(s: dict[str, Any], console: Console) -> None:
    t = Table(title="devices")
    for col in (
        "device",
        "target",
        "variant",
        "version",
        "windows",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "lost",
        "alerts",
    ):
        t.add_column(
            col,
            justify="left" if col in ("device", "target", "variant") else "right",
            no_wrap=col == "device",
        )
    for d in s["devices"]:
        t.add_row(
            d["thing"],
            d["target"] or "-",
            d["variant"] or "-",
            d["component_version"] or "-",
            str(d["windows"]),
            "-" if d["requests_per_s"] is None else f"{d['requests_per_s']:.1f}",
            _ms(d["p50_ms"]),
            _ms(d["p99_ms"]),
            str(d["errors"]),
            f"[red]{d['lost']}[/]" if d["lost"] else "0",
            f"[yellow]{d['alerts']}[/]" if d["alerts"] else "0",
        )
    console.print(t)


def _print_lab(s: dict[str, Any], console: Console) -> None:
    if s["lab_vs_device"]:
        t = Table(title="lab against device (same harness)")
        for col in ("device", "target", "variant", "metric", "device ms", "lab ms", "ratio"):
            t.add_column(col)
        for c in s["lab_vs_device"]:
            ratio = f"{c['ratio']:.2f}x"
            t.add_row(
                c["thing"],
                c["target"],
                c["variant"],
                c["metric"],
                _ms(c["device_ms"]),
                _ms(c["lab_ms"]),
                f"[red]{ratio}[/]" if c["slower"] else ratio,
            )
        console.print(t)
    for alert in s.get("lab_alerts") or []:  # what the live collector's rule raises, verbatim
        console.print(f"[bold red]⚠ {alert['rule']}[/] ({alert['severity']}): {alert['message']}")
    for note in s["lab_notes"]:
        console.print(f"[dim]lab: {note}[/]")


def _print_drift(s: dict[str, Any], console: Console) -> None:
    fleet_drift = s["drift"]["fleet"]
    if fleet_drift:
        t = Table(title="drift across the fleet (summed bin counts)")
        for col in ("feature", "rows", "PSI", "mean window PSI", "drift windows", "status"):
            t.add_column(col)
        for f in fleet_drift:
            style = "red" if f["status"] == "drift" else ""
            t.add_row(
                f"{f['feature']}" + (" (prediction)" if f["group"] == "predictions" else ""),
                str(f["n"]),
                _ms(f["psi"]),
                _ms(f["window_psi_mean"]),
                f"{f['drift_windows']}/{f['windows']}",
                f"[{style}]{f['status']}[/]" if style else f["status"],
            )
        console.print(t)


def _print_alerts_and_deployments(s: dict[str, Any], console: Console) -> None:
    if s["alerts"]:
        t = Table(title=f"alerts ({len(s['alerts'])})")
        for col in ("time (UTC)", "source", "device", "rule", "state", "severity", "message"):
            t.add_column(col)
        for a in s["alerts"][-20:]:
            t.add_row(
                _clock(a["t"]),
                a["source"],
                a["thing"] or "fleet",
                a["rule"],
                a["state"],
                a["severity"],
                a["message"],
            )
        console.print(t)
    if s["deployments"]:
        console.print(
            f"deployments: {len(s['deployments'])} "
            f"({sum(d['status'] == 'SUCCEEDED' for d in s['deployments'])} succeeded)"
        )


# ------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------


def _series(store: Store) -> dict[str, list[tuple[float, Any]]]:
    series: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for r in store.query(
        "SELECT thing, window_end, p50, p99, requests_per_s, latency FROM metrics "
        "ORDER BY window_end"
    ):
        series[r["thing"]].append((r["window_end"], r))
    return series


def _latency_figure(report: HtmlReport, series, t0: float, deployments) -> None:
    if not series:
        return
    fig, ax = new_figure(9, 4.2)
    things = sorted(series)
    for thing in things[:MAX_LINES]:
        pts = [(t - t0, r["p50"]) for t, r in series[thing] if r["p50"] is not None]
        if pts:
            ax.plot(*zip(*pts, strict=False), lw=1, label=thing)
    # fleet p99 per time bucket from merged histograms
    buckets: dict[int, list[str]] = defaultdict(list)
    width = max(1.0, _span(series) / 60)
    for thing in things:
        for t, r in series[thing]:
            buckets[int((t - t0) // width)].append(r["latency"])
    xs, p99 = [], []
    for b in sorted(buckets):
        lat = merged_latency(buckets[b])
        if lat["p99"] is not None:
            xs.append((b + 0.5) * width)
            p99.append(lat["p99"])
    if xs:
        ax.plot(xs, p99, "k--", lw=1.5, label="fleet p99 (merged)")
    for d in deployments:
        if d.get("started_at"):
            ax.axvline(d["started_at"] - t0, color="#a0aec0", lw=0.8, ls=":")
    ax.set_xlabel("seconds since first window")
    ax.set_ylabel("latency p50 per window (ms)")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.grid(alpha=0.3)
    if len(things) <= MAX_LINES:
        ax.legend(fontsize=7, ncol=2)
    note = "" if len(things) <= MAX_LINES else f" (first {MAX_LINES} of {len(things)} devices)"
    report.figure(
        fig,
        "Latency over time: p50 per device and window, fleet p99 from merged "
        "histograms; dotted lines are deployments" + note,
    )


def _span(series) -> float:
    ts = [t for pts in series.values() for t, _ in pts]
    return (max(ts) - min(ts)) if ts else 0.0


def fleet_rate(series, t0: float, points: int = 200) -> tuple[list[float], list[float]]:
    """The fleet's requests per second over time: at each instant, the sum of every device's
    rate in the window that covers it. Summing the windows that happen to end in the same
    second (as before) counted each device only in some seconds and zigzagged."""
    steps = []  # per device: window ends and rates, a step function back to its first window
    for pts in series.values():
        ends = [t for t, _ in pts]
        if ends:
            first = ends[0] - (ends[1] - ends[0] if len(ends) > 1 else 0.0)
            steps.append((first, ends, [r["requests_per_s"] or 0.0 for _, r in pts]))
    if not steps:
        return [], []
    start = min(s[0] for s in steps)
    end = max(s[1][-1] for s in steps)
    if end <= start:
        return [end - t0], [sum(s[2][-1] for s in steps)]
    xs, ys = [], []
    for i in range(points + 1):
        t = start + (end - start) * i / points
        total = 0.0
        for first, ends, rates in steps:
            if first <= t <= ends[-1]:
                total += rates[min(bisect.bisect_left(ends, t), len(rates) - 1)]
        xs.append(t - t0)
        ys.append(total)
    return xs, ys


def _throughput_figure(report: HtmlReport, series, t0: float) -> None:
    if not series:
        return
    fig, ax = new_figure(9, 3.6)
    for thing in sorted(series)[:MAX_LINES]:
        pts = [(t - t0, r["requests_per_s"] or 0.0) for t, r in series[thing]]
        ax.plot(*zip(*pts, strict=False), lw=0.8, alpha=0.7, label=thing)
    if len(series) > 1:
        xs, ys = fleet_rate(series, t0)
        ax.plot(xs, ys, "k", lw=1.5, label="fleet")
    ax.set_xlabel("seconds since first window")
    ax.set_ylabel("requests per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if len(series) <= MAX_LINES:
        ax.legend(fontsize=7, ncol=2)
    report.figure(fig, "Throughput per device, and the fleet's: the sum of every device's rate")


def _heatmap(
    report: HtmlReport, rows: list[str], cols: list[str], values, caption: str, cbar: str
) -> None:
    import numpy as np

    if not rows or not cols:
        return
    data = np.array(values, dtype=float)
    fig, ax = new_figure(max(5.0, 0.45 * len(cols) + 3), max(2.5, 0.32 * len(rows) + 1.5))
    masked = np.ma.masked_invalid(data)
    im = ax.imshow(
        masked,
        aspect="auto",
        cmap="YlOrRd",
        vmin=0,
        vmax=max(0.25, float(np.nanmax(data)) if np.isfinite(data).any() else 0.25),
    )
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    fig.colorbar(im, ax=ax, label=cbar)
    report.figure(fig, caption)


def _drift_figures(report: HtmlReport, s: dict[str, Any], store: Store, t0: float) -> None:
    by_device = s["drift"]["by_device"]
    fleet = {(f["group"], f["feature"]): f for f in s["drift"]["fleet"]}
    if not fleet:
        report.paragraph("No drift counts were received.", "note")
        return
    feats = sorted(fleet)
    things = sorted({f["thing"] for f in by_device})
    score = {(f["group"], f["feature"], f["thing"]): _score(f) for f in by_device}
    values = [
        [score.get((g, n, t), float("nan")) for t in things] + [_score(fleet[(g, n)])]
        for g, n in feats
    ]
    labels = [n if g == "features" else f"{n} (pred)" for g, n in feats]
    merged = bool(s["drift"]["baselines"])
    what = "PSI of the summed counts" if merged else "mean per-window PSI (no baseline given)"
    _heatmap(
        report, labels, [*things, "FLEET"], values, f"Drift per feature and device: {what}", "PSI"
    )
    # feature x time (fleet): mean window PSI per time bucket
    entries = drift_entries(store)
    if not entries:
        return
    ends = [e["window_end"] for e in entries]
    width = max(1.0, (max(ends) - min(ends)) / 30)
    acc: dict[tuple, list[float]] = defaultdict(list)
    for e in entries:
        if e["psi"] is not None:
            acc[(e["grp"], e["name"], int((e["window_end"] - t0) // width))].append(e["psi"])
    nb = int((max(ends) - t0) // width) + 1
    grid = [
        [(sum(v) / len(v)) if (v := acc.get((g, n, b))) else float("nan") for b in range(nb)]
        for g, n in feats
    ]
    _heatmap(
        report,
        labels,
        [f"{b * width:.0f}s" for b in range(nb)],
        grid,
        "Drift per feature over time: mean window PSI across devices",
        "PSI",
    )


def _score(f: dict[str, Any]) -> float:
    v = f["psi"] if f["psi"] is not None else f["window_psi_mean"]
    return float("nan") if v is None else float(v)


def _timeline_figure(report: HtmlReport, s: dict[str, Any], t0: float) -> None:
    alerts, deps = s["alerts"], s["deployments"]
    if not alerts and not deps:
        return
    lanes = sorted({a["thing"] or "fleet" for a in alerts} | {d["thing"] for d in deps})
    y = {name: i for i, name in enumerate(lanes)}
    fig, ax = new_figure(9, max(2.5, 0.3 * len(lanes) + 1.5))
    for sev, color in SEVERITY_COLOR.items():
        pts = [
            (a["t"] - t0, y[a["thing"] or "fleet"])
            for a in alerts
            if a["severity"] == sev and a["state"] == "firing"
        ]
        if pts:
            ax.scatter(*zip(*pts, strict=False), c=color, marker="o", s=28, label=f"alert ({sev})")
    res = [(a["t"] - t0, y[a["thing"] or "fleet"]) for a in alerts if a["state"] == "resolved"]
    if res:
        ax.scatter(
            *zip(*res, strict=False),
            facecolors="none",
            edgecolors="#38a169",
            s=28,
            label="resolved",
        )
    for ok in (True, False):
        pts = [
            (d["started_at"] - t0, y[d["thing"]])
            for d in deps
            if d.get("started_at") and (d["status"] == "SUCCEEDED") == ok
        ]
        if pts:
            ax.scatter(
                *zip(*pts, strict=False),
                marker="^" if ok else "v",
                s=40,
                c="#2f855a" if ok else "#9b2c2c",
                label="deployment " + ("succeeded" if ok else "failed"),
            )
    ax.set_yticks(range(len(lanes)), lanes, fontsize=7)
    ax.set_xlabel("seconds since first window")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    report.figure(fig, "Alerts and deployments on a time line")


def write_html(s: dict[str, Any], store: Store, path: str | Path) -> Path:
    """The fleet report as one HTML page: one step per section."""
    m = s["messages"]
    report = HtmlReport(
        "edgekit fleet report",
        f"{len(s['devices'])} devices · {m['stored']} messages · database {s['db']}",
    )
    t0 = s["span"]["start"] or 0.0
    series = _series(store)
    _html_summary(report, s)
    _html_devices(report, s)
    _html_latency(report, s, series, t0)
    report.heading("Throughput")
    _throughput_figure(report, series, t0)
    _html_lab(report, s)
    _html_drift(report, s, store, t0)
    _html_alerts(report, s, t0)
    _html_deployments(report, s)
    return report.write(path)


def _html_summary(report: HtmlReport, s: dict[str, Any]) -> None:
    m = s["messages"]
    report.heading("Summary")
    fl = s["fleet_latency"]["all"]
    report.key_values(
        {
            "devices": len(s["devices"]),
            "first window (UTC)": _clock(s["span"]["start"]),
            "last window (UTC)": _clock(s["span"]["end"]),
            **{f"{k} messages": v for k, v in sorted(m["by_type"].items())},
            "duplicates dropped": m["duplicates_dropped"],
            "lost (sequence gaps)": m["lost"],
            "of which before the first message seen": m["lost_before_first_seen"],
            "rejected (malformed)": m["rejected"],
            "fleet requests": fl["count"],
            "fleet p50 / p90 / p99 ms": f"{_ms(fl['p50'])} / {_ms(fl['p90'])} / {_ms(fl['p99'])}",
            "percentile error": f"within one histogram bucket (±{fl['relative_error']:.1%})",
        }
    )


def _html_devices(report: HtmlReport, s: dict[str, Any]) -> None:
    report.heading("Devices")
    report.table(
        [
            {**d, "first_seen": _clock(d["first_seen"]), "last_seen": _clock(d["last_seen"])}
            for d in s["devices"]
        ],
        flag="lost",
        caption="first and last seen in UTC",
    )


def _html_latency(report: HtmlReport, s: dict[str, Any], series, t0: float) -> None:
    report.heading("Latency")
    report.table(
        [
            {"variant": v, **{k: lat[k] for k in ("count", "p50", "p90", "p99", "max")}}
            for v, lat in s["fleet_latency"]["by_variant"].items()
        ],
        caption="fleet percentiles per variant (ms), from merged histograms",
    )
    _latency_figure(report, series, t0, s["deployments"])


def _html_lab(report: HtmlReport, s: dict[str, Any]) -> None:
    report.heading("Lab against device")
    if s["lab_vs_device"]:
        report.table(
            s["lab_vs_device"],
            flag="slower",
            caption="the device's bench reply against the bundle's lab record for its "
            "target (same harness and record schema)",
        )
    else:
        report.paragraph("No device bench result could be compared with a lab record.", "note")
    if s.get("lab_alerts"):
        report.bullets(
            [f"⚠ {a['rule']} ({a['severity']}): {a['message']}" for a in s["lab_alerts"]]
        )
    if s["lab_notes"]:
        report.bullets(s["lab_notes"])


def _html_drift(report: HtmlReport, s: dict[str, Any], store: Store, t0: float) -> None:
    report.heading("Drift")
    _drift_figures(report, s, store, t0)
    report.table(
        [
            {
                k: f[k]
                for k in (
                    "group",
                    "feature",
                    "n",
                    "psi",
                    "window_psi_mean",
                    "drift_windows",
                    "windows",
                    "status",
                )
            }
            for f in s["drift"]["fleet"]
        ],
        caption="per feature across the fleet",
        flag=None,
    )


def _html_alerts(report: HtmlReport, s: dict[str, Any], t0: float) -> None:
    report.heading("Alerts and deployments")
    _timeline_figure(report, s, t0)
    if s["alerts"]:
        report.table(
            [
                {
                    "time (UTC)": _clock(a["t"]),
                    **{
                        k: a[k] for k in ("source", "thing", "rule", "state", "severity", "message")
                    },
                }
                for a in s["alerts"]
            ],
            caption="alerts",
        )
    if s["actions"]:
        report.table(
            [{**a, "t": _clock(a["t"]), "ok": bool(a["ok"])} for a in s["actions"]],
            caption="alert actions run",
        )


def _html_deployments(report: HtmlReport, s: dict[str, Any]) -> None:
    if s["deployments"]:
        report.table(
            [
                {
                    "started (UTC)": _clock(d["started_at"]),
                    "device": d["thing"],
                    "deployment": d["deployment_id"][:8],
                    "status": d["status"],
                    "detail": d["detailed_status"],
                    "reason": d["reason"],
                    "versions": ", ".join(f"{k} {v}" for k, v in (d["versions"] or {}).items()),
                    "seconds": d["duration_s"],
                }
                for d in s["deployments"]
            ],
            caption="deployment history",
        )
    else:
        report.paragraph(
            "No deployments recorded (the simulator writes them; or pass "
            "--run-dir of a simulation).",
            "note",
        )
    if s["gaps"]:
        report.table(s["gaps"], caption="sequence gaps (lost messages)")


__all__ = ["FLEET", "print_summary", "write_html"]
