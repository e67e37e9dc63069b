"""Every command that writes replaces only what edgekit wrote itself.

Each case puts a file of the user's where the command writes (inside -o, -o being the current
folder, -o being the folder that holds the command's input) and drives the CLI the way the
README does: relative paths, from the folder the user is in. The command must exit 2 with a
message naming the folder, and the user's file must be there afterwards, unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from edge_agent import atomic, owned
from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import BadInputError
from edgekit.toolkit.cli import app

EDGEKIT = Path(sys.executable).parent / "edgekit"
ROOT = Path(__file__).parents[3]
NOTE = "my own notes, not edgekit's\n"


def edgekit(cwd: Path, *args: object, monkeypatch: pytest.MonkeyPatch):
    """The CLI in-process, run from `cwd` (as a user typing in that folder)."""
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, [str(a) for a in args])
    text = result.output
    return result.exit_code, " ".join(text.split())


def plant(folder: Path, name: str = "notes.txt") -> Path:
    """A user's file where the command is about to write."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(NOTE)
    return path


def survived(path: Path) -> bool:
    return path.is_file() and path.read_text() == NOTE


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The user's project folder: a small skops classifier and its CSV."""
    from sklearn.datasets import load_iris

    folder = tmp_path / "project"
    folder.mkdir()
    frame = load_iris(as_frame=True).frame
    frame.columns = [c.replace(" ", "_").replace("(", "").replace(")", "") for c in frame.columns]
    frame.to_csv(folder / "iris.csv", index=False)
    x, y = frame.drop(columns=["target"]), frame["target"]
    sio.dump(LogisticRegression(max_iter=2000).fit(x, y), folder / "model.skops")
    return folder


EXPORT = ("export", "model.skops", "--data", "iris.csv", "--target-column", "target")


# -- export ------------------------------------------------------------------------------------
def test_export_overwrite_refuses_a_folder_of_the_users_files(project, monkeypatch):
    mine = plant(project / "out")
    code, text = edgekit(project, *EXPORT, "-o", "out", "--overwrite", monkeypatch=monkeypatch)
    assert code == 2 and "out" in text and "did not write" in text and "notes.txt" in text
    assert survived(mine) and sorted(os.listdir(project / "out")) == ["notes.txt"]


def test_export_overwrite_refuses_the_current_folder(project, monkeypatch):
    code, text = edgekit(project, *EXPORT, "-o", ".", "--overwrite", monkeypatch=monkeypatch)
    assert code == 2 and "current folder" in text
    assert sorted(os.listdir(project)) == ["iris.csv", "model.skops"]


