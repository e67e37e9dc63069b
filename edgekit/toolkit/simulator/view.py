"""Rich tables of a simulated fleet: the live per-device view and the on-device bench results
(shared by `edgekit simulate` and the demo's simulate stage)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

_STATE_STYLE = {"RUNNING": "green", "FINISHED": "green", "BROKEN": "bold red", "ERRORED": "red"}


def fleet_table(snap: dict[str, Any]) -> Table:
    """Eleven columns fit 80 only without box rules and padding: with them every header and
    device name was cut (`dev…`, `sim…`, `RUN…`) when the terminal was 80 wide."""
    table = Table(
        title=f"simulated fleet — t={snap['t']:.0f}s",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0),
    )
    for col in (
        "device",
        "profile",
        "version",
        "state",
        "restarts",
        "req/s",
        "p99 ms",
        "ok",
        "errors",
        "alerts",
        "spooled",
    ):
        left = col in ("device", "profile", "state", "version")
        table.add_column(
            col,
            justify="left" if left else "right",
            overflow="fold" if col in ("device", "profile") else "ellipsis",
        )
    for thing, d in snap["devices"].items():
        style = _STATE_STYLE.get(d["state"], "yellow")
        table.add_row(
            thing,
            d["profile"],
            str(d["version"] or "-"),
            f"[{style}]{d['state']}[/]",
            str(d["restarts"]),
            f"{d['throughput']:.1f}",
            "-" if d["p99_ms"] is None else f"{d['p99_ms']:.1f}",
            str(d["requests"]),
            str(d["errors"]),
            str(d["alerts"]),
            str(d["mqtt"]["spooled"]),
        )
    return table


def bench_table(replies: dict[str, Any]) -> Table:
    """One row per device and variant, from the agent's bench telemetry (edge_agent.benchmark.command)."""
    table = Table(title="on-device benchmark (one device at a time)")
    for col in ("device", "variant", "p50 ms", "p99 ms", "QPS", "note"):
        table.add_column(col, justify="left" if col in ("device", "variant", "note") else "right")
    for thing, msg in replies.items():
        body = (msg or {}).get("body", msg) if isinstance(msg, dict) else {}
        if body.get("error"):
            table.add_row(thing, "-", "-", "-", "-", f"[red]{body['error']}[/]")
        for variant, rec in (body.get("results") or {}).items():
            lat = rec.get("latency_ms") or {}
            note = rec.get("error") or rec.get("skipped") or ""
            qps = (rec.get("throughput") or {}).get("queries_per_s")
            table.add_row(
                thing,
                variant,
                _fmt(lat.get("p50"), 3),
                _fmt(lat.get("p99"), 3),
                _fmt(qps, 0),
                note,
            )
    return table


def _fmt(x: Any, digits: int) -> str:
    return "-" if x is None else f"{float(x):.{digits}f}"
