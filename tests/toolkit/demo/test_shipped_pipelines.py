"""The demo's pipeline files ship with the package and are valid pipelines for the runner, with
and without --quick: the whole path, train to the simulated fleet, as pipeline stages."""

from __future__ import annotations

from pathlib import Path

import pytest

import edgekit.toolkit.demo as demo
from edgekit.toolkit.pipeline import spec as spec_mod
from edgekit.toolkit.pipeline.runner import make_plan
from edgekit.toolkit.pipeline.stages import Runtime

ROOT = Path(__file__).resolve().parents[3]
PATH = ["train", "export", "quantize", "evaluate", "bench", "tune", "package", "simulate"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    demo.prepare(out)
    return out


def test_the_files_are_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()  # no tomllib: python 3.10 is supported
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    toolkit_line = next(
        line for line in section.splitlines() if line.startswith('"edgekit.toolkit" =')
    )
    assert '"**/*.yaml"' in toolkit_line
    for pipe in demo.PIPELINES:
        assert demo.shipped(pipe.file).startswith("#")
    assert "kind" not in demo.shipped(demo.LOOP_FILE)  # the loop's file, not a rules file


@pytest.mark.parametrize("quick", [False, True])
def test_each_file_is_a_pipeline_on_the_demo_data(folder: Path, quick: bool) -> None:
    plans = {}
    for pipe in demo.PIPELINES:
        spec = spec_mod.load(demo.materialise(folder, pipe.file), pipe.quick if quick else {})
        plans[pipe.key] = [p.name for p in make_plan(spec, Runtime())]
        assert spec.base == folder and spec.workdir == folder / ".edgekit"
    assert plans["tabular"] == PATH  # the whole path, in the runner's order
    assert plans["cnn"] == PATH[:6]
    tabular = spec_mod.load(folder / "breast-cancer.yaml", demo.PIPELINES[0].quick)
    assert tabular.published("bundle") == folder / "bundles" / "breast-cancer"
    assert tabular.published("greengrass-build") == folder / "greengrass-build"
    assert tabular.stage_options("simulate")["duration_s"] == 12
    assert tabular.stage_options("package")["sign_key"] == "keys/release.pem"
    loop = spec_mod.load(demo.materialise(folder, demo.LOOP_FILE, demo.LOOP_AS))
    assert [p.name for p in make_plan(loop, Runtime())] == PATH[:7]


def test_the_pre_step_keeps_the_release_key(folder: Path) -> None:
    before = (folder / "keys" / "release.pem").read_bytes()
    demo.prepare(folder)  # a second demo in the same folder: same key, the cache stays valid
    assert (folder / "keys" / "release.pem").read_bytes() == before
    assert (folder / "data" / "breast_cancer_train.csv").is_file()
    assert (folder / "data" / "digits_test.npz").is_file()
