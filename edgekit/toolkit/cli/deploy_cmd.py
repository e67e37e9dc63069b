"""`edgekit deploy` (create a Greengrass deployment) and `edgekit deploy status`."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json
from edgekit.toolkit.cli.publish_cmd import print_calls
from edgekit.toolkit.greengrass.aws import Clients
from edgekit.toolkit.greengrass.deploy import (
    DeployRequest,
    Rollout,
    deploy,
    parse_components,
    parse_merges,
    parse_resets,
    resolve_target,
    status,
    status_failed,
)

deploy_app = typer.Typer(
    help="Deploy components to a thing or thing group; `deploy status` for each device's state.",
    invoke_without_command=True,
)
app.add_typer(deploy_app, name="deploy")

TARGET_ARN = typer.Option(None, "--target-arn", help="Thing or thing-group ARN.")
THING = typer.Option(None, "--thing", help="Thing name (resolved to its ARN).")
GROUP = typer.Option(None, "--thing-group", help="Thing group name (resolved to its ARN).")
REGION = typer.Option(None, "--region", help="AWS region (default: boto3 chain).")
PROFILE = typer.Option(None, "--profile", help="AWS profile name.")


def _minutes(seconds: float | None, old_minutes: int | None) -> int | None:
    """IoT Jobs counts the in-progress timeout in whole minutes (at least one)."""
    if old_minutes is not None:
        return options.merged(None, old_minutes, "--job-timeout-minutes", "--job-timeout")
    return None if seconds is None else max(1, math.ceil(seconds / 60))


@deploy_app.callback()
@handle_errors
def deploy_command(
    ctx: typer.Context,
    target_arn: str | None = TARGET_ARN,
    thing: str | None = THING,
    thing_group: str | None = GROUP,
    components: list[str] = typer.Option([], "--component", help="NAME=VERSION (repeat)."),
    merge: list[str] = typer.Option(
        [], "--merge", help="NAME=JSON or NAME=@file.json: configuration MERGE."
    ),
    reset: list[str] = typer.Option([], "--reset", help="NAME=/json/pointer: configuration RESET."),
    failure_policy: str = typer.Option("ROLLBACK", "--failure-policy", help="ROLLBACK|DO_NOTHING."),
    update_policy: str = typer.Option(
        "NOTIFY_COMPONENTS", "--update-policy", help="NOTIFY_COMPONENTS|SKIP_NOTIFY_COMPONENTS."
    ),
    update_timeout: float = options.duration_of(
        "60s", "--update-timeout", "How long components may defer an update"
    ),
    rollout_rate: int | None = typer.Option(
        None, "--rollout-rate", help="IoT Jobs: devices per minute at the start."
    ),
    rollout_increment: float = typer.Option(2.0, "--rollout-increment", help="Rate multiplier."),
    rollout_after: int = typer.Option(
        5, "--rollout-after", help="Raise the rate after this many more devices succeed."
    ),
    rollout_max: int | None = typer.Option(None, "--rollout-max", help="Devices per minute cap."),
    abort_percent: float | None = typer.Option(
        None, "--abort-percent", help="Cancel when this % of executed devices fail."
    ),
    abort_min: int = typer.Option(10, "--abort-min", help="...once at least this many executed."),
    abort_on: str = typer.Option("ALL", "--abort-on", help="FAILED|REJECTED|TIMED_OUT|ALL."),
    job_timeout: float | None = options.duration_of(
        None, "--job-timeout", "Per-device in-progress timeout, whole minutes"
    ),
    job_timeout_minutes: int | None = options.alias(
        "--job-timeout-minutes", "--job-timeout", default=None
    ),
    name: str | None = typer.Option(None, "--name", help="Deployment name."),
    nucleus_version: str | None = typer.Option(
        None,
        "--nucleus-version",
        help="Include aws.greengrass.Nucleus at this version (the one your devices run, "
        "2.6.0+) with interpolateComponentConfiguration=true.",
    ),
    parent_target_arn: str | None = typer.Option(
        None, "--parent-target-arn", help="Subdeployment of this thing group's deployment."
    ),
    package_report: Path | None = typer.Option(
        None, "--package-report", help="<name>-<version>.edgekit.json from edgekit package."
    ),
    region: str | None = REGION,
    profile: str | None = PROFILE,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the exact calls; call nothing."),
    ignore_preflight: bool = options.ignore_preflight(),
    force: bool = options.alias("--force", "--ignore-preflight"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a Greengrass deployment (preflight first)."""
    if ctx.invoked_subcommand is not None:
        return
    if not components:
        raise BadInputError(
            "no --component NAME=VERSION given",
            hint="edgekit deploy --target-arn ARN --component NAME=VERSION",
        )
    request = DeployRequest(
        components=parse_components(components),
        target_arn=target_arn,
        thing=thing,
        thing_group=thing_group,
        merge=parse_merges(merge),
        reset=parse_resets(reset),
        failure_policy=failure_policy.upper(),
        update_action=update_policy.upper(),
        update_timeout_s=max(1, round(update_timeout)),
        rollout=Rollout(
            base_rate=rollout_rate,
            increment=rollout_increment,
            after_succeeded=rollout_after,
            max_per_minute=rollout_max,
            abort_percent=abort_percent,
            abort_min_executed=abort_min,
            abort_on=abort_on.upper(),
            timeout_minutes=_minutes(job_timeout, job_timeout_minutes),
        ),
        name=name,
        nucleus_version=nucleus_version,
        parent_target_arn=parent_target_arn,
        package_report=package_report,
        dry_run=dry_run,
        force=options.merged(ignore_preflight, force, "--force", "--ignore-preflight"),
    )
    clients = Clients(region=region, profile=profile)
    with err.status("deploying…"):
        result = deploy(request, clients)
    if as_json:
        print_json(result)
        return
    for f in result["findings"]:
        color = "red" if f["severity"] == "error" else "yellow"
        err.print(f"[{color}]{f['severity']}:[/] {f['subject']}: {f['message']}", highlight=False)
    if result["dry_run"]:
        print_calls(result["calls"])
        return
    out.print(
        f"[green]✓[/] deployment [bold]{result['deployment_id']}[/] to {result['target_arn']}"
        + (f" (IoT job {result['iot_job_id']})" if result.get("iot_job_id") else "")
    )
    out.print(f"follow it: edgekit deploy status --target-arn {result['target_arn']}")


