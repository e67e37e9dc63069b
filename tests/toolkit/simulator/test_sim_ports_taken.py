"""A fixed --base-port (18080 by default) already taken on this machine (trysk: another
agent was serving on 18080): each device's agent exited 2 on start ("port in use", only in the
device's log) and simulate said "COMPONENT_BROKEN ... Startup exited with 2", exit 1. The block
is now checked first: exit 2 naming the ports and --base-port 0, and no run folder."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sim_helpers import write_component
from typer.testing import CliRunner

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
        with pytest.raises(Exception, match=f"REST port\\(s\\) {port} of the devices' block"):
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
    assert f"REST port(s) {port} " in text and "--base-port" in text and "0 for any free" in text
    assert not (tmp_path / "edgekit-sim-run").exists()
