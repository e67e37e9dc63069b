"""`edgekit recipe validate`: any Greengrass recipe against the official schema and the checks
the schema does not make."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgekit.toolkit.cli import app
from edgekit.toolkit.cli.common import JSON_OPTION, handle_errors, out, print_json
from edgekit.toolkit.greengrass.validate import validate_file

recipe_app = typer.Typer(help="Greengrass recipes.", no_args_is_help=True)
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("validate")
@handle_errors
def validate_command(
    file: Path = typer.Argument(..., help="Recipe file (JSON or YAML)."),
    artifacts: Path | None = typer.Option(
        None,
        "--artifacts",
        help="Folder with the artifact files, to check digests "
        "(default: ../artifacts/<name>/<version> beside a recipes/ folder).",
    ),
    no_lite: bool = typer.Option(False, "--no-lite", help="Hide nucleus-lite warnings."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate a recipe; every problem with its JSON path. Exit 1 on any error."""
    report = validate_file(file, artifacts_dir=artifacts)
    problems = [p for p in report.problems if not (no_lite and p.lite)]
    if as_json:
        data = report.to_dict()
        data["problems"] = [p.to_dict() for p in problems]
        print_json(data)
    else:
        if problems:
            table = Table(title=f"{file} ({report.size_bytes:,} bytes)")
            for col in ("severity", "path", "code", "problem"):
                table.add_column(col)
            for p in problems:
                color = "red" if p.severity == "error" else "yellow"
                table.add_row(f"[{color}]{p.severity}[/]", p.path, p.code, p.message)
            out.print(table)
        where = report.artifacts_dir or "not checked (no artifacts folder)"
        mark = "[green]✓ valid[/]" if report.ok else "[bold red]✗ invalid[/]"
        warnings = sum(1 for p in problems if p.severity == "warning")
        hidden = len(report.problems) - len(problems)
        out.print(
            f"{mark}: {len(report.errors)} errors, {warnings} warnings"
            + (f" ({hidden} nucleus-lite notes hidden)" if hidden else "")
            + f"; artifact digests: {where}"
        )
    if not report.ok:
        raise typer.Exit(1)
