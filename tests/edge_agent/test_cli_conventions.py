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