def test_export_overwrite_refuses_a_parent_of_the_current_folder(project, monkeypatch):
    sub = project / "sub"
    sub.mkdir()
    code, text = edgekit(
        sub, "export", "../model.skops", "--data", "../iris.csv", "--target-column", "target",
        "-o", "..", "--overwrite", monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and "holds the current folder" in text
    assert (project / "model.skops").is_file() and (project / "iris.csv").is_file()


def test_export_overwrite_refuses_the_folder_holding_the_model(project, monkeypatch):
    code, text = edgekit(
        project.parent, "export", "project/model.skops", "--data", "project/iris.csv",
        "--target-column", "target", "-o", "project", "--overwrite", monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and "project" in text and "input" in text
    assert sorted(os.listdir(project)) == ["iris.csv", "model.skops"]


def test_export_overwrite_replaces_its_own_bundle_but_not_a_foreign_file_in_it(
    project, monkeypatch
):
    code, text = edgekit(project, *EXPORT, "-o", "out", monkeypatch=monkeypatch)
    assert code == 0, text
    first = Bundle.open(project / "out").manifest["created"]
    code, text = edgekit(project, *EXPORT, "-o", "out", monkeypatch=monkeypatch)
    assert code == 2 and "--overwrite" in text  # exists: needs the flag
    code, text = edgekit(project, *EXPORT, "-o", "out", "--overwrite", monkeypatch=monkeypatch)
    assert code == 0, text
    assert Bundle.open(project / "out").manifest["created"] >= first
    mine = plant(project / "out", "extra.csv")
    code, text = edgekit(project, *EXPORT, "-o", "out", "--overwrite", monkeypatch=monkeypatch)
    assert code == 2 and "extra.csv" in text and survived(mine)
    assert (project / "out" / "manifest.json").is_file()
    assert not [p for p in os.listdir(project) if p.endswith((".partial", ".tmp"))]


def test_export_cleans_stale_staging_it_owns(project, monkeypatch):
    """An interrupted export leaves `.out.<pid>@<host>.<random>.partial`; the next run removes
    the ones whose process is gone and keeps a live one's."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    tag = atomic._host_tag()
    stale = project / f".out.{dead.stdout.strip()}@{tag}.abc123.partial"
    live = project / f".out.{os.getppid()}@{tag}.def456.partial"
    foreign = project / ".out.notes.partial"  # not our naming: left alone
    for folder in (stale, live, foreign):
        plant(folder, "fp32.onnx")
    code, text = edgekit(project, *EXPORT, "-o", "out", monkeypatch=monkeypatch)
    assert code == 0, text
    assert not stale.exists() and live.is_dir() and foreign.is_dir()


# -- quantize ----------------------------------------------------------------------------------
def test_quantize_refuses_to_overwrite_a_file_the_manifest_does_not_list(
    cnn_bundle, copy_bundle, monkeypatch
):
    bundle = copy_bundle(cnn_bundle)
    mine = plant(bundle, "q8.onnx")
    code, text = edgekit(
        bundle.parent, "quantize", bundle.name, "--method", "dynamic", "--name", "q8",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and "q8.onnx" in text and "manifest" in text
    assert survived(mine) and "q8" not in Bundle.open(bundle).variants


def test_quantize_writes_nothing_outside_the_bundle(cnn_bundle, copy_bundle, tmp_path):
    """quant_pre_process and the calibrators make scratch files in the working and temp
    folders: they stay inside our work folder, which is removed."""
    bundle = copy_bundle(cnn_bundle)
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    rel = os.path.relpath(bundle, cwd)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(EDGEKIT), "quantize", rel, "--method", "static", "--name", "s8", "--json"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.listdir(cwd) == []
    # `import onnxruntime` itself keeps a session id file in the temp folder (any program that
    # imports it does); nothing else may be left there
    assert set(os.listdir(tmp)) <= {".ses"}
    assert owned.bundle_orphans(bundle, Bundle.open(bundle).manifest) == []


# -- evaluate ----------------------------------------------------------------------------------
def test_evaluate_touches_only_the_manifest(cnn_bundle, copy_bundle, digits_data, monkeypatch):
    bundle = copy_bundle(cnn_bundle)
    mine = plant(bundle, "notes.txt")
    before = sorted(os.listdir(bundle))
    data = shutil.copy(digits_data, bundle.parent / "digits.npz")
    code, text = edgekit(
        bundle.parent, "evaluate", bundle.name, "--data", Path(data).name,
        "--target-column", "target", monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code in (0, 1), text
    assert survived(mine) and sorted(os.listdir(bundle)) == before
    assert Bundle.open(bundle).variant("fp32")["evaluation"] is not None


# -- bench -------------------------------------------------------------------------------------
BENCH = ("--variant", "fp32", "--iterations", "5", "--warmup", "1", "--no-native", "--no-save")


@pytest.mark.parametrize("where", ["foreign", "dot", "bundle"])
def test_bench_refuses_a_report_folder_it_did_not_write(
    regression_bundle, copy_bundle, monkeypatch, where
):
    bundle = copy_bundle(regression_bundle, "b")
    cwd = bundle.parent
    target = {"foreign": "reports", "dot": ".", "bundle": "b"}[where]
    mine = plant(cwd / "reports") if where == "foreign" else plant(cwd, "notes.txt")
    before = sorted(os.listdir(cwd))
    code, text = edgekit(cwd, "bench", "run", "b", *BENCH, "-o", target, monkeypatch=monkeypatch)
    assert code == 2 and target in text, text
    assert survived(mine) and sorted(os.listdir(cwd)) == before
    assert sorted(os.listdir(bundle)) == sorted(os.listdir(regression_bundle))


def test_bench_replaces_its_own_report_folder(regression_bundle, copy_bundle, monkeypatch):
    bundle = copy_bundle(regression_bundle, "b")
    for _ in range(2):
        code, text = edgekit(
            bundle.parent, "bench", "run", "b", *BENCH, "-o", "rep", monkeypatch=monkeypatch
        )
        assert code == 0, text
    rep = bundle.parent / "rep"
    assert sorted(os.listdir(rep)) == [owned.MARKER, "report.html", "results.csv", "results.json"]
    mine = plant(rep)
    code, text = edgekit(
        bundle.parent, "bench", "run", "b", *BENCH, "-o", "rep", monkeypatch=monkeypatch
    )
    assert code == 2 and "notes.txt" in text and survived(mine)


# -- tune --------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["notes.json", "b/manifest.json", "b/tune.json"])
def test_tune_output_file_must_be_its_own(regression_bundle, copy_bundle, monkeypatch, target):
    bundle = copy_bundle(regression_bundle, "b")
    cwd = bundle.parent
    mine = plant(cwd, "notes.json")
    manifest = (bundle / "manifest.json").read_text()
    code, text = edgekit(
        cwd, "tune", "b", "--target", "local", "--quick", "--dry-run", "-o", target,
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and target in text, text
    assert survived(mine) and (bundle / "manifest.json").read_text() == manifest
    assert not (bundle / "tune.json").exists()


# -- package -----------------------------------------------------------------------------------
PACKAGE = ("--name", "com.example.Safe", "--version", "1.0.0", "--platform", "linux/amd64")


def test_package_refuses_the_current_folder_and_a_folder_of_other_files(
    regression_bundle, copy_bundle, monkeypatch
):
    bundle = copy_bundle(regression_bundle, "b")
    cwd = bundle.parent
    mine = plant(cwd / "build")
    code, text = edgekit(cwd, "package", "b", *PACKAGE, "-o", ".", monkeypatch=monkeypatch)
    assert code == 2 and "current folder" in text
    code, text = edgekit(cwd, "package", "b", *PACKAGE, "-o", "build", monkeypatch=monkeypatch)
    assert code == 2 and "notes.txt" in text
    code, text = edgekit(cwd, "package", "b", *PACKAGE, "-o", "b", monkeypatch=monkeypatch)
    assert code == 2 and "input" in text
    assert survived(mine) and sorted(os.listdir(cwd)) == ["b", "build"]
    assert sorted(os.listdir(cwd / "build")) == ["notes.txt"]


def test_package_overwrite_replaces_only_its_own_version(
    regression_bundle, copy_bundle, monkeypatch
):
    bundle = copy_bundle(regression_bundle, "b")
    cwd = bundle.parent
    args = ("package", "b", *PACKAGE, "-o", "gg")
    code, text = edgekit(cwd, *args, monkeypatch=monkeypatch)
    assert code == 0, text
    code, text = edgekit(cwd, *args, "--overwrite", monkeypatch=monkeypatch)
    assert code == 0, text  # its own version: replaced
    version_dir = cwd / "gg" / "artifacts" / "com.example.Safe" / "1.0.0"
    mine = plant(version_dir, "readme.txt")
    code, text = edgekit(cwd, *args, "--overwrite", monkeypatch=monkeypatch)
    assert code == 2 and "readme.txt" in text and survived(mine)


# -- recipe validate ---------------------------------------------------------------------------
def test_recipe_validate_writes_nothing(tmp_path, monkeypatch):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"RecipeFormatVersion": "2020-01-25"}))
    code, _ = edgekit(tmp_path, "recipe", "validate", "r.json", monkeypatch=monkeypatch)
    assert code == 1 and os.listdir(tmp_path) == ["r.json"]


# -- simulate ----------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["run", ".", "gg"])
def test_simulate_refuses_a_run_folder_it_did_not_write(tmp_path, monkeypatch, target):
    (tmp_path / "gg" / "recipes").mkdir(parents=True)
    (tmp_path / "gg" / "artifacts").mkdir()
    mine = plant(tmp_path / "run")
    before = sorted(os.listdir(tmp_path))
    code, text = edgekit(
        tmp_path, "simulate", "--component", "gg", "--devices", "1", "--duration", "1",
        "-o", target, monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 2 and target in text, text
    assert survived(mine) and sorted(os.listdir(tmp_path)) == before
    assert sorted(os.listdir(tmp_path / "run")) == ["notes.txt"]


def test_simulate_run_folder_is_marked_and_replaced(tmp_path):
    """A run folder simulate made is replaced by the next run; the marker says it is ours."""
    from edgekit.toolkit.simulator.runner import RUN_KIND, SimulateOptions, claim_run_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    owned.write_marker(run, RUN_KIND)
    old = claim_run_dir(SimulateOptions(component_dir=tmp_path / "gg", run_dir=run))
    assert old is not None and (old / "summary.json").is_file() and not run.exists()


def test_a_users_file_in_a_subfolder_of_a_run_folder_keeps_it_from_being_replaced(tmp_path):
    """The marker used to list top-level entries only: a note put in run/devices/ was deleted
    with the folder by the next run. A complete folder's marker lists every file below it."""
    from edgekit.toolkit.simulator.runner import RUN_KIND, SimulateOptions, claim_run_dir

    run = tmp_path / "run"
    (run / "devices" / "sim-001" / "logs").mkdir(parents=True)
    (run / "devices" / "sim-001" / "logs" / "main.log").write_text("log")
    (run / "fleet.db").write_text("db")
    owned.write_marker(run, RUN_KIND)
    (run / "fleet.db-wal").write_text("sqlite's, beside a file edgekit wrote")
    (run / ".fleet.db.tmp").write_text("our temporary")
    mine = run / "devices" / "notes.txt"
    mine.write_text("my notes")
    options = SimulateOptions(component_dir=tmp_path / "gg", run_dir=run)
    with pytest.raises(BadInputError, match="devices/notes.txt"):
        claim_run_dir(options)
    assert mine.read_text() == "my notes"
    mine.unlink()
    old = claim_run_dir(options)  # sqlite's journal and our temporary are ours: replaced
    assert old is not None and not run.exists()


def test_a_marker_written_before_its_run_filled_the_folder_checks_the_top_level(tmp_path):
    """The demo claims its folder first (`also`: what its run will make): such a marker cannot
    list files yet, and the top-level rule applies as before."""
    folder = tmp_path / "demo"
    folder.mkdir()
    owned.write_marker(folder, "demo", also=["bundles"])
    (folder / "bundles").mkdir()
    (folder / "bundles" / "made-later.onnx").write_text("x")
    assert owned.marker_record(folder) == ("demo", {owned.MARKER, "bundles"}, None)
    assert owned.owner(folder) == ("demo", [])


# -- fleet -------------------------------------------------------------------------------------
def test_fleet_collect_refuses_a_database_it_did_not_make(tmp_path, monkeypatch):
    theirs = tmp_path / "accounts.db"
    with sqlite3.connect(theirs) as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    before = theirs.read_bytes()
    text_file = plant(tmp_path, "notes.db")
    for name in ("accounts.db", "notes.db"):
        code, text = edgekit(
            tmp_path, "fleet", "collect", "--broker", "mqtt://127.0.0.1:1", "--db", name,
            "--duration", "1s", monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 2 and name in text and "fleet database" in text, text
    assert theirs.read_bytes() == before and survived(text_file)
    assert sorted(os.listdir(tmp_path)) == ["accounts.db", "notes.db"]


def test_fleet_report_html_replaces_only_its_own(tmp_path, monkeypatch):
    from edgekit.toolkit.fleet.store import SqliteStore

    SqliteStore(tmp_path / "fleet.db").close()
    mine = plant(tmp_path, "index.html")
    args = ("fleet", "report", "--db", "fleet.db", "--json", "-o")
    code, text = edgekit(tmp_path, *args, "index.html", monkeypatch=monkeypatch)
    assert code == 2 and "index.html" in text and survived(mine)
    code, text = edgekit(tmp_path, *args, "fleet.db", monkeypatch=monkeypatch)
    assert code == 2 and "input" in text
    for _ in range(2):  # a new file, then its own file again
        code, text = edgekit(tmp_path, *args, "report.html", monkeypatch=monkeypatch)
        assert code == 0, text


# -- init --------------------------------------------------------------------------------------
def test_init_force_replaces_only_what_init_wrote(tmp_path, monkeypatch):
    code, text = edgekit(tmp_path, "init", monkeypatch=monkeypatch)
    assert code == 0, text
    code, text = edgekit(tmp_path, "init", "--force", monkeypatch=monkeypatch)
    assert code == 0, text  # its own starter: rewritten
    (tmp_path / "train.py").write_text(NOTE)  # the user's own training script now
    mine = plant(tmp_path / "data", "labels.csv")
    code, text = edgekit(tmp_path, "init", "--force", monkeypatch=monkeypatch)
    assert code == 2 and "train.py" in text
    assert survived(tmp_path / "train.py") and survived(mine)


def test_init_force_refuses_a_data_folder_of_the_users(tmp_path, monkeypatch):
    mine = plant(tmp_path / "data", "train.csv")
    code, text = edgekit(tmp_path, "init", "--force", monkeypatch=monkeypatch)
    assert code == 2 and "data" in text and survived(mine)
    assert sorted(os.listdir(tmp_path)) == ["data"]


# -- run (the pipeline runner) -----------------------------------------------------------------
def test_run_refuses_to_publish_over_the_users_folder_before_any_stage(tmp_path, monkeypatch):
    code, text = edgekit(tmp_path, "init", monkeypatch=monkeypatch)
    assert code == 0, text
    mine = plant(tmp_path / "build" / "bundle", "notes.txt")
    code, text = edgekit(tmp_path, "run", "pipeline.yaml", monkeypatch=monkeypatch)
    assert code == 2 and "bundle" in text and "notes.txt" in text, text
    assert survived(mine) and os.listdir(tmp_path / "build") == ["bundle"]
    assert not (tmp_path / "model.skops").exists()  # the train stage did not run


# -- demo --------------------------------------------------------------------------------------
def test_demo_does_not_replace_a_foreign_bundle_folder(tmp_path):
    """The export stage replaces DIR/bundles/<name> only when it is a bundle edgekit wrote."""
    from edgekit.export.builder import ExportRequest, export_bundle
    from edgekit.toolkit.demo.models import breast_cancer_frame

    data = tmp_path / "data.csv"
    breast_cancer_frame().head(60).to_csv(data, index=False)
    mine = plant(tmp_path / "demo" / "bundles" / "breast-cancer")
    with pytest.raises(Exception) as caught:
        export_bundle(
            ExportRequest(
                source=f"{ROOT / 'tests' / 'factories.py'}:tabular_pipeline",
                data=data,
                output=tmp_path / "demo" / "bundles" / "breast-cancer",
                target_column="target",
                overwrite=True,  # as the demo and the pipeline runner ask
            )
        )
    assert getattr(caught.value, "exit_code", None) == 2 and "notes.txt" in str(caught.value)
    assert survived(mine)


@pytest.mark.parametrize("target", ["mine", "."])
def test_demo_refuses_a_folder_it_did_not_make_before_any_stage(tmp_path, monkeypatch, target):
    mine = plant(tmp_path / "mine")
    plant(tmp_path, "notes.txt")
    code, text = edgekit(tmp_path, "demo", "--quick", "-o", target, monkeypatch=monkeypatch)
    assert code == 2 and target in text, text
    assert "train" not in text  # refused before the first stage
    assert survived(mine) and sorted(os.listdir(tmp_path)) == ["mine", "notes.txt"]
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_demo_folder_is_claimed_and_reusable(tmp_path):
    from edgekit.toolkit.demo import output as demo_output

    demo_output.claim(tmp_path / "demo")
    (tmp_path / "demo" / "bundles").mkdir()
    demo_output.seal(tmp_path / "demo")
    demo_output.claim(tmp_path / "demo")  # a demo folder: the next demo may use it
    plant(tmp_path / "demo", "notes.txt")
    with pytest.raises(Exception, match="notes.txt"):
        demo_output.claim(tmp_path / "demo")


# -- an -o path through a file -------------------------------------------------------------------
def test_an_output_path_through_a_file_is_bad_input_for_every_writer(
    project, regression_bundle, copy_bundle, monkeypatch
):
    """`-o notes.txt/out` crashed export, package, fleet report and init with a FileExistsError /
    NotADirectoryError traceback, exit 1, while making the folders (found by tryhostile)."""
    from edgekit.toolkit.fleet.store import SqliteStore

    copy_bundle(regression_bundle, project / "b")
    SqliteStore(project / "fleet.db").close()
    mine = plant(project)
    commands = [
        (*EXPORT, "-o", "notes.txt/out"),
        (*EXPORT, "-o", "notes.txt/a/b"),
        ("package", "b", *PACKAGE, "-o", "notes.txt/gg"),
        ("fleet", "report", "--db", "fleet.db", "-o", "notes.txt/report.html"),
        ("init", "-o", "notes.txt/pipeline.yaml"),
    ]
    for args in commands:
        code, text = edgekit(project, *args, monkeypatch=monkeypatch)
        assert code == 2, (args, text)
        assert "notes.txt is a file, not a folder; nothing was changed" in text, text
        assert "Traceback" not in text and survived(mine)
