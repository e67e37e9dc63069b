"""The edge-agent CLI follows edgekit's conventions with stdlib argparse only: -h and --help,
--version, the exit codes at the end of every help, durations with units."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge_agent.cli import EXIT_CODES, _parser

AGENT = [sys.executable, "-m", "edge_agent"]


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["serve", "-h"], ["batch", "--help"]])
def test_help_ends_with_exit_codes(args, tmp_path):
    res = subprocess.run([*AGENT, *args], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert " ".join(res.stdout.split()).endswith(" ".join(EXIT_CODES.split()))


def test_version(tmp_path):
    res = subprocess.run([*AGENT, "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("edge-agent ")


def test_window_takes_units_like_edgekit():
    assert _parser().parse_args(["serve", "--window", "2m"]).window == 120
    assert _parser().parse_args(["serve", "--window", "500ms"]).window == 0.5
    assert _parser().parse_args(["serve", "--window", "30"]).window == 30


def test_a_bad_duration_is_exit_2_naming_the_value(tmp_path):
    res = subprocess.run(
        [*AGENT, "serve", "--window", "5 parsecs"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 2 and "'5 parsecs' is not a duration" in res.stderr
    assert "Traceback" not in res.stderr


def test_agent_errors_name_settings_and_the_cli_shows_its_flags(tmp_path):
    """The agent's library errors name settings in backticks (as the Greengrass configuration
    knows them); the edge-agent CLI shows them as its own flags."""
    from edge_agent.config import load_file
    from edge_agent.errors import BadInputError

    with pytest.raises(BadInputError) as info:
        load_file(tmp_path / "nope.json")
    assert "`config`" in info.value.hint and "--config" not in info.value.hint
    res = subprocess.run(
        [*AGENT, "serve", "--config", "nope.json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "pass an existing --config FILE" in res.stderr and "`" not in res.stderr
