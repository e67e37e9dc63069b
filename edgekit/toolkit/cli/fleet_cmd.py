"""`edgekit fleet collect` (device telemetry from an MQTT broker or an SQS queue into SQLite or
PostgreSQL), `edgekit fleet report` (terminal summary, --json, self-contained HTML) and
`edgekit fleet setup-aws` (the queue, role and topic rule of the AWS path)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from edge_agent.errors import BadInputError
from edge_agent.signals import StopFlag
from edgekit.toolkit.cli import app, options
from edgekit.toolkit.cli.common import JSON_OPTION, err, handle_errors, out, print_json

fleet_app = typer.Typer(help="Collect device telemetry for a fleet and report on it.")
app.add_typer(fleet_app, name="fleet")

BUNDLE = typer.Option(
    None, "--bundle", help="Model bundle(s) the fleet runs: lab results and drift baselines."
)
RULES = typer.Option(None, "--rules", help="Alert rules and actions (JSON or YAML).")
STORE_HELP = (
    "The fleet store: a SQLite file, or postgresql://USER@HOST:PORT/DATABASE "
    "(several collectors on several hosts write one PostgreSQL)."
)


def store_target(db: Path | None, store: str | None) -> str | Path:
    """--store (a file or a URL) or --db (a SQLite file): exactly one."""
    if (db is None) == (store is None):
        raise BadInputError(
            "pass the fleet store once: --store FILE|postgresql://… (or --db FILE)",
            hint="e.g. --store fleet.db or --store postgresql://edgekit@db-host/fleet",
        )
    if db is not None:
        return db
    assert store is not None
    return store if "://" in store else Path(store)


def _status(collector, source, started: float, duration: float | None) -> Table:
    s = collector.stats
    t = Table(title="edgekit fleet collect", show_header=False)
    t.add_row(
        "broker" if not hasattr(source, "queue_url") else "queue",
        (f"{source.host}:{source.port} " if not hasattr(source, "queue_url") else source.host)
        + ("[green]connected[/]" if source.connected.is_set() else "[red]offline[/]"),
    )
    t.add_row("subscriptions", ", ".join(source.filters))
    elapsed = time.monotonic() - started
    t.add_row("elapsed", f"{elapsed:.0f}s" + (f" of {duration:g}s" if duration else ""))
    t.add_row("stored", f"{s.stored} ({', '.join(f'{k} {v}' for k, v in s.by_type.items())})")
    t.add_row("duplicates dropped", str(s.duplicates))
    t.add_row("rejected", str(s.rejected))
    t.add_row("alerts", str(s.alerts))
    return t


@fleet_app.command("collect")
@handle_errors
def collect_command(
    broker: str = typer.Option(None, "--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT"),
    sqs: str = typer.Option(
        None,
        "--sqs",
        help="Read an SQS queue that an AWS IoT Core topic rule fills (not --broker).",
    ),
    region: str = typer.Option(None, "--region", help="AWS region of the --sqs queue."),
    db: Path = typer.Option(None, "--db", help="SQLite database to write (created if new)."),
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    group: str = typer.Option(
        "edgekit",
        "--group",
        help="Shared-subscription group: collectors in one group split "
        "the fleet. Empty: subscribe without sharing.",
    ),
    duration: float | None = options.duration(None, "to collect (default: until Ctrl-C)"),
    client_id: str = typer.Option(
        None, "--client-id", help="MQTT client id (unique per collector; keeps its session)."
    ),
    cert: str = typer.Option(None, "--cert", help="Client certificate (mutual TLS)."),
    key: str = typer.Option(None, "--key", help="Client private key (mutual TLS)."),
    ca: str = typer.Option(None, "--ca", help="CA file to trust for the broker."),
    bundle: list[Path] = BUNDLE,
    rules: Path = RULES,
    as_json: bool = JSON_OPTION,
) -> None:
    """Subscribe to dt/edgekit/+/hello|metrics|alerts|bench and store (SQLite or PostgreSQL)."""
    from edgekit.toolkit.fleet.collector import Collector
    from edgekit.toolkit.fleet.mqtt_source import MqttSource
    from edgekit.toolkit.fleet.rules import RulesConfig

    target = store_target(db, store)
    seconds = duration
    config = RulesConfig.load(rules)
    for b in bundle or []:
        if not (b / "manifest.json").is_file():
            raise BadInputError(f"--bundle {b} is not a model bundle (no manifest.json)")
    if (broker is None) == (sqs is None):
        raise BadInputError(
            "pass one source: --broker mqtt://HOST:PORT or --sqs QUEUE_URL",
            hint="--sqs reads what an AWS IoT Core topic rule forwards (docs/fleet-scale.md)",
        )
    if sqs is not None:
        from edgekit.toolkit.fleet.sqs_source import SqsSource
        from edgekit.toolkit.greengrass.aws import Clients

        sqs_client = Clients(region=region).client("sqs")  # checks region and credentials
        SqsSource.check(sqs_client, sqs)  # before the store is made
    collector = Collector.open(target, bundles=bundle or [], config=config).start()
    where = collector.store.location
    if sqs is not None:
        source = SqsSource(collector, sqs, sqs_client)
    else:
        source = MqttSource(
            collector, broker, group=group or None, client_id=client_id, cert=cert, key=key, ca=ca
        )
    stopping = StopFlag().install()  # SIGTERM: a plain flag, as the agent takes it
    started = time.monotonic()
    try:
        source.start()
        with Live(
            _status(collector, source, started, seconds),
            console=err,
            refresh_per_second=2,
            transient=as_json,
        ) as live:
            while not stopping:
                if seconds is not None and time.monotonic() - started >= seconds:
                    break
                time.sleep(0.5)
                live.update(_status(collector, source, started, seconds))
    except KeyboardInterrupt:
        pass
    finally:
        stopping.restore()
        collector.flush(30)  # store (and acknowledge) what arrived before disconnecting
        source.stop()
        collector.evaluate()
        stats = collector.stats.to_dict()
        collector.close()
    if as_json:
        print_json({"ok": True, "db": where, "broker": broker or sqs, "group": group, **stats})
    else:
        out.print(
            f"stored {stats['stored']} messages in {where} "
            f"({stats['duplicates']} duplicates dropped, {stats['rejected']} rejected)"
        )


@fleet_app.command("report")
@handle_errors
def report_command(
    db: Path = typer.Option(None, "--db", help="Fleet database written by `fleet collect`."),
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    output: Path = options.output("the HTML report file."),
    bundle: list[Path] = BUNDLE,
    rules: Path = RULES,
    run_dir: Path = typer.Option(
        None, "--run-dir", help="A simulation's run folder: import its deployment history."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Terminal summary, --json, and a self-contained HTML report with plots."""
    from edgekit.toolkit.fleet.lab import BundleIndex
    from edgekit.toolkit.fleet.report import print_summary, write_html
    from edgekit.toolkit.fleet.rules import RulesConfig
    from edgekit.toolkit.fleet.stores import open_fleet_store
    from edgekit.toolkit.fleet.summary import fleet_summary, import_run_dir

    target = store_target(db, store)
    local = target if isinstance(target, Path) else None
    config = RulesConfig.load(rules)
    if run_dir is not None and not run_dir.is_dir():
        raise BadInputError(f"--run-dir {run_dir} is not a folder")
    for b in bundle or []:
        if not (b / "manifest.json").is_file():
            raise BadInputError(f"--bundle {b} is not a model bundle (no manifest.json)")
    if output is not None:
        from edge_agent import owned
        from edgekit.toolkit.reports.html import is_edgekit_report

        owned.check_file(
            output,
            is_edgekit_report,
            "an HTML report",
            [p for p in (local, run_dir, *(bundle or [])) if p is not None],
        )
    fleet = open_fleet_store(target, existing=True)
    try:
        roots = []
        if run_dir is not None:
            import_run_dir(fleet, run_dir)
            roots.append(run_dir / "devices")
        elif local is not None and (local.parent / "devices").is_dir():  # in a simulation's run
            roots.append(local.parent / "devices")
        bundles = BundleIndex(bundle or [], roots)
        summary = fleet_summary(fleet, bundles, config)
        if output is not None:
            write_html(summary, fleet, output)
            summary["html"] = str(output)
    finally:
        fleet.close()
    if as_json:
        print_json(summary)
        return
    print_summary(summary, out)
    if output is not None:
        out.print(f"report: {output}")


