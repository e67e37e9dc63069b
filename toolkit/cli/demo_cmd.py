"""`edgekit demo`: train two small models and take them down the whole path."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from toolkit.cli import app
from toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json


@app.command("demo")
@handle_errors
def demo_command(
    output: Path = typer.Option(
        Path("edgekit-demo"), "-o", "--output", help="Folder for everything the demo makes."
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Shorter training and measurements (for tests)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the whole path on a scikit-learn pipeline and a PyTorch CNN, offline."""
    from toolkit.demo import DemoContext, stages
    from toolkit.demo import output as demo_output

    console = err if as_json else out
    demo_output.claim(output)  # a folder of the user's files: exit 2 before anything runs
    ctx = DemoContext(out=output, console=console, quick=quick)
    timings = {}
    try:
        for _, name, fn in stages():
            console.rule(f"[bold]{name}")
            started = time.perf_counter()
            fn(ctx)
            timings[name] = round(time.perf_counter() - started, 2)
    finally:
        demo_output.seal(output)
    if as_json:
        print_json({"ok": True, "output": str(output), "timings_s": timings, **ctx.results})
    else:
        console.print(
            f"[green]✓ demo finished[/] in {sum(timings.values()):.0f} s; everything is under {output}"
        )
