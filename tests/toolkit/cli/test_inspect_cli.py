"""`edgekit inspect`: tables, JSON, tampered and missing files (exit 1), broken manifests (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edgekit.toolkit.cli import app

runner = CliRunner()


def inspect(*args: object):
    return runner.invoke(app, ["inspect", *map(str, args)])


def test_inspect_shows_every_table(tabular_bundle: Path):
    result = inspect(tabular_bundle)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("classification", "variants", "files", "lineage", "fp32", "size_band"):
        assert expected in out
    assert "every digest verified" in out


def test_inspect_json(cnn_bundle: Path):
    result = inspect(cnn_bundle, "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["integrity"] == []
    assert doc["manifest"]["task"] == "classification"
    assert doc["manifest"]["signature"]["inputs"][0]["shape"] == ["batch", 1, 8, 8]


def test_a_tampered_model_is_reported_and_exits_1(regression_bundle: Path, copy_bundle):
    folder = copy_bundle(regression_bundle)
    model = folder / "fp32.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    result = inspect(folder)
    assert result.exit_code == 1
    assert "fp32.onnx (modified)" in result.stdout
    assert "1 file(s) failed verification" in result.stdout

    as_json = inspect(folder, "--json")
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    [problem] = doc["integrity"]
    expected = doc["manifest"]["variants"]["fp32"]["sha256"]
    assert problem["file"] == "fp32.onnx" and problem["problem"] == "modified"
    assert problem["expected"] == expected and problem["actual"] != expected


def test_missing_files_are_named(regression_bundle: Path, copy_bundle):
    folder = copy_bundle(regression_bundle)
    (folder / "baseline.json").unlink()
    (folder / "samples.npz").write_bytes(b"")
    result = inspect(folder, "--json")
    assert result.exit_code == 1
    problems = {p["file"]: p["problem"] for p in json.loads(result.stdout)["integrity"]}
    assert problems == {"baseline.json": "missing", "samples.npz": "size"}


def test_a_manifest_that_breaks_the_schema_exits_2(regression_bundle: Path, copy_bundle):
    folder = copy_bundle(regression_bundle)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["variants"]["fp32"]["bytes"] = "large"
    del manifest["signature"]["outputs"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = inspect(folder)
    assert result.exit_code == 2
    assert "manifest does not match schema version 1" in result.stderr
    assert "$.variants.fp32.bytes" in result.stderr
    assert "'outputs' is a required property" in result.stderr
    assert "Traceback" not in result.output


def test_not_a_bundle_exits_2(tmp_path: Path):
    result = inspect(tmp_path)
    assert result.exit_code == 2 and "has no manifest.json" in result.stderr
    (tmp_path / "manifest.json").write_text("{oops")
    result = inspect(tmp_path, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"].endswith("is not valid JSON: " + _json_error())


def _json_error() -> str:
    try:
        json.loads("{oops")
    except json.JSONDecodeError as exc:
        return str(exc)
    raise AssertionError


def test_the_installed_script_reports_tampering(regression_bundle: Path, copy_bundle):
    folder = copy_bundle(regression_bundle)
    with open(folder / "fp32.onnx", "ab") as fh:
        fh.write(b"\0")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "edgekit"), "inspect", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["integrity"][0]["file"] == "fp32.onnx"
