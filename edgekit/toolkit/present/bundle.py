"""Tables for a bundle: signature, variants, files, lineage and selection (`edgekit inspect`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from edge_agent.contracts.bundle import Bundle
from edgekit.toolkit.present.format import (
    compact_table,
    digest_column,
    fmt_bytes,
    fmt_mapping,
    fmt_shape,
    name_column,
    shorten_middle,
)


def _parity_cell(parity: dict[str, Any] | None) -> str:
    if not parity:
        return "-"
    parts = []
    for name, r in parity.get("outputs", {}).items():
        if r.get("kind") == "label":
            parts.append(f"{name}: {r['label_agreement']:.3f} agree")
        elif "max_abs_diff" in r:
            parts.append(f"{name}: Δ{r['max_abs_diff']:.2g}")
    mark = "✓" if parity.get("passed") else "✗"
    return f"{mark} " + ", ".join(parts)


def summary_tables(bundle: Bundle, problems: list) -> list[Table]:
    """The bundle in tables: signature, variants, files, lineage and (when chosen) the
    selection per target; `problems` (from the bundle's check) mark the files they name."""
    m = bundle.manifest
    bad = {p.file: p.problem for p in problems}
    tables = [_signature_table(m), _variants_table(m, bad), _files_table(m, bad), _lineage_table(m)]
    if m.get("selection"):
        tables.append(_selection_table(m))
    return tables


def _signature_table(m: dict[str, Any]) -> Table:
    sig = Table(title=f"{m['name']} — {m['task']} ({m['signature']['input_kind']})")
    sig.add_column("io")
    name_column(sig, "name")
    for col in ("dtype", "shape", "role"):
        sig.add_column(col)
    for io in ("inputs", "outputs"):
        for t in m["signature"][io]:
            sig.add_row(
                io[:-1],
                shorten_middle(t["name"], 32),
                t["dtype"],
                Text(fmt_shape(t["shape"])),  # `[batch, 8]` is not markup
                t.get("role", "-"),
            )
    return sig


def _variants_table(m: dict[str, Any], bad: dict[str, str]) -> Table:
    var = compact_table("variants")  # seven columns: borders would cost 22 of 80
    name_column(var, "variant")
    var.add_column("precision", min_width=9)
    name_column(var, "file")
    var.add_column("size", justify="right")
    digest_column(var)
    for col in ("parity", "status"):
        var.add_column(col)
    for name, v in m["variants"].items():
        status = (
            f"[red]{bad[v['file']]}[/]"
            if v["file"] in bad
            else (
                f"[yellow]rejected: {v.get('reject_reason')}[/]"
                if v.get("rejected")
                else "[green]ok[/]"
            )
        )
        var.add_row(
            shorten_middle(name),
            v["precision"],
            shorten_middle(v["file"]),
            fmt_bytes(v["bytes"]),
            v["sha256"][:12],
            _parity_cell(v.get("parity")),
            status,
        )
    return var


def _files_table(m: dict[str, Any], bad: dict[str, str]) -> Table:
    files = Table(title="files")
    name_column(files, "file")
    files.add_column("size", no_wrap=True)
    digest_column(files)
    files.add_column("status")
    for name, e in m["files"].items():
        files.add_row(
            shorten_middle(name, 32),
            fmt_bytes(e["bytes"]),
            e["sha256"][:12],
            f"[red]{bad[name]}[/]" if name in bad else "[green]ok[/]",
        )
    return files


def _lineage_table(m: dict[str, Any]) -> Table:
    lin = Table(title="lineage", show_header=False)
    lin.add_column("key")
    lin.add_column("value")
    lineage = m["lineage"]
    lin.add_row("framework", lineage["framework"])
    src = lineage.get("source", {})
    lin.add_row("source", f"{src.get('kind', '-')}: {src.get('factory') or src.get('path', '-')}")
    if src.get("sha256"):
        lin.add_row("source sha256", src["sha256"][:12])
    if src.get("weights"):
        lin.add_row("weights", f"{src['weights']['path']} sha256 {src['weights']['sha256'][:12]}")
    if lineage.get("exporter") == "legacy":
        lin.add_row("exporter", "legacy TorchScript exporter")
    data = lineage.get("data", {})
    lin.add_row(
        "data",
        f"{data.get('path', '-')} ({data.get('rows', '?')} rows) sha256 {str(data.get('sha256', '-'))[:12]}",
    )
    versions = ", ".join(f"{k} {v}" for k, v in lineage["versions"].items() if v)
    lin.add_row("versions", versions)
    lin.add_row("command", lineage["command"])
    return lin


def _selection_table(m: dict[str, Any]) -> Table:
    sel = Table(title="selection per target")
    name_column(sel, "target")
    name_column(sel, "variant")
    for col in ("session options", "reason"):
        sel.add_column(col)
    for target, s in m["selection"].items():
        sel.add_row(
            shorten_middle(target),
            shorten_middle(s["variant"]),
            fmt_mapping(s.get("session_options")),
            s.get("reason", ""),
        )
    return sel
