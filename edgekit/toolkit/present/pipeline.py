"""Pipeline runner output: the plan table and the stage progress lines (`edgekit run`, the demo)."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table

from edgekit.toolkit.present.format import shorten_middle
from edgekit.toolkit.present.stages import stage_view

MARKS = {"run": "[cyan]run[/]", "cached": "[green]cached[/]", "stop": "[yellow]stop[/]"}


def plan_table(plan: list[Any], title: str) -> Table:
    table = Table(title=title)
    for col in ("#", "stage", "action", "key", "options"):
        table.add_column(col)
    for i, p in enumerate(plan, 1):
        action = MARKS[p.action] + (" (forced)" if p.forced and p.cached else "")
        table.add_row(str(i), p.name, action, p.key[:12], shorten_middle(p.stage.describe(), 60))
    return table


def progress_printer(console: Any, views: bool = True) -> tuple[Any, Any]:
    """Stage events as lines (with a spinner while a stage runs) and stage messages dimmed; a
    stage that ran shows its own tables (`edgekit.toolkit.present.stages`) unless `views` is off."""
    status: dict[str, Any] = {}

    def on_event(kind: str, p: Any, info: dict[str, Any]) -> None:
        if kind == "started":
            console.print(f"[bold]▶ {p.name}[/] [dim]{p.key[:12]}[/]")
            status["s"] = console.status(f"{p.name}…")
            status["s"].start()
            status["t"] = time.perf_counter()
            return
        if "s" in status:
            status.pop("s").stop()
        if kind == "cached":
            console.print(f"[green]↺ {p.name}[/] cached [dim]{p.key[:12]}[/]")
        elif kind == "done":
            if views:
                for item in stage_view(p.name, info):
                    console.print(item, highlight=False)
            console.print(f"[green]✓ {p.name}[/] {info['seconds']:.2f} s")
        elif kind == "failed":
            console.print(f"[red]✗ {p.name}[/] after {info['seconds']:.2f} s: {info['error']}")
        elif kind == "stopped":
            w = info["would_deploy"]
            console.print(
                f"[yellow]■ stopped before {p.name}[/]: would deploy {w['component']} "
                f"{w['version']} to {w['target']}"
            )

    def say(stage: str, message: str) -> None:
        console.print(f"  [dim]{stage}: {message}[/]", highlight=False)

    return on_event, say
