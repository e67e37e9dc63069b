"""`edgekit --help` lists every command, with one line each, in the order a model travels."""

from __future__ import annotations

import re

from typer.main import get_command
from typer.testing import CliRunner

from edgekit.toolkit.cli import HELP_ORDER, app


def test_help_lists_every_command_in_path_order():
    group = get_command(app)
    registered = set(group.list_commands(None))
    assert registered <= set(HELP_ORDER), (
        f"place new commands in HELP_ORDER: {registered - set(HELP_ORDER)}"
    )
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    listed = re.findall(r"^│ ([a-z]+) ", result.output, flags=re.M)
    assert listed == [name for name in HELP_ORDER if name in registered]
    for name in registered:
        assert group.get_command(None, name).get_short_help_str(limit=200).strip(), name
