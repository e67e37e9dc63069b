"""The `edgekit` command. Each command lives in its own module and registers itself on `app`;
COMMAND_MODULES is the one list to extend when a stage adds a command.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from edgekit.toolkit.cli.options import EXIT_CODES

# `edgekit --help` lists commands in the order a model travels, not in registration order
# (typer would put every command group after the plain commands).
HELP_ORDER = [
    "demo",
    "export",
    "inspect",
    "quantize",
    "evaluate",
    "bench",
    "probe",
    "targets",
    "tune",
    "keygen",
    "sign",
    "package",
    "recipe",
    "publish",
    "deploy",
    "simulate",
    "fleet",
    "init",
    "run",
    "runs",
]


class PathOrderedGroup(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(HELP_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    cls=PathOrderedGroup,
    name="edgekit",
    help="Take a trained model to a fleet of edge devices and keep watching it there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings=CONTEXT,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"edgekit {version('edgekit')}")
        except PackageNotFoundError:  # a source checkout that was never installed
            typer.echo("edgekit (not installed)")
        raise typer.Exit(0)


@app.callback(epilog=EXIT_CODES)
def _root(
    show_version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Print the version and exit."
    ),
) -> None:
    """Take a trained model to a fleet of edge devices and keep watching it there."""


COMMAND_MODULES = [
    "edgekit.toolkit.cli.export_cmd",
    "edgekit.toolkit.cli.inspect_cmd",
    "edgekit.toolkit.cli.demo_cmd",
    "edgekit.toolkit.cli.quantize_cmd",
    "edgekit.toolkit.cli.evaluate_cmd",
    "edgekit.toolkit.cli.bench_cmd",
    "edgekit.toolkit.cli.targets_cmd",
    "edgekit.toolkit.cli.tune_cmd",
    "edgekit.toolkit.cli.simulate_cmd",
    "edgekit.toolkit.cli.sign_cmd",
    "edgekit.toolkit.cli.package_cmd",
    "edgekit.toolkit.cli.recipe_cmd",
    "edgekit.toolkit.cli.publish_cmd",
    "edgekit.toolkit.cli.deploy_cmd",
    "edgekit.toolkit.cli.fleet_cmd",
    "edgekit.toolkit.cli.run_cmd",
    "edgekit.toolkit.cli.runs_cmd",
    "edgekit.toolkit.cli.init_cmd",
]

for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def _end_help_with_exit_codes(typer_app: typer.Typer) -> None:
    """Every command's help ends with the exit codes: set once here, not in each module."""
    for command in typer_app.registered_commands:
        command.epilog = command.epilog or EXIT_CODES
        command.context_settings = {**CONTEXT, **(command.context_settings or {})}
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        if sub is not None:
            sub.info.epilog = sub.info.epilog or EXIT_CODES
            sub.info.context_settings = {**CONTEXT, **(sub.info.context_settings or {})}
            _end_help_with_exit_codes(sub)


_end_help_with_exit_codes(app)


def main() -> None:
    app()
