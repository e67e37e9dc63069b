"""Ctrl-C keeps finished work: a real `edgekit bench` / `edgekit tune` process, run the way the
README does (relative paths, from the project folder), gets SIGINT once its first configuration
is measured (its own log line says so; nothing is timed by sleeping). What was measured before
is written, marked incomplete, the command says what it kept and where, exits 130, and leaves
the manifest as it was."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

EDGEKIT = Path(sys.executable).parent / "edgekit"
pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child is POSIX")


def _interrupt_after_first(
    args: list[str], cwd: Path, line: str = "measured 1/", deadline_s: float = 300.0
):
    """Start `edgekit ARGS` in `cwd`, SIGINT it once a line of its log starts with `line` (by
    default: its first configuration is measured); returns (exit code, stdout, stderr)."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [str(EDGEKIT), *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    try:
        while True:
            got = lines.get(timeout=max(0.1, end - time.monotonic()))
            assert got is not None, f"ended before a line {line!r}:\n" + "".join(seen)
            seen.append(got)
            if got.startswith(line):
                break
        proc.send_signal(signal.SIGINT)
        stdout = proc.stdout.read()
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    while (rest := lines.get(timeout=30)) is not None:
        seen.append(rest)
    return rc, stdout, "".join(seen)


@pytest.fixture
def project(tmp_path: Path, tabular_bundle: Path) -> Path:
    shutil.copytree(tabular_bundle, tmp_path / "model")
    return tmp_path


def test_ctrl_c_during_bench_keeps_the_measured_configurations(project: Path) -> None:
    manifest = (project / "model" / "manifest.json").read_bytes()
    args = ["bench", "model", "-o", "out", "--threads", "1,2", "--batch", "1,2,4,8"]
    rc, _stdout, stderr = _interrupt_after_first([*args, "--duration", "0.5"], project)
    assert rc == 130, stderr[-2000:]
    doc = json.loads((project / "out" / "results.json").read_text())
    assert doc["complete"] is False and doc["interrupted"]
    # 2 thread counts x 4 batch sizes (the native baseline needs --trust-code, not given here)
    assert 1 <= len(doc["records"]) < doc["planned_configurations"] == 8
    assert "Incomplete: interrupted during" in (project / "out" / "report.html").read_text()
    csv_rows = (project / "out" / "results.csv").read_text().strip().splitlines()
    assert len(csv_rows) == len(doc["records"]) + 1
    kept = f"kept the {len(doc['records'])} of 8 configurations"
    assert kept in stderr and "results.json" in stderr and "Traceback" not in stderr
    assert (project / "model" / "manifest.json").read_bytes() == manifest


def test_ctrl_c_during_bench_before_anything_is_measured_leaves_no_folder(project: Path) -> None:
    """SIGINT while the first configuration runs: no report folder stays behind."""
    args = ["bench", "model", "-o", "out", "--duration", "30", "--no-native"]
    rc, _stdout, stderr = _interrupt_after_first(args, project, line="measuring 1/")
    assert rc == 130, stderr[-2000:]
    assert "before any configuration was measured" in stderr
    assert not (project / "out").exists()


def test_ctrl_c_during_tune_keeps_the_measured_configurations(project: Path) -> None:
    manifest = (project / "model" / "manifest.json").read_bytes()
    args = ["tune", "model", "--target", "local", "--no-create", "-o", "tune.json"]
    rc, _stdout, stderr = _interrupt_after_first(args, project)
    assert rc == 130, stderr[-2000:]
    doc = json.loads((project / "tune.json").read_text())
    assert doc["complete"] is False and doc["search"]["stopped"].startswith("interrupted")
    assert doc["search"]["trials"] >= 1 and doc["candidates"]
    assert doc["bundle"] == str(project / "model")
    assert f"kept the {doc['search']['trials']} configuration(s)" in stderr
    assert "tune.json" in stderr and "Traceback" not in stderr
    assert (project / "model" / "manifest.json").read_bytes() == manifest  # no selection


def test_ctrl_c_during_tune_says_what_it_evaluated_before_the_search(project: Path) -> None:
    """tune evaluates a variant that has no evaluation before it searches; Ctrl-C then said
    "the manifest was not changed" although the evaluation was in it."""
    from edge_agent.contracts.bundle import Bundle
    from edgekit.toolkit.quantize import QuantizeRequest, quantize_bundle

    quantize_bundle(project / "model", QuantizeRequest(method="fp16"))
    args = ["tune", "model", "--target", "local", "--no-create", "-o", "tune.json"]
    rc, _stdout, stderr = _interrupt_after_first(args, project)
    assert rc == 130, stderr[-2000:]
    manifest = Bundle.open(project / "model").manifest
    assert manifest["variants"]["fp16"]["evaluation"] and not manifest.get("selection")
    assert "the manifest was not changed" not in stderr
    assert "the selection was not recorded (kept from before the search: evaluated" in stderr
