"""`edgekit runs list|show|compare`: the run store as experiment log and model registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.toolkit.cli import app
from edgekit.toolkit.cli.common import JSON_OPTION, handle_errors, out, print_json

runs_app = typer.Typer(help="Pipeline runs: list, show one, compare two.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

STORE = typer.Option(
    Path(".edgekit/runs.db"), "--store", help="The run store (default: .edgekit/runs.db here)."
)


def _t(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


@runs_app.command("list")
@handle_errors
def list_command(
    store: Path = STORE,
    limit: int = typer.Option(20, "--limit", help="Most recent runs to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent runs, newest first."""
    from edgekit.toolkit.pipeline.store import RunStore

    s = RunStore.open_existing(store)
    try:
        rows = s.list(limit)
    finally:
        s.close()
    if as_json:
        print_json({"ok": True, "runs": rows})
        return
    table = Table(title=f"runs in {store}")
    for col in ("run", "started", "pipeline", "status", "trigger", "component", "metric", "s"):
        table.add_column(col)
    for r in rows:
        summary = r.get("summary") or {}
        fp32 = (summary.get("variants") or {}).get("fp32") or {}
        took = (r["finished"] - r["started"]) if r.get("finished") else None
        trig = r["trigger"] + (f" #{r['alert_id']}" if r.get("alert_id") is not None else "")
        table.add_row(
            r["id"],
            _t(r["started"]),
            r["name"],
            r["status"] + (" (dry run)" if r.get("dry_run") else ""),
            trig,
            f"{r['component']} {r['version']}" if r.get("component") else "-",
            f"{summary.get('metric')} {_fmt(fp32.get('metric'))}"
            if fp32.get("metric") is not None
            else "-",
            _fmt(took),
        )
    out.print(table)


@runs_app.command("show")
@handle_errors
def show_command(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    store: Path = STORE,
    as_json: bool = JSON_OPTION,
) -> None:
    """One run: inputs, versions, each stage's key, status and timing, what it made and where."""
    from edgekit.toolkit.pipeline.store import RunStore

    s = RunStore.open_existing(store)
    try:
        run = s.get(run_id)
    finally:
        s.close()
    if as_json:
        print_json({"ok": True, **run})
        return
    out.print(f"[bold]run {run['id']}[/] {run['status']} — {run['pipeline']}")
    out.print(f"  pipeline sha256 {run['pipeline_sha256'][:16]}…, started {_t(run['started'])}")
    if run.get("alert"):
        a = run["alert"]
        out.print(f"  triggered by alert #{a.get('id')}: {a.get('rule')} {a.get('message', '')}")
    if run.get("error"):
        out.print(f"  [red]{run['error']}[/]")
    table = Table(title="stages")
    for col in ("stage", "status", "seconds", "key"):
        table.add_column(col)
    for st in run["stages"]:
        table.add_row(st["name"], st["status"], _fmt(st["seconds"]), (st["key"] or "")[:16])
    out.print(table)
    files = (run.get("inputs") or {}).get("files") or {}
    for name, f in files.items():
        out.print(f"  {name}: {f['path']} sha256 {f['sha256'][:12]}…", highlight=False)
    versions = run.get("versions") or {}
    out.print("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    if run.get("bundle"):
        out.print(f"  bundle: {run['bundle']}")
    if run.get("component"):
        out.print(f"  component: {run['component']} {run['version']}")
    dep = (run.get("summary") or {}).get("deployed")
    if dep:
        out.print(f"  deployed to {dep.get('to')}" + (" (dry run)" if dep.get("dry_run") else ""))


def compare_table(rows: list[dict[str, Any]], a: str, b: str) -> Table:
    table = Table(title=f"run {a} → {b}")
    for col in ("", "what", "A", "B", "change"):
        table.add_column(col, justify="right" if col in ("A", "B", "change") else "left")
    last = None
    for r in rows:
        ch = r["change"]
        if isinstance(ch, float):
            ch = f"{ch:+.1%}" if r["ratio"] else f"{ch:+.4g}"
        elif ch is None and r["a"] != r["b"]:
            ch = "changed"
        table.add_row(
            r["section"] if r["section"] != last else "",
            r["item"],
            _fmt(r["a"]),
            _fmt(r["b"]),
            ch or "",
        )
        last = r["section"]
    return table


@runs_app.command("compare")
@handle_errors
def compare_command(
    a: str = typer.Argument(..., help="First run id (or prefix)."),
    b: str = typer.Argument(..., help="Second run id (or prefix)."),
    store: Path = STORE,
    as_json: bool = JSON_OPTION,
) -> None:
    """What changed between two runs: metric per variant, latency per target, sizes, stages."""
    from edgekit.toolkit.pipeline.store import RunStore
    from edgekit.toolkit.pipeline.summary import compare

    s = RunStore.open_existing(store)
    try:
        ra, rb = s.get(a), s.get(b)
    finally:
        s.close()
    rows = compare(ra, rb)
    if as_json:
        print_json({"ok": True, "a": ra["id"], "b": rb["id"], "rows": rows})
        return
    out.print(compare_table(rows, ra["id"], rb["id"]))