@deploy_app.command("status")
@handle_errors
def status_command(
    target_arn: str | None = TARGET_ARN,
    thing: str | None = THING,
    thing_group: str | None = GROUP,
    component: str | None = typer.Option(None, "--component", help="Only this component."),
    region: str | None = REGION,
    profile: str | None = PROFILE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Each core device's health, latest deployment status and component state (exit 1 if any
    failed)."""
    clients = Clients(region=region, profile=profile)
    target = resolve_target(
        DeployRequest(components={}, target_arn=target_arn, thing=thing, thing_group=thing_group),
        clients,
    )
    rows = status(clients, target, component)
    failed = status_failed(rows)
    if as_json:
        print_json({"ok": not failed, "target_arn": target, "devices": rows})
    else:
        table = Table(title=f"deployments to {target}")
        for col in ("thing", "health", "platform", "deployment", "status", "components", "reason"):
            table.add_column(col)
        for r in rows:
            comps = ", ".join(f"{c['name']} {c['version']} {c['state']}" for c in r["components"])
            table.add_row(
                r["thing"],
                str(r["health"]),
                r["platform"],
                str(r["deployment"] or "-"),
                str(r["execution"] or "-"),
                comps or "-",
                str(r["reason"] or ""),
            )
        out.print(table)
        if not rows:
            out.print("no Greengrass core devices in this target")
    if failed:
        raise typer.Exit(1)
