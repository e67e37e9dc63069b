"""`edgekit package`: layout, recipe content, digests, determinism, selections, refusals."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from edge_agent.errors import BadInputError
from edge_agent.hashing import sha256_b64_file
from edgekit.toolkit.cli import app
from edgekit.toolkit.greengrass.casing import lower_keys
from edgekit.toolkit.greengrass.names import Platform
from edgekit.toolkit.greengrass.package import PackageRequest, package
from edgekit.toolkit.greengrass.validate import schema
from edgekit.toolkit.targets.loader import builtin_dir
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION, add_variant, load_recipe

runner = CliRunner()


def test_layout_is_the_development_kits(packaged):
    root = Path(packaged.recipe_path).parent.parent
    assert packaged.recipe_path == root / "recipes" / f"{NAME}-{VERSION}.json"
    assert packaged.artifacts_dir == root / "artifacts" / NAME / VERSION
    assert sorted(p.name for p in packaged.artifacts_dir.iterdir()) == [
        "agent.zip",
        "model-fp32.zip",
    ]
    assert not [p for p in root.rglob("*") if p.name.endswith(".partial")]
    # the folder gets the usual umask mode (a private 0700 temp folder would hide it from the
    # user running greengrass-cli or gdk)
    umask = os.umask(0o022)
    os.umask(umask)
    assert packaged.artifacts_dir.stat().st_mode & 0o777 == 0o777 & ~umask


def test_recipe_passes_the_official_schema(packaged):
    recipe = load_recipe(packaged)
    jsonschema.Draft7Validator(schema()).validate(lower_keys(recipe))
    assert packaged.validation.ok, packaged.validation.errors
    assert len(Path(packaged.recipe_path).read_bytes()) <= 16_000


def test_digests_are_base64_sha256_of_the_files(packaged):
    recipe = load_recipe(packaged)
    seen = 0
    for manifest in recipe["Manifests"]:
        for art in manifest["Artifacts"]:
            file = packaged.artifacts_dir / art["Uri"].rsplit("/", 1)[-1]
            assert art["Algorithm"] == "SHA-256"
            assert art["Digest"] == sha256_b64_file(file)
            assert art["Unarchive"] == "ZIP"
            assert art["Permission"] == {"Read": "OWNER", "Execute": "NONE"}
            seen += 1
    assert seen == 4


def test_same_input_packs_to_the_same_digests(tabular_bundle, tmp_path, packaged):
    again = package(
        PackageRequest(bundle_dir=tabular_bundle, name=NAME, version=VERSION, output=tmp_path / "b")
    )
    assert again.artifacts == packaged.artifacts
    assert again.recipe_path.read_bytes() == packaged.recipe_path.read_bytes()
    with zipfile.ZipFile(again.artifacts_dir / "agent.zip") as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_one_manifest_per_platform_no_catch_all(packaged):
    recipe = load_recipe(packaged)
    platforms = [m["Platform"] for m in recipe["Manifests"]]
    assert platforms == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "aarch64"},
    ]


def test_least_privilege_access_control(packaged):
    acl = load_recipe(packaged)["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    mqtt = acl["aws.greengrass.ipc.mqttproxy"]
    grants = {tuple(p["operations"]): p["resources"] for p in mqtt.values()}
    assert grants == {
        ("aws.greengrass#PublishToIoTCore",): ["dt/edgekit/{iot:thingName}/#"],
        ("aws.greengrass#SubscribeToIoTCore",): ["cmd/edgekit/{iot:thingName}/#"],
    }
    pubsub = acl["aws.greengrass.ipc.pubsub"]
    resources = [r for p in pubsub.values() for r in p["resources"]]
    assert resources and all(r.startswith(f"edgekit/{NAME}/") for r in resources)
    everything = [r for svc in acl.values() for p in svc.values() for r in p["resources"]]
    assert "*" not in everything and "#" not in everything


def test_default_configuration_numbers_are_strings(packaged):
    config = load_recipe(packaged)["ComponentConfiguration"]["DefaultConfiguration"]
    assert config["window_s"] == "60" and config["port"] == "8080"
    assert config["host"] == "127.0.0.1"
    assert config["capture_fraction"] == "0.0"
    assert config["drift_psi_threshold"] == "0.1"
    assert config["platforms"]["linux-aarch64"]["variant"] == "fp32"

    def numbers(node):
        if isinstance(node, dict):
            return [x for v in node.values() for x in numbers(v)]
        if isinstance(node, list):
            return [x for v in node for x in numbers(v)]
        return [node] if isinstance(node, (int, float)) else []

    assert numbers(config) == []


def test_lifecycle_venv_startup_shutdown(packaged):
    recipe = load_recipe(packaged)
    aarch64 = recipe["Manifests"][1]["Lifecycle"]
    install = aarch64["Install"]
    assert "python3 -m venv {work:path}/venv" in install["Script"]
    assert "-r {artifacts:decompressedPath}/agent/requirements.txt" in install["Script"]
    marker = install["Skipif"].split()[-1]
    assert install["Skipif"].startswith("exists ") and install["Script"].endswith(f"touch {marker}")
    assert "--no-index" not in install["Script"]
    startup = aarch64["Startup"]["Script"]
    assert "-m edge_agent serve" in startup
    assert f"--component-version {VERSION}" in startup and "--thing {iot:thingName}" in startup
    assert "--bundle {artifacts:decompressedPath}/model-fp32" in startup
    assert "--variant {configuration:/platforms/linux-aarch64/variant}" in startup
    assert "--port {configuration:/port}" in startup and "--host {configuration:/host}" in startup
    assert "Run" not in aarch64 and "Shutdown" in aarch64
    assert {k: aarch64[k]["Timeout"] for k in ("Install", "Startup", "Shutdown")} == {
        "Install": 900,
        "Startup": 180,
        "Shutdown": 15,
    }
    assert aarch64["Setenv"]["PYTHONPATH"] == "{artifacts:decompressedPath}/agent"


def test_nucleus_dependency_covers_the_features_used(packaged):
    dep = load_recipe(packaged)["ComponentDependencies"]["aws.greengrass.Nucleus"]
    assert dep == {"VersionRequirement": ">=2.6.0 <3.0.0", "DependencyType": "SOFT"}


def test_agent_archive_has_the_package_and_pinned_requirements(packaged):
    import onnxruntime

    with zipfile.ZipFile(packaged.artifacts_dir / "agent.zip") as zf:
        names = zf.namelist()
        requirements = zf.read("requirements.txt").decode()
    assert "edge_agent/__init__.py" in names and "edge_agent/schemas/manifest.schema.json" in names
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert not [n for n in names if n.startswith(("edgekit/toolkit/", "edgekit/export/"))]
    assert f"onnxruntime=={onnxruntime.__version__}" in requirements.splitlines()
    for pkg in ("numpy==", "awsiotsdk==", "awscrt=="):
        assert any(line.startswith(pkg) for line in requirements.splitlines())


def test_selection_drives_each_platform_and_bundle_is_restricted(tuned_bundle, tmp_path):
    result = package(
        PackageRequest(bundle_dir=tuned_bundle, name=NAME, version=VERSION, output=tmp_path / "o")
    )
    amd64, aarch64 = result.plans
    assert (aarch64.target, aarch64.variant) == ("rpi4", "alt")
    assert aarch64.session_options == {"intra_op_num_threads": 2}
    assert amd64.variant == "fp32" and amd64.notice and "fp32" in amd64.notice
    recipe = load_recipe(result)
    config = recipe["ComponentConfiguration"]["DefaultConfiguration"]["platforms"]
    assert config["linux-aarch64"]["session_options"] == {"intra_op_num_threads": "2"}
    startup = recipe["Manifests"][1]["Lifecycle"]["Startup"]["Script"]
    assert "--target {configuration:/platforms/linux-aarch64/target}" in startup
    assert "--target" not in recipe["Manifests"][0]["Lifecycle"]["Startup"]["Script"]
    with zipfile.ZipFile(result.artifacts_dir / "model-alt.zip") as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert "alt.onnx" in names and "fp32.onnx" not in names
    assert list(manifest["variants"]) == ["alt"] and list(manifest["selection"]) == ["rpi4"]
    assert {a["Uri"].rsplit("/", 1)[-1] for a in recipe["Manifests"][1]["Artifacts"]} == {
        "agent.zip",
        "model-alt.zip",
    }


def test_target_override_and_catch_all_and_yaml(tuned_bundle, tmp_path):
    result = package(
        PackageRequest(
            bundle_dir=tuned_bundle,
            name=NAME,
            version=VERSION,
            platforms=["linux/aarch64"],
            targets={Platform("linux", "aarch64"): "rpi5"},
            catch_all=True,
            fmt="yaml",
            output=tmp_path / "o",
        )
    )
    assert result.recipe_path.name == f"{NAME}-{VERSION}.yaml"
    text = result.recipe_path.read_text()
    assert "RecipeFormatVersion: '2020-01-25'" in text
    recipe = yaml.safe_load(text)
    assert [m["Platform"] for m in recipe["Manifests"]] == [
        {"os": "linux", "architecture": "aarch64"},
        {"os": "linux", "architecture": "*"},
    ]
    assert result.plans[0].target == "rpi5" and result.plans[0].variant == "fp32"
    assert result.validation.ok


@pytest.mark.parametrize(
    "name,version",
    [
        ("com/evil", "1.0.0"),
        ("com example", "1.0.0"),
        ("..", "1.0.0"),
        (NAME, "1.0"),
        (NAME, "1.0.0/x"),
    ],
)
def test_bad_name_or_version_refused_before_writing(tabular_bundle, tmp_path, name, version):
    out = tmp_path / "gb"
    res = runner.invoke(
        app, ["package", str(tabular_bundle), "--name", name, "--version", version, "-o", str(out)]
    )
    assert res.exit_code == 2, res.output
    assert not out.exists()


def test_existing_version_refused_then_overwritten(tabular_bundle, tmp_path):
    out = tmp_path / "gb"
    args = ["package", str(tabular_bundle), "--name", NAME, "--version", VERSION, "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "already packaged" in res.output
    res = runner.invoke(app, [*args, "--overwrite", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (
        data["validation"]["ok"]
        and "greengrass-cli deployment create" in data["local_deploy_command"]
    )
    assert f'--merge "{NAME}={VERSION}"' in data["local_deploy_command"]


def test_preflight_error_blocks_packaging_unless_forced(tabular_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "gpu"
    shutil.copytree(tabular_bundle, bundle)
    add_variant(
        bundle,
        "trt",
        {"rpi4": {"variant": "trt", "provider": "TensorrtExecutionProvider", "reason": "test"}},
    )
    out = tmp_path / "gb"
    args = ["package", str(bundle), "--name", NAME, "--version", VERSION, "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "TensorrtExecutionProvider" in res.output and not (out / "recipes").exists()
    res = runner.invoke(app, [*args, "--force", "--json"])
    assert res.exit_code == 0, res.output
    findings = [f for p in json.loads(res.stdout)["platforms"] for f in p["findings"]]
    assert any(f["check"] == "provider" and f["severity"] == "error" for f in findings)


def test_arm64_platform_is_refused(tabular_bundle, tmp_path):
    res = runner.invoke(
        app,
        [
            "package",
            str(tabular_bundle),
            "--name",
            NAME,
            "--version",
            VERSION,
            "--platform",
            "linux/arm64",
            "-o",
            str(tmp_path / "gb"),
        ],
    )
    assert res.exit_code == 2 and "aarch64" in res.output


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--python-version", "abc"], "--python-version 'abc'"),
        (["--python-version", "2.7"], "--python-version '2.7'"),
        (["--host", ""], "--host ''"),
        (["--host", "0.0.0.0; reboot"], "is not an address"),
        (["--host", "--port"], "is not an address"),
        (["--publisher", " "], "--publisher is empty"),
        (["--platform", "windows/amd64"], "only Linux cores run"),
        (["--target", "linux/amd64=nope"], "no target profile 'nope'"),
        (["--target", "linux/amd64=rpi4"], "rpi4 is an aarch64 target"),
        (["--targets-dir", "/nonexistent-dir"], "is not a folder"),
    ],
)
def test_bad_options_refused_before_writing(tabular_bundle, tmp_path, extra, message):
    out = tmp_path / "gb"
    args = ["package", str(tabular_bundle), "--name", NAME, "--version", VERSION, "-o", str(out)]
    res = runner.invoke(app, [*args, *extra])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not out.exists()


def test_output_that_is_a_file_is_refused(tabular_bundle, tmp_path):
    out = tmp_path / "file"
    out.write_text("keep me")
    args = ["package", str(tabular_bundle), "--name", NAME, "--version", VERSION, "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "is a file, not a folder" in res.output
    assert out.read_text() == "keep me"


def test_32bit_arm_has_no_onnxruntime_wheel(tabular_bundle, tmp_path):
    out = tmp_path / "gb"
    args = ["package", str(tabular_bundle), "--name", NAME, "--version", VERSION, "-o", str(out)]
    res = runner.invoke(app, [*args, "--platform", "linux/arm"])
    assert res.exit_code == 1 and "publishes no wheel for linux/arm" in res.output
    assert not out.exists()
    assert runner.invoke(app, [*args, "--platform", "linux/arm", "--force"]).exit_code == 0


def test_user_target_profile_from_targets_dir(tuned_bundle, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    tiny = yaml.safe_load(Path(builtin_dir() / "rpi4.yaml").read_text())
    tiny.update(name="tiny-arm", memory_mb=64)  # too little memory for the model plus runtime
    (profiles / "tiny-arm.yaml").write_text(yaml.safe_dump(tiny))
    request = PackageRequest(
        bundle_dir=tuned_bundle,
        name=NAME,
        version=VERSION,
        platforms=["linux/aarch64"],
        targets={Platform("linux", "aarch64"): "tiny-arm"},
        output=tmp_path / "o",
        force=True,
    )
    with pytest.raises(BadInputError, match="no target profile 'tiny-arm'"):
        package(request)
    request.targets_dir = profiles
    result = package(request)
    checks = {f.check: f.severity for f in result.findings}
    assert checks == {"memory": "error"}  # the profile's own facts, not "no hardware facts"


def test_recipe_over_the_size_limit_is_a_clear_error(tabular_bundle, tmp_path, monkeypatch):
    from edgekit.toolkit.greengrass import validate

    monkeypatch.setattr(validate, "MAX_RECIPE_BYTES", 4000)  # ours is about 8 KB
    out = tmp_path / "gb"
    args = ["package", str(tabular_bundle), "--name", NAME, "--version", VERSION, "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "Greengrass tools refuse recipes over 4,000" in " ".join(res.output.split())
    assert "edgekit bug" not in res.output
    assert not out.exists()  # not even the folders


def test_install_marker_follows_requirements_not_version_or_model(packaged, tuned_bundle, tmp_path):
    """A new component version with the same requirements reuses the device's venv; the
    marker changes only with what is installed into it."""

    def marker(result) -> str:
        return load_recipe(result)["Manifests"][0]["Lifecycle"]["Install"]["Skipif"]

    newer = package(
        PackageRequest(bundle_dir=tuned_bundle, name=NAME, version="9.9.9", output=tmp_path / "n")
    )
    assert marker(newer) == marker(packaged)
    other_python = package(
        PackageRequest(
            bundle_dir=tuned_bundle,
            name=NAME,
            version="9.9.9",
            output=tmp_path / "p",
            python_version="3.12",
        )
    )
    assert marker(other_python) != marker(packaged)
