"""What each pipeline stage shows when it has run: the tables of its own command (`edgekit
export`'s bundle summary, `evaluate`'s report, `bench`'s results, `tune`'s Pareto front...)
drawn from the stage's result record. `edgekit run` and `edgekit demo` both print them through
`progress_printer`, so the demo has no tables of its own.

A view is registered per stage name and yields rich renderables or lines of console markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from rich.table import Table

from edgekit.toolkit.present.format import compact_table, fmt_num, shorten_end

View = Callable[[dict[str, Any]], Iterator[Any]]
VIEWS: dict[str, View] = {}


def view(name: str) -> Callable[[View], View]:
    def register(fn: View) -> View:
        VIEWS[name] = fn
        return fn

    return register


def stage_view(name: str, result: dict[str, Any]) -> list[Any]:
    """The renderables for one stage's result (none for a stage without a view)."""
    fn = VIEWS.get(name)
    return list(fn(result)) if fn else []


@view("train")
def _train(r: dict[str, Any]) -> Iterator[Any]:
    metrics = r.get("metrics") or {}
    if metrics:
        shown = ", ".join(f"{k} {fmt_num(v, '.3f')}" for k, v in metrics.items())
        yield f"  trained: {shown} → {r['model']}"


@view("export")
def _export(r: dict[str, Any]) -> Iterator[Any]:
    from edge_agent.contracts.bundle import Bundle
    from edgekit.toolkit.present.bundle import summary_tables

    yield from summary_tables(Bundle.open(r["bundle"]), [])


@view("quantize")
def _quantize(r: dict[str, Any]) -> Iterator[Any]:
    table = compact_table("quantized variants (compared with FP32 on the stored samples)")
    for col in ("requested", "variant", "method", "size", "label agreement", "min cosine"):
        numeric = col in ("size", "label agreement", "min cosine")
        table.add_column(col, justify="right" if numeric else "left")
    for method, v in (r.get("variants") or {}).items():
        table.add_row(
            method,
            v["variant"],
            v["method"],
            f"{v['size_ratio']:.2f}×",
            fmt_num(v.get("label_agreement")),
            fmt_num(v.get("min_cosine"), ".5f"),
        )
    for method, why in (r.get("refused") or {}).items():
        table.add_row(method, "-", "refused", "-", "-", why[:60])
    yield table
    for method, v in (r.get("variants") or {}).items():
        for reason in v.get("reasons") or []:
            yield f"  [dim]{method}:[/] {reason}"


@view("evaluate")
def _evaluate(r: dict[str, Any]) -> Iterator[Any]:
    from edgekit.toolkit.present.evaluate import report_renderables

    if r.get("report"):
        yield from report_renderables(r["report"])
    deployed = r.get("deployed")
    if deployed:
        yield (
            f"  deployed version: {deployed['metric']} {deployed['deployed']} → "
            f"new {deployed['new']}"
        )


@view("bench")
def _bench(r: dict[str, Any]) -> Iterator[Any]:
    from edgekit.toolkit.present.bench import results_table

    if r.get("run"):
        yield results_table(r["run"])
    for s in r.get("skipped") or []:
        yield f"  [yellow]skipped[/] {s['what']}: {s['reason']}"
    if r.get("report"):
        yield f"  report: {r['report']}"


@view("tune")
def _tune(r: dict[str, Any]) -> Iterator[Any]:
    from edgekit.toolkit.present.tune import front_table_from

    for target, sel in (r.get("selection") or {}).items():
        if sel.get("front"):
            yield front_table_from(sel["front"])
        yield f"  [bold]→ {target}[/]: {sel['reason']}"
        for note in sel.get("notes") or []:
            yield f"  [yellow]note[/]: {note}"


@view("package")
def _package(r: dict[str, Any]) -> Iterator[Any]:
    table = Table(title=f"Greengrass component {r['component']} {r['version']}")
    for col in ("platform", "target", "variant", "why", "preflight"):
        table.add_column(col)
    for p in r.get("plans") or []:
        issues = ", ".join(f"{f['severity']}: {f['check']}" for f in p["findings"]) or "ok"
        table.add_row(
            p["platform"], p["target"] or "-", p["variant"], shorten_end(p["reason"]), issues
        )
    yield table
    v = r.get("validation") or {}
    if v:
        mark = "[green]✓[/]" if v.get("ok") else "[red]✗[/]"
        yield (
            f"{mark} recipe {r['recipe']} validates ({v['size_bytes']:,} bytes, "
            f"{v['errors']} errors, {r.get('lite_notes', 0)} nucleus-lite notes); artifacts: "
            + ", ".join(f"{f} {d[:12]}…" for f, d in (r.get("artifacts") or {}).items())
        )
    if r.get("signed_by"):
        yield f"signed with Ed25519 key {r['signed_by']}; devices verify with verify_key"


@view("simulate")
def _simulate(r: dict[str, Any]) -> Iterator[Any]:
    for thing, x in (r.get("rollout") or {}).items():
        yield (
            f"  {thing}: deployment {x['detailed_status']} in {x['duration_s']:.1f} s "
            f"(offline install, RUNNING over IPC) {x.get('reason') or ''}"
        ).rstrip()
    yield fleet_result_table(r)
    fleet = r.get("fleet") or {}
    if fleet:
        yield (
            f"  fleet collector: {fleet.get('stored', 0)} messages stored in {fleet.get('db')}, "
            f"{fleet.get('duplicates', 0)} duplicates dropped, {fleet.get('lost', 0)} lost, "
            f"{fleet.get('alerts', 0)} fleet-side alerts (device alerts and fleet-wide drift)"
        )
    yield f"  run folder: {r['run_dir']} (summary.json, cloud.jsonl, devices/*/logs)"
    if r.get("report"):
        yield f"  fleet report: {r['report']}"


def fleet_result_table(r: dict[str, Any]) -> Table:
    """Per simulated device: state, requests, errors, p99, metrics messages, alerts fired."""
    after = r.get("drift_after_s")
    table = Table(
        title="simulated fleet: what reached the cloud",
        caption=f"* inputs drifted after {after:.0f} s" if after is not None else None,
    )
    for col in ("device", "state", "requests", "errors", "p99 ms", "metrics", "alerts fired"):
        left = col in ("device", "state", "alerts fired")
        table.add_column(col, justify="left" if left else "right")
    drifted = set(r.get("drifted") or [])
    fired = r.get("alerts_fired") or {}
    for thing, state in (r.get("devices") or {}).items():
        load = (r.get("load") or {}).get(thing, {})
        p99 = load.get("p99_ms")
        table.add_row(
            thing + ("*" if thing in drifted else ""),
            state,
            str(load.get("ok", 0)),
            str(load.get("errors", 0)),
            "-" if p99 is None else f"{p99:.1f}",
            str((r.get("messages") or {}).get(thing, {}).get("metrics", 0)),
            " ".join(fired.get(thing, [])) or "-",
        )
    return table
