"""What the runner gained so that `edgekit demo` is a pipeline file it runs: published outputs
where the file says (`outputs:`), a bench report beside the file, a signed package, and each
stage's tables (edgekit.toolkit.present.stages) printed by `edgekit run` as by the demo."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from edge_agent import signing
from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app
from edgekit.toolkit.pipeline import spec as spec_mod
from edgekit.toolkit.pipeline.runner import run_pipeline
from edgekit.toolkit.present.stages import VIEWS, stage_view
from tests.toolkit.pipeline.pipeline_helpers import pipeline_doc, write_pipeline


def _demo_like(project: Path) -> dict:
    doc = pipeline_doc(
        bench={"duration_s": 0.05, "report": "reports/bench-wine"},
        tune={"targets": ["local", "rpi4"], "quick": True, "max_trials": 4},
        package={
            "component": "com.example.Wine",
            "version": "1.0.0",
            "sign_key": "keys/release.pem",
        },
    )
    doc["outputs"] = {"bundle": "bundles/wine", "greengrass-build": "greengrass-build"}
    return doc


def test_outputs_report_and_signature_where_the_file_says(project: Path) -> None:
    (project / "keys").mkdir()
    key_id = signing.generate_keypair(
        project / "keys" / "release.pem", project / "keys" / "release.pub.pem"
    )
    write_pipeline(project, _demo_like(project))
    report = run_pipeline(spec_mod.load(project / "pipeline.yaml"))
    assert report.outputs == {
        "bundle": str(project / "bundles" / "wine"),
        "greengrass-build": str(project / "greengrass-build"),
    }
    assert (project / "bundles" / "wine" / "manifest.json").is_file()
    assert not (project / "build").exists()  # nothing at the default places
    bench = report.results["bench"]
    assert Path(bench["report"]) == project / "reports" / "bench-wine" / "report.html"
    assert Path(bench["report"]).is_file() and bench["configurations"] >= 2
    pkg = report.results["package"]
    assert pkg["signed_by"] == key_id and pkg["validation"]["ok"]
    assert {p["platform"] for p in pkg["plans"]} == {"linux/amd64"}
    # the model artifact carries the signature of its manifest by that key
    archives = list((project / "greengrass-build" / "artifacts").rglob("*.zip"))
    signed = []
    for archive in archives:
        with zipfile.ZipFile(archive) as z:
            signed += [n for n in z.namelist() if n.endswith(signing.SIGNATURE_FILE)]
    assert signed, archives
    tune = report.results["tune"]["selection"]
    assert tune["local"]["mode"] == "measured" and tune["rpi4"]["mode"] == "profile"
    assert tune["local"]["front"]["rows"] and tune["local"]["trials"] > 0

    # a new release key is a new release: package reruns, everything before it is cached
    signing.generate_keypair(
        project / "keys" / "release.pem", project / "keys" / "release.pub.pem", overwrite=True
    )
    again = run_pipeline(spec_mod.load(project / "pipeline.yaml"))
    assert again.ran == ["package"]

    # every stage that has a view draws its tables from the stored result
    console = Console(file=io.StringIO(), width=120)
    for name, result in again.results.items():
        for item in stage_view(name, result):
            console.print(item)
    text = console.file.getvalue()
    for title in ("quantized variants", "evaluation on", "Pareto front for local",
                  "ranking for rpi4", "Greengrass component com.example.Wine 1.0.0",
                  "signed with Ed25519 key"):  # fmt: skip
        assert title in text, title
    assert set(VIEWS) >= {"export", "quantize", "evaluate", "bench", "tune", "package", "simulate"}


def test_edgekit_run_prints_the_stage_tables(project: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(project / "pipeline.yaml")])
    assert result.exit_code == 0, result.output
    assert "quantized variants" in result.output and "evaluation on" in result.output
    assert "variants" in result.output  # the exported bundle's summary (inspect's tables)


def test_a_missing_sign_key_is_named_with_its_line(project: Path) -> None:
    write_pipeline(project, _demo_like(project))
    with pytest.raises(BadInputError) as info:
        spec_mod.load(project / "pipeline.yaml")
    assert "stages.package.sign_key" in info.value.message
    assert "release.pem does not exist" in info.value.message


def test_the_fleet_report_replaces_only_a_report_edgekit_wrote(tmp_path: Path) -> None:
    """The simulate stage's `report:` follows `fleet report -o`'s rule: a user's own file of
    that name is refused and kept; a report edgekit wrote is replaced."""
    from edgekit.toolkit.fleet.stores import open_fleet_store
    from edgekit.toolkit.pipeline.fleetcheck import fleet_report

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    open_fleet_store(run_dir / "fleet.db").close()
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    with pytest.raises(BadInputError, match="stages.simulate.report"):
        fleet_report(run_dir, mine)
    assert mine.read_text() == "<p>my notes</p>"
    with pytest.raises(BadInputError, match="inside this command's input"):
        fleet_report(run_dir, run_dir / "report.html")
    ours = tmp_path / "reports" / "fleet.html"
    assert fleet_report(run_dir, ours) == ours
    assert fleet_report(run_dir, ours) == ours  # its own report: replaced


def test_a_refused_report_path_stops_the_stage_before_it_simulates(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's own file named as `report:` is refused before the devices start, not after a
    whole simulated rollout."""
    from edgekit.toolkit.pipeline.stages import StageContext, registry
    from edgekit.toolkit.simulator import runner as sim_runner

    write_pipeline(project, pipeline_doc(simulate={"devices": 1, "report": "notes.html"}))
    (project / "notes.html").write_text("<p>my notes</p>")
    spec = spec_mod.load(project / "pipeline.yaml")
    simulate = next(cls for cls in registry() if cls.name == "simulate")
    stage = simulate(spec, spec.stage_options("simulate"))

    def no_simulation(options):  # the stage must not get this far
        raise AssertionError("simulated before checking the report's path")

    monkeypatch.setattr(sim_runner, "simulate", no_simulation)
    outputs = {"package": {"build_dir": str(project / "build"), "component": "com.example.Wine"}}
    ctx = StageContext(spec, project / "work", outputs, runtime=None)
    with pytest.raises(BadInputError, match="stages.simulate.report"):
        stage.run(ctx)
    assert (project / "notes.html").read_text() == "<p>my notes</p>"


def test_a_refused_bench_report_folder_stops_the_stage_before_it_measures(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekit.toolkit.bench import engine as bench_engine
    from edgekit.toolkit.pipeline.stages import StageContext, registry

    write_pipeline(project, pipeline_doc(bench={"duration_s": 0.05, "report": "mine"}))
    (project / "mine").mkdir()
    (project / "mine" / "thesis.tex").write_text("years of work")
    spec = spec_mod.load(project / "pipeline.yaml")
    bench = next(cls for cls in registry() if cls.name == "bench")
    stage = bench(spec, spec.stage_options("bench"))

    def no_bench(*args, **kwargs):
        raise AssertionError("measured before checking the report folder")

    monkeypatch.setattr(bench_engine, "run_bench", no_bench)
    outputs = {"export": {"bundle": str(project / "bundle")}}
    ctx = StageContext(spec, project / "work", outputs, runtime=None)
    with pytest.raises(BadInputError, match="stages.bench.report"):
        stage.run(ctx)
    assert (project / "mine" / "thesis.tex").read_text() == "years of work"
