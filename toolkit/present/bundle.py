"""Tables for a bundle: signature, variants, files, lineage and selection (`edgekit inspect`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from edge_agent.contracts.bundle import Bundle
from toolkit.present.format import fmt_bytes


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
    m = bundle.manifest
    sig = Table(title=f"{m['name']} — {m['task']} ({m['signature']['input_kind']})")
    for col in ("io", "name", "dtype", "shape", "role"):
        sig.add_column(col)
    for io in ("inputs", "outputs"):
        for t in m["signature"][io]:
            sig.add_row(io[:-1], t["name"], t["dtype"], str(t["shape"]), t.get("role", "-"))

    bad = {p.file: p.problem for p in problems}
    var = Table(title="variants")
    for col in ("variant", "precision", "file", "size", "sha256", "parity", "status"):
        var.add_column(col, justify="right" if col == "size" else "left")
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
            name,
            v["precision"],
            v["file"],
            fmt_bytes(v["bytes"]),
            v["sha256"][:12],
            _parity_cell(v.get("parity")),
            status,
        )

    files = Table(title="files")
    for col in ("file", "size", "sha256", "status"):
        files.add_column(col)
    for name, e in m["files"].items():
        files.add_row(
            name,
            fmt_bytes(e["bytes"]),
            e["sha256"][:12],
            f"[red]{bad[name]}[/]" if name in bad else "[green]ok[/]",
        )

    lin = Table(title="lineage", show_header=False)
    lin.add_column("key")
    lin.add_column("value")
    lineage = m["lineage"]
    lin.add_row("framework", lineage["framework"])
    src = lineage.get("source", {})
    lin.add_row("source", f"{src.get('kind', '-')}: {src.get('factory') or src.get('path', '-')}")
    if src.get("sha256"):
        lin.add_row("source sha256", src["sha256"])
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
    tables = [sig, var, files, lin]
    if m.get("selection"):
        sel = Table(title="selection per target")
        for col in ("target", "variant", "session options", "reason"):
            sel.add_column(col)
        for target, s in m["selection"].items():
            sel.add_row(
                target, s["variant"], str(s.get("session_options", {})), s.get("reason", "")
            )
        tables.append(sel)
    return tables
