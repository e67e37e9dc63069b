"""The `edgekit` command. Each command lives in its own module and registers itself on `app`;
COMMAND_MODULES is the one list to extend when a stage adds a command.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

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


app = typer.Typer(
    cls=PathOrderedGroup,
    name="edgekit",
    help="Take a trained model to a fleet of edge devices and keep watching it there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

COMMAND_MODULES = [
    "toolkit.cli.export_cmd",
    "toolkit.cli.inspect_cmd",
    "toolkit.cli.demo_cmd",
    "toolkit.cli.quantize_cmd",
    "toolkit.cli.evaluate_cmd",
    "toolkit.cli.bench_cmd",
    "toolkit.cli.targets_cmd",
    "toolkit.cli.tune_cmd",
    "toolkit.cli.simulate_cmd",
    "toolkit.cli.sign_cmd",
    "toolkit.cli.package_cmd",
    "toolkit.cli.recipe_cmd",
    "toolkit.cli.publish_cmd",
    "toolkit.cli.deploy_cmd",
    "toolkit.cli.fleet_cmd",
    "toolkit.cli.run_cmd",
    "toolkit.cli.runs_cmd",
    "toolkit.cli.init_cmd",
]

for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    app()
