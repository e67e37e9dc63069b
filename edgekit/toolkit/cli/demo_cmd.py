"""`edgekit demo`: train two small models and take them down the whole path: a thin wrapper that
runs the pipeline files shipped in edgekit/toolkit/demo/pipelines on the pipeline runner."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json


@app.command("demo")
@handle_errors
def demo_command(
    output: Path = options.output(
        "the folder for everything the demo makes.", Path("edgekit-demo")
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Shorter training and measurements (for tests)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the whole path on a scikit-learn pipeline and a PyTorch CNN, offline."""
    from edgekit.toolkit.demo import FAILED, run_demo
    from edgekit.toolkit.demo import output as demo_output
    from edgekit.toolkit.demo.results import demo_json

    console = err if as_json else out
    # absolute here, where it is decided: stages hand paths under it to processes (the agents
    # on the simulated devices) that run in folders of their own
    output = output.expanduser().absolute()
    demo_output.claim(output)  # a folder of the user's files: exit 2 before anything runs
    try:
        demo = run_demo(output, console, quick=quick)
    finally:
        demo_output.seal(output)
    statuses = demo.statuses()
    failed = [s for s in statuses if s.status == FAILED]
    seconds = sum(s.seconds for s in statuses)
    if as_json:
        print_json(demo_json(demo, output))
    elif failed:
        console.print(f"[red]✗ demo failed[/] in {seconds:.0f} s; everything is under {output}")
    else:
        console.print(f"[green]✓ demo finished[/] in {seconds:.0f} s; everything is under {output}")
    if failed:
        for s in failed:
            err.print(f"[red]✗ stage {s.name} failed:[/] {s.reason}", highlight=False)
        raise typer.Exit(1)
