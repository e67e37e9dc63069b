"""`edgekit demo`: train two small models and take them down the whole path."""

from __future__ import annotations

from pathlib import Path

import typer

from toolkit.cli import app, options
from toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json


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
    from toolkit.demo import FAILED, DemoContext, run_stages
    from toolkit.demo import output as demo_output

    console = err if as_json else out
    # absolute here, where it is decided: stages hand paths under it to processes (the agents
    # on the simulated devices) that run in folders of their own
    output = output.expanduser().absolute()
    demo_output.claim(output)  # a folder of the user's files: exit 2 before anything runs
    ctx = DemoContext(out=output, console=console, quick=quick)
    try:
        statuses = run_stages(ctx, lambda name: console.rule(f"[bold]{name}"))
    finally:
        demo_output.seal(output)
    failed = [s for s in statuses if s.status == FAILED]
    seconds = sum(s.seconds for s in statuses)
    if as_json:
        print_json(
            {
                "ok": not failed,
                "output": str(output),
                "failed": [s.name for s in failed],
                "stages": {s.name: s.to_dict() for s in statuses},
                "timings_s": {s.name: s.seconds for s in statuses},
                **ctx.results,
            }
        )
    elif failed:
        console.print(f"[red]✗ demo failed[/] in {seconds:.0f} s; everything is under {output}")
    else:
        console.print(f"[green]✓ demo finished[/] in {seconds:.0f} s; everything is under {output}")
    if failed:
        for s in failed:
            err.print(f"[red]✗ stage {s.name} failed:[/] {s.reason}", highlight=False)
        raise typer.Exit(1)
