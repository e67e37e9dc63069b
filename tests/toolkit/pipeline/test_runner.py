"""The runner on a real small project: cache hits and misses (a changed option or data digest
reruns exactly the stages downstream of it), --force, a failing stage, run records, compare."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import CheckFailedError, EdgekitError
from edgekit.toolkit.cli import app
from edgekit.toolkit.pipeline import spec as spec_mod
from edgekit.toolkit.pipeline.runner import make_plan, run_pipeline
from edgekit.toolkit.pipeline.stages import Runtime
from edgekit.toolkit.pipeline.store import RunStore
from edgekit.toolkit.pipeline.summary import compare
from tests.toolkit.pipeline.pipeline_helpers import pipeline_doc, write_pipeline

ALL = ["train", "export", "quantize", "evaluate", "bench", "package"]


def _run(project: Path, overrides: dict | None = None, force=()):
    return run_pipeline(spec_mod.load(project / "pipeline.yaml", overrides), force=force)


def test_cache_hits_and_exactly_downstream_misses(project: Path) -> None:
    first = _run(project)
    assert first.ran == ALL and first.cached == []
    assert (project / "build" / "bundle" / "manifest.json").is_file()
    assert (project / "build" / "greengrass-build" / "recipes").is_dir()
    assert first.summary["component"]["version"] == "1.0.0"

    again = _run(project)
    assert again.ran == [] and again.cached == ALL
    assert [p.key for p in again.plan] == [p.key for p in first.plan]

    # an option of bench: bench and what comes after it
    bench = _run(project, {"stages.bench.duration_s": 0.06})
    assert bench.ran == ["bench", "package"]
    assert bench.summary["component"]["version"] == "1.0.1"  # a new bundle: a new version

    # the evaluation data's digest: evaluate onwards, the model is not rebuilt
    test = pd.read_csv(project / "data" / "eval.csv")
    test.iloc[:-3].to_csv(project / "data" / "eval.csv", index=False)
    data = _run(project, {"stages.bench.duration_s": 0.06})
    assert data.ran == ["evaluate", "bench", "package"]
    assert data.cached == ["train", "export", "quantize"]

    # the training code itself: everything
    train_py = project / "train.py"
    train_py.write_text(train_py.read_text() + "\n# edited\n")
    code = _run(project, {"stages.bench.duration_s": 0.06})
    assert code.ran == ALL


def test_force_reruns_the_stage_and_what_follows(project: Path) -> None:
    _run(project)
    plan = make_plan(spec_mod.load(project / "pipeline.yaml"), Runtime(), ["quantize"])
    assert [p.action for p in plan] == ["cached", "cached", "run", "run", "run", "run"]
    forced = _run(project, force=["quantize"])
    assert forced.ran == ["quantize", "evaluate", "bench", "package"]
    with pytest.raises(EdgekitError, match="not a stage"):
        _run(project, force=["quantise"])


def test_dry_run_prints_the_plan_and_runs_nothing(project: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(project / "pipeline.yaml"), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    assert [p["action"] for p in plan] == ["run"] * 6
    assert not (project / ".edgekit" / "cache").exists()
    _run(project)
    result = runner.invoke(app, ["run", str(project / "pipeline.yaml"), "--dry-run"])
    assert "the cache would skip 6 of 6 stages" in result.stdout


def test_failing_stage_stops_the_run_and_keeps_earlier_results(project: Path) -> None:
    good = _run(project)
    # an impossible floor for the model: evaluate fails, bench and package never run
    with pytest.raises(CheckFailedError, match="below the minimum 1.5"):
        _run(project, {"stages.evaluate.min_value": 1.5, "stages.bench.duration_s": 0.07})
    store = RunStore(project / ".edgekit" / "runs.db")
    try:
        failed = store.list(1)[0]
        run = store.get(failed["id"])
    finally:
        store.close()
    assert failed["status"] == "failed" and "stage evaluate failed" in failed["error"]
    assert [(s["name"], s["status"]) for s in run["stages"]] == [
        ("train", "cached"),
        ("export", "cached"),
        ("quantize", "cached"),
        ("evaluate", "failed"),
    ]
    # nothing half-written: no partial cache entry, the published outputs are the good run's
    assert not list((project / ".edgekit" / "cache").rglob("*.partial"))
    published = Bundle.open(project / "build" / "bundle")
    assert published.variant("fp32")["sha256"] == good.results["export"]["sha256"]
    # the user's train step raising: recorded, the error names it
    with pytest.raises(RuntimeError, match="training blew up"):
        _run(project, {"stages.train.params": {"fail": True}})
    # fixed: the stages before the failure come from the cache
    fixed = _run(project, {"stages.bench.duration_s": 0.07})
    assert fixed.cached == ["train", "export", "quantize", "evaluate"]


def test_run_records_show_and_compare(project: Path) -> None:
    a = _run(project)
    doc = pipeline_doc(quantize={"methods": ["dynamic", "fp16"]})
    write_pipeline(project, doc)
    b = _run(project)
    store = RunStore(project / ".edgekit" / "runs.db")
    try:
        ra, rb = store.get(a.run_id), store.get(b.run_id[:17])  # a prefix works too
    finally:
        store.close()
    assert ra["pipeline_sha256"] != rb["pipeline_sha256"]
    assert (
        ra["inputs"]["files"]["data.sample"]["sha256"]
        == rb["inputs"]["files"]["data.sample"]["sha256"]
    )
    assert ra["versions"]["onnxruntime"] and ra["versions"]["scikit-learn"]
    assert rb["component"] == "com.example.Wine" and rb["version"] == "1.0.1"
    rows = compare(ra, rb)
    items = {(r["section"], r["item"]): r for r in rows}
    assert items[("size", "fp16 bytes")]["a"] is None and items[("size", "fp16 bytes")]["b"] > 0
    assert items[("metric", "fp32 accuracy")]["change"] == 0
    assert ("latency", "fp32 p50 ms on local") in items
    assert items[("stage", "train")]["change"] == "same key"
    assert items[("stage", "quantize")]["change"] == "key changed"

    runner = CliRunner()
    store_path = str(project / ".edgekit" / "runs.db")
    listed = runner.invoke(app, ["runs", "list", "--store", store_path, "--json"])
    assert [r["id"] for r in json.loads(listed.stdout)["runs"]] == [b.run_id, a.run_id]
    shown = runner.invoke(app, ["runs", "show", a.run_id, "--store", store_path])
    assert "train" in shown.stdout and "sha256" in shown.stdout
    cmp = runner.invoke(
        app, ["runs", "compare", a.run_id, b.run_id, "--store", store_path, "--json"]
    )
    assert cmp.exit_code == 0 and json.loads(cmp.stdout)["rows"]
    table = runner.invoke(app, ["runs", "compare", a.run_id, b.run_id, "--store", store_path])
    assert "fp16 bytes" in table.stdout
    missing = runner.invoke(app, ["runs", "show", "nope", "--store", store_path])
    assert missing.exit_code == 2


def test_init_writes_a_starter_that_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "proj" / "pipeline.yaml"
    result = runner.invoke(app, ["init", "--framework", "sklearn", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.count("#") > 10  # commented
    again = runner.invoke(app, ["init", "-o", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    # the starter runs as is (without tune, to keep the test short)
    report = run_pipeline(
        spec_mod.load(out, {"stages.tune": None, "stages.bench.duration_s": 0.05})
    )
    assert report.status == "ok" and "train" in report.ran
    assert report.summary["variants"]["fp32"]["metric"] >= 0.8


def test_init_torch_starter_is_a_valid_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "t" / "pipeline.yaml"
    result = CliRunner().invoke(app, ["init", "--framework", "torch", "-o", str(out)])
    assert result.exit_code == 0, result.output
    spec = spec_mod.load(out)
    assert spec.model["factory"] == "model:build"
    assert (tmp_path / "t" / "data" / "train.npz").is_file()


def test_cli_run_reports_a_failing_train_step(project: Path) -> None:
    doc = pipeline_doc()
    doc["stages"]["train"]["params"] = {"fail": True}
    write_pipeline(project, doc)
    result = CliRunner().invoke(app, ["run", str(project / "pipeline.yaml")])
    assert result.exit_code == 1
    assert "RuntimeError: training blew up" in result.output
    store = RunStore(project / ".edgekit" / "runs.db")
    try:
        run = store.get(store.list(1)[0]["id"])
    finally:
        store.close()
    assert run["stages"][0]["status"] == "failed"
    assert "training blew up" in run["stages"][0]["result"]["traceback"]


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_published_build_output_never_replaces_a_file_or_a_link(project: Path, kind) -> None:
    """`outputs: {greengrass-build: notes.txt}` replaced the user's file with the build folder:
    a file has no entries, so it passed as an edgekit build (found by tryhostile)."""
    (project / "notes.txt").write_text("precious")
    (project / "mine").mkdir()
    (project / "mine" / "keep.txt").write_text("precious")
    if kind == "link":
        (project / "notes.txt").rename(project / "mine" / "notes.txt")
        (project / "notes.txt").symlink_to("mine")
    with pytest.raises(EdgekitError, match="nothing was changed"):
        _run(project, {"outputs": {"greengrass-build": "notes.txt"}})
    if kind == "file":
        assert (project / "notes.txt").read_text() == "precious"
    else:
        assert (project / "notes.txt").is_symlink()
        assert sorted(p.name for p in (project / "mine").iterdir()) == ["keep.txt", "notes.txt"]


def test_cli_run_with_a_folder_as_its_store_is_bad_input(project: Path) -> None:
    """`store: mine` (a folder) failed as "OperationalError: unable to open database file",
    exit 1, with a hint to read the traceback in that same store (found by tryhostile)."""
    (project / "mine").mkdir()
    doc = pipeline_doc()
    doc["store"] = "mine"
    write_pipeline(project, doc)
    result = CliRunner().invoke(app, ["run", str(project / "pipeline.yaml")])
    assert result.exit_code == 2, result.output
    assert "is a folder, not an edgekit run store" in result.output
    assert "OperationalError" not in result.output
    assert list((project / "mine").iterdir()) == []
