"""`edgekit init`: write a commented starter pipeline that runs as is."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, handle_errors, out, print_json


@app.command("init")
@handle_errors
def init_command(
    framework: str = typer.Option("sklearn", "--framework", help="sklearn or torch."),
    output: Path = options.output(
        "the pipeline file (the starter files go beside it).", Path("pipeline.yaml")
    ),
    overwrite: bool = options.overwrite("the starter files"),
    force: bool = options.alias("--force", "--overwrite"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write pipeline.yaml with a training script and example data beside it."""
    from edgekit.toolkit.pipeline.starter import write_starter

    force = options.merged(overwrite, force, "--force", "--overwrite")
    written = write_starter(output, framework, force)
    if as_json:
        print_json({"ok": True, "pipeline": str(output), "files": [str(p) for p in written]})
        return
    out.print(f"[green]✓[/] wrote {', '.join(str(p) for p in written)}")
    out.print(f"next: edgekit run {output}   (then edit train.py, the data and the stages)")
