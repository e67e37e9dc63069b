"""`edgekit publish`: upload artifacts to S3 and create the Greengrass component version."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json
from edgekit.toolkit.greengrass.aws import Clients
from edgekit.toolkit.greengrass.publish import PublishRequest, publish


def print_calls(calls: list[dict]) -> None:
    out.print("[bold]dry run[/]: these calls would be made, in this order:")
    for i, call in enumerate(calls, 1):
        params = json.dumps(call["params"], indent=2, default=str)
        out.print(f"{i}. {call['service']}.{call['operation']}", highlight=False)
        out.print(params, highlight=False, markup=False)


@app.command("publish")
@handle_errors
def publish_command(
    build_dir: Path = typer.Argument(..., help="The folder `edgekit package -o` wrote."),
    bucket: str = typer.Option(..., "--bucket", help="S3 bucket for the artifacts."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: boto3 chain)."),
    profile: str | None = typer.Option(None, "--profile", help="AWS profile name."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Recipe file, when several."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the exact calls; call nothing."),
    wait_timeout: float = options.duration_of(
        "300s", "--wait-timeout", "How long to wait for DEPLOYABLE"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Publish a packaged component: S3 upload, create_component_version, wait for DEPLOYABLE."""
    request = PublishRequest(
        build_dir=build_dir,
        bucket=bucket,
        recipe=recipe,
        dry_run=dry_run,
        wait_timeout_s=wait_timeout,
    )
    clients = Clients(region=region, profile=profile)
    with err.status("publishing…") as status:
        result = publish(request, clients, progress=lambda m: status.update(f"publishing: {m}…"))
    if as_json:
        print_json(result)
        return
    if result["dry_run"]:
        print_calls(result["calls"])
        return
    out.print(
        f"[green]✓[/] {result['component']} {result['version']} is {result['state']}: "
        f"[bold]{result['arn']}[/]"
    )
    for uri in result["uploaded"]:
        out.print(f"  uploaded {uri}", highlight=False)