@fleet_app.command("setup-aws")
@handle_errors
def setup_aws_command(
    queue: str = typer.Option("edgekit-fleet", "--queue", help="SQS queue (made if absent)."),
    rule: str = typer.Option(
        "edgekit_fleet", "--rule", help="IoT Core topic rule (made, or replaced if it differs)."
    ),
    role: str = typer.Option(
        "edgekit-iot-to-sqs",
        "--role",
        help="IAM role IoT Core assumes to send to the queue (made if absent).",
    ),
    role_arn: str = typer.Option(
        None, "--role-arn", help="Use this existing role as it is (no role is made or changed)."
    ),
    region: str = typer.Option(None, "--region", help="AWS region (default: boto3 chain)."),
    profile: str = typer.Option(None, "--profile", help="AWS profile name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Make the AWS path: SQS queue, IAM role and the topic rule that forwards the fleet's
    telemetry to the queue, for `fleet collect --sqs`. Safe to run again."""
    from edgekit.toolkit.fleet.aws_setup import AwsPathRequest, setup_aws_path
    from edgekit.toolkit.greengrass.aws import Clients

    request = AwsPathRequest(queue=queue, rule=rule, role=role, role_arn=role_arn)
    result = setup_aws_path(Clients(region=region, profile=profile), request)
    if as_json:
        print_json(result)
        return
    table = Table(title="edgekit fleet setup-aws")
    for column in ("resource", "name", "action"):
        table.add_column(column)
    for step in result["steps"]:
        table.add_row(step["resource"], step["name"], step["action"])
    out.print(table)
    region_flag = f" --region {result['region']}" if result["region"] else ""
    out.print(
        f"collect with: edgekit fleet collect --sqs {result['queue_url']}{region_flag} "
        "--store fleet.db"
    )
