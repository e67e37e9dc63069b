"""`edgekit package --bench-variants`: the other candidates ride along in the model archive for
the devices' bench command to compare, while the recipe still serves the planned variant; names
the bundle lacks are refused (exit 2)."""

from __future__ import annotations

import json
import os
import zipfile

from typer.testing import CliRunner

from edgekit.toolkit.cli import app


def _package(tuned_bundle, tmp_path, *extra):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(
            app,
            [
                "package",
                os.path.relpath(tuned_bundle, tmp_path),
                "--name",
                "com.edgekit.test.Bench",
                "--version",
                "1.0.0",
                "--platform",
                "linux/aarch64",
                "-o",
                "gg",
                *extra,
            ],
        )
    finally:
        os.chdir(cwd)


def test_bench_variants_ship_beside_the_served_one(tuned_bundle, tmp_path):
    res = _package(
        tuned_bundle, tmp_path, "--target", "linux/aarch64=rpi4", "--bench-variants", "all"
    )
    assert res.exit_code == 0, res.output
    art = tmp_path / "gg" / "artifacts" / "com.edgekit.test.Bench" / "1.0.0"
    (archive,) = art.glob("model-*.zip")
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist())
    assert set(manifest["variants"]) == {"fp32", "alt"}
    assert {manifest["variants"][v]["file"] for v in ("fp32", "alt")} <= names
    recipe = json.loads(next((tmp_path / "gg" / "recipes").glob("*.json")).read_text())
    config = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert "alt" in json.dumps(config)  # the tuned choice is still the one served


def test_without_bench_variants_only_the_served_variant_ships(tuned_bundle, tmp_path):
    res = _package(tuned_bundle, tmp_path, "--target", "linux/aarch64=rpi4")
    assert res.exit_code == 0, res.output
    art = tmp_path / "gg" / "artifacts" / "com.edgekit.test.Bench" / "1.0.0"
    (archive,) = art.glob("model-*.zip")
    with zipfile.ZipFile(archive) as zf:
        assert set(json.loads(zf.read("manifest.json"))["variants"]) == {"alt"}


def test_unknown_bench_variant_is_refused(tuned_bundle, tmp_path):
    res = _package(tuned_bundle, tmp_path, "--bench-variants", "fp32,int8-nope")
    assert res.exit_code == 2, res.output
    assert "int8-nope" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "gg").exists()
