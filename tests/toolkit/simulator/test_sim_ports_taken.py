"""`edgekit simulate` with its --base-port block taken on this machine (trysk: another agent
was serving on 18080, then the default): each device's agent exited 2 on start ("port in use",
only in the device's log) and simulate said "COMPONENT_BROKEN ... Startup exited with 2", exit
1. The default is now any free block, and a fixed block is checked first: exit 2 naming the
ports and --base-port 0, and no run folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sim_helpers import write_component
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app
from edgekit.toolkit.simulator import ports


def _taken() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def test_check_block_names_the_taken_ports():
    sock, port = _taken()
    with sock:
        with pytest.raises(BadInputError, match=f"REST port\\(s\\) ([0-9]+, )*{port}\\b"):
            ports.check_block(port - 1, 3)
        ports.check_block(ports.free_block(2), 2)  # a free block passes


def test_simulate_refuses_a_taken_base_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_component(
        tmp_path / "gg",
        "com.example.Hello",
        "1.0.0",
        lifecycle={"Run": "sleep 30"},
        config={"port": 0},
    )
    monkeypatch.chdir(tmp_path)
    sock, port = _taken()
    with sock:
        result = CliRunner().invoke(
            app,
            ["simulate", "--component", "gg", "--devices", "2", "--duration", "2s",
             "--base-port", str(port)],
        )  # fmt: skip
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"REST port(s) {port}" in text and "--base-port" in text and "0 for any free" in text
    assert not (tmp_path / "edgekit-sim-run").exists()
