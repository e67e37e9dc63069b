"""`edgekit probe` (this machine's hardware profile) and `edgekit targets` (the target profiles
that tune chooses for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edge_agent import hardware
from edgekit.toolkit.cli import app
from edgekit.toolkit.cli.common import JSON_OPTION, fmt_bytes, handle_errors, out, print_json
from edgekit.toolkit.targets import can_emulate, get_target, load_targets, local_profile

TARGETS_DIR_OPTION = typer.Option(
    None,
    "--targets-dir",
    help="Folder of extra <name>.yaml target profiles (they replace shipped ones of that name).",
    file_okay=False,
)


def probe_table(p: dict[str, Any]) -> Table:
    t = Table(title="this machine", show_header=False)
    t.add_column("key")
    t.add_column("value")
    plat = p["platform"]
    cpu = p["cpu"]
    t.add_row("os (Greengrass)", plat["os"])
    t.add_row("architecture (Greengrass)", plat["architecture"])
    t.add_row("architecture.detail", plat.get("architecture.detail") or "-")
    t.add_row("CPU", str(cpu["model"]))
    t.add_row(
        "cores",
        f"{cpu['physical_cores']} physical, {cpu['logical_cores']} logical, "
        f"{cpu['usable_cores']} usable by this process",
    )
    on = [k for k, v in cpu["features"].items() if v]
    off = [k for k, v in cpu["features"].items() if not v]
    t.add_row("ISA features", "[green]" + " ".join(on) + "[/]" if on else "-")
    t.add_row("absent", "[dim]" + " ".join(off) + "[/]" if off else "-")
    t.add_row("memory", fmt_bytes(p["memory_bytes"]))
    gpus = ", ".join(f"{g['vendor']} {g.get('model') or ''}" for g in p["gpus"]) or "none"
    t.add_row("GPUs", gpus)
    ort = p["onnxruntime"]
    t.add_row("onnxruntime", f"{ort['version']}: {', '.join(ort['providers']) or '-'}")
    t.add_row("OS", f"{p['os']['system']} {p['os']['release']}")
    t.add_row("Python", p["python"])
    return t


@app.command("probe")
@handle_errors
def probe_command(as_json: bool = JSON_OPTION) -> None:
    """This machine's hardware profile: Greengrass platform, CPU, ISA features, memory, providers."""
    p = hardware.probe()
    if as_json:
        print_json(p)
        return
    out.print(probe_table(p))
    local = local_profile(p)
    prefs = ", ".join(r["kind"] for r in local.prefer)
    out.print(f"quantization preferences for `--target local`: {prefs}")


def _targets_table(targets: dict[str, Any]) -> Table:
    local = targets.get("local") or local_profile()
    t = Table(title="target profiles")
    for col in ("name", "platform", "cores", "memory", "ISA", "providers", "prefers", "here"):
        t.add_column(col, justify="right" if col in ("cores", "memory") else "left")
    for name, prof in targets.items():
        s = prof.summary()
        emu = can_emulate(prof, local)
        here = (
            "[green]measured[/]"
            if prof.is_local
            else ("[green]emulated[/]" if emu.possible else "[yellow]profile only[/]")
        )
        t.add_row(
            name,
            f"{s['os']}/{s['architecture']}",
            str(s["cores"]),
            f"{s['memory_mb'] / 1024:.0f} GB" if s["memory_mb"] >= 1024 else f"{s['memory_mb']} MB",
            " ".join(s["features"]) or "-",
            ", ".join(p.replace("ExecutionProvider", "") for p in s["providers"]),
            " > ".join(s["prefer"]),
            here,
        )
    return t


def _profile_table(prof: Any) -> Table:
    t = Table(title=f"{prof.name}: {prof.title}", show_header=False)
    t.add_column("key")
    t.add_column("value")
    t.add_row("source", prof.source)
    if prof.data.get("description"):
        t.add_row("description", prof.data["description"])
    t.add_row("platform", ", ".join(f"{k}={v}" for k, v in prof.platform.items()))
    t.add_row("cpu", f"{prof.data['cpu']['model']}: {prof.cores} cores, {prof.threads} threads")
    t.add_row("ISA features", " ".join(sorted(prof.features)) or "-")
    t.add_row(
        "memory",
        f"{prof.data['memory_mb']} MB (model may use {fmt_bytes(prof.model_memory_budget)})",
    )
    t.add_row("gpu", str(prof.gpu.get("model")) if prof.gpu else "none")
    t.add_row("providers", ", ".join(prof.providers))
    for i, r in enumerate(prof.prefer, 1):
        settings = ", ".join(
            f"{k}={v}" for k, v in r.items() if k not in ("kind", "why", "providers")
        )
        on = f" on {', '.join(r['providers'])}" if r.get("providers") else ""
        t.add_row(f"prefer {i}", f"{r['kind']}{on} ({settings or 'defaults'}): {r['why']}")
    for kind, reason in prof.avoid.items():
        t.add_row("avoid", f"{kind}: {reason}")
    for note in prof.notes:
        t.add_row("note", note)
    return t


@app.command("targets")
@handle_errors
def targets_command(
    name: str = typer.Argument(None, help="Show one profile in full."),
    targets_dir: Path = TARGETS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List the hardware target profiles (shipped, yours from --targets-dir, and `local`)."""
    if name:
        prof = get_target(name, targets_dir)
        if as_json:
            print_json(prof.to_dict())
        else:
            out.print(_profile_table(prof))
        return
    targets = load_targets(targets_dir)
    if as_json:
        local = targets["local"]
        print_json(
            {
                "targets": [
                    {**p.to_dict(), "emulation": vars(can_emulate(p, local))}
                    for p in targets.values()
                ]
            }
        )
        return
    out.print(_targets_table(targets))
    out.print(
        "[dim]here: measured = this machine; emulated = same instruction-set tier, measured "
        "with threads capped; profile only = ranked by its preferences, nothing measured[/]"
    )
