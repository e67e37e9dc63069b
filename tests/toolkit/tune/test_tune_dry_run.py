"""`edgekit tune --dry-run` writes nothing: no created variant file, no evaluation, no manifest
or history change, byte for byte, even when the target prefers variants the bundle lacks."""

from __future__ import annotations

import hashlib
import json
import os

from typer.testing import CliRunner

from edgekit.toolkit.cli import app


def _snapshot(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_dry_run_leaves_the_bundle_byte_for_byte(cnn_bundle, copy_bundle, tmp_path):
    path = copy_bundle(cnn_bundle)
    before = _snapshot(path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        res = CliRunner().invoke(
            app,
            [
                "tune",
                os.path.relpath(path, elsewhere),
                "--target",
                "local",
                "--quick",
                "--max-trials",
                "2",
                "--dry-run",
                "--json",
            ],
        )
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["written"] is False
    # the target prefers quantized variants the bundle lacks: made in a scratch copy only
    assert out["created_variants"], out["notes"]
    assert any("dry run" in n and "not changed" in n for n in out["notes"])
    assert _snapshot(path) == before
    assert not list(elsewhere.iterdir())  # nothing left in the current folder either
