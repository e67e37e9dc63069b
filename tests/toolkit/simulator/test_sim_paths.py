"""Paths the simulator hands to the devices' processes are absolute: the lifecycle steps run in
each component's work folder, so a path relative to the user's folder would point elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.toolkit.simulator.runner import SimulateOptions, device_merge


def test_command_line_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    opts = SimulateOptions(
        component_dir=Path("build/greengrass-build"),
        run_dir=Path("runs/sim"),
        data=Path("data.csv"),
        wheel_cache=Path("wheels"),
        extra_merge={"captureDir": "caps", "cert": "~/certs/dev.pem", "window_s": "5"},
    )
    assert opts.component_dir == tmp_path / "build" / "greengrass-build"
    assert opts.run_dir == tmp_path / "runs" / "sim"
    assert opts.data == tmp_path / "data.csv" and opts.wheel_cache == tmp_path / "wheels"
    assert opts.extra_merge["captureDir"] == str(tmp_path / "caps")
    assert opts.extra_merge["cert"] == str(Path.home() / "certs" / "dev.pem")
    assert opts.extra_merge["window_s"] == "5"  # not a path: untouched
    # each device rotates its own capture-N.jsonl files: one folder per device
    assert device_merge(opts.extra_merge, "sim-002")["captureDir"] == str(
        tmp_path / "caps" / "sim-002"
    )
