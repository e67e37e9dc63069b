"""Two `edgekit quantize` processes on one bundle at once lose nothing.

Before the manifest was written under a lock, the second writer's read-modify-write dropped the
first one's variant (2 of 3 trials) and left its .onnx as an orphan that inspect did not flag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edge_agent.contracts.bundle import Bundle
from edge_agent.owned import bundle_orphans

EDGEKIT = Path(sys.executable).parent / "edgekit"
ROOT = Path(__file__).parents[3]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(EDGEKIT), "quantize", *args, "--json"],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def test_two_concurrent_quantize_runs_keep_both_variants(cnn_bundle, copy_bundle):
    # a fresh copy per trial: the same method twice on one bundle makes byte-identical files,
    # which quantize reuses instead of adding (variants are unique by content)
    for trial in range(2):
        bundle = copy_bundle(cnn_bundle, f"b{trial}")
        names = (f"dyn{trial}", f"fp16x{trial}")
        procs = [
            _start(bundle.parent, bundle.name, "--method", "dynamic", "--name", names[0]),
            _start(bundle.parent, bundle.name, "--method", "fp16", "--name", names[1]),
        ]
        results = [_finish(p) for p in procs]
        for code, _out, err in results:
            assert code == 0, err[-2000:]
        fresh = Bundle.open(bundle)
        assert set(names) <= set(fresh.variants), sorted(fresh.variants)
        fresh.verify()
        assert bundle_orphans(bundle, fresh.manifest) == []
        history = [h["variant"] for h in fresh.manifest["history"] if h["stage"] == "quantize"]
        assert sorted(history) == sorted(names)


def test_the_same_variant_name_from_two_writers_is_refused_once(cnn_bundle, copy_bundle):
    bundle = copy_bundle(cnn_bundle, "b")
    procs = [_start(bundle.parent, "b", "--method", "dynamic", "--name", "q") for _ in range(2)]
    outcomes = [_finish(p) for p in procs]
    codes = sorted(code for code, _o, _e in outcomes)
    assert codes == [0, 2], [e[-800:] for _c, _o, e in outcomes]
    refused = next(err for code, _o, err in outcomes if code == 2)
    assert "already has a variant 'q'" in " ".join(refused.split()) and "--overwrite" in refused
    winner = next(json.loads(out) for code, out, _e in outcomes if code == 0)
    fresh = Bundle.open(bundle)
    assert winner["variant"] == "q" and winner["bytes"] == fresh.variant("q")["bytes"]
    fresh.verify()
    assert bundle_orphans(bundle, fresh.manifest) == []


def test_inspect_reports_files_the_manifest_does_not_list(
    regression_bundle, copy_bundle, monkeypatch
):
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    bundle = copy_bundle(regression_bundle, "b")
    (bundle / "int8.onnx").write_bytes(b"left by a lost update")
    monkeypatch.chdir(bundle.parent)
    result = CliRunner().invoke(app, ["inspect", "b", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["orphans"] == ["int8.onnx"]
    text = " ".join(CliRunner().invoke(app, ["inspect", "b"]).output.split())
    assert "1 file(s) in the folder that the manifest does not list: int8.onnx" in text
