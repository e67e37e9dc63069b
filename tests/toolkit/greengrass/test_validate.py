"""`edgekit recipe validate` catches each problem on hand-made bad recipes, with its JSON path."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_agent.hashing import sha256_b64_file
from edgekit.toolkit.cli import app
from edgekit.toolkit.greengrass.validate import validate_file, validate_recipe
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION

runner = CliRunner()
DIGEST = "lb4azsp0uDeBl6sK/A4UlRDHbi/Zup6eqwIk81Dt35M="


def good() -> dict:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Hand",
        "ComponentVersion": "1.2.3",
        "ComponentConfiguration": {
            "DefaultConfiguration": {
                "port": "8080",
                "accessControl": {
                    "aws.greengrass.ipc.mqttproxy": {
                        "com.example.Hand:mqttproxy:1": {
                            "operations": ["aws.greengrass#PublishToIoTCore"],
                            "resources": ["dt/hand/{iot:thingName}/#"],
                        }
                    }
                },
            }
        },
        "ComponentDependencies": {
            "aws.greengrass.Nucleus": {"VersionRequirement": ">=2.6.0 <3.0.0"}
        },
        "Manifests": [
            {
                "Platform": {"os": "linux", "architecture": "aarch64", "runtime": "*"},
                "Lifecycle": {
                    "Run": "python3 {artifacts:decompressedPath}/app/main.py "
                    "--port {configuration:/port} --data {artifacts:path}/data.bin"
                },
                "Artifacts": [
                    {
                        "Uri": "s3://b/app.zip",
                        "Unarchive": "ZIP",
                        "Digest": DIGEST,
                        "Algorithm": "SHA-256",
                    },
                    {"Uri": "s3://b/data.bin"},
                ],
            }
        ],
    }


def errors(recipe: dict, **kw) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in validate_recipe(recipe, **kw):
        if p.severity == "error":
            found.setdefault(p.code, []).append(p.path)
    return found


def test_hand_written_good_recipe_has_no_errors_or_lite_notes():
    problems = validate_recipe(good(), size_bytes=len(json.dumps(good())))
    assert [p for p in problems if p.severity == "error"] == []
    # the one warning: {iot:thingName} in accessControl needs the nucleus's interpolation
    (note,) = [p for p in problems if not p.lite]
    assert note.code == "config-interpolation" and "interpolateComponentConfiguration" in (
        note.message
    )
    assert note.path.endswith("['com.example.Hand:mqttproxy:1'].resources[0]")


def _set(recipe, path, value):
    node = recipe
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


M0 = ["Manifests", 0]
ACL_RESOURCES = [
    "ComponentConfiguration",
    "DefaultConfiguration",
    "accessControl",
    "aws.greengrass.ipc.mqttproxy",
    "com.example.Hand:mqttproxy:1",
    "resources",
]
CASES = {
    "arm64": (
        M0 + ["Platform", "architecture"],
        "arm64",
        "platform-value",
        "$.Manifests[0].Platform.architecture",
    ),
    "detail": (
        M0 + ["Platform", "architecture.detail"],
        "arm71",
        "platform-value",
        "$.Manifests[0].Platform['architecture.detail']",
    ),
    "regex": (
        M0 + ["Platform", "architecture"],
        "/arm64|x86_64/",
        "platform-value",
        "$.Manifests[0].Platform.architecture",
    ),
    "unzipped-dir": (
        M0 + ["Lifecycle", "Run"],
        "run {artifacts:decompressedPath}/data/x",
        "variable-artifact",
        "$.Manifests[0].Lifecycle.Run",
    ),
    "artifact-path": (
        M0 + ["Lifecycle", "Run"],
        "cat {artifacts:path}/missing.bin",
        "variable-artifact",
        "$.Manifests[0].Lifecycle.Run",
    ),
    "unknown-var": (
        M0 + ["Lifecycle", "Run"],
        "echo {iot:thing}",
        "variable-unknown",
        "$.Manifests[0].Lifecycle.Run",
    ),
    "dep-var": (
        M0 + ["Lifecycle", "Run"],
        "echo {com.other:configuration:/x}",
        "variable-dependency",
        "$.Manifests[0].Lifecycle.Run",
    ),
    "hex-digest": (
        M0 + ["Artifacts", 0, "Digest"],
        "ab" * 32,
        "digest-format",
        "$.Manifests[0].Artifacts[0].Digest",
    ),
    "algorithm": (
        M0 + ["Artifacts", 0, "Algorithm"],
        "MD5",
        "digest-algorithm",
        "$.Manifests[0].Artifacts[0].Algorithm",
    ),
    "uri": (
        M0 + ["Artifacts", 1, "Uri"],
        "https://example.com/data.bin",
        "uri-scheme",
        "$.Manifests[0].Artifacts[1].Uri",
    ),
    "dup-artifact": (
        M0 + ["Artifacts", 1, "Uri"],
        "s3://other/app.zip",
        "duplicate-artifact",
        "$.Manifests[0].Artifacts[1].Uri",
    ),
    "unarchive": (
        M0 + ["Artifacts", 0, "Unarchive"],
        "TAR",
        "schema",
        "$.Manifests[0].Artifacts[0].Unarchive",
    ),
    "format": (["RecipeFormatVersion"], "2021-01-01", "schema", "$.RecipeFormatVersion"),
    "bad-name": (["ComponentName"], "com/example", "schema", "$.ComponentName"),
    "semver": (["ComponentVersion"], "1.2", "version", "$.ComponentVersion"),
    "timeout": (
        M0 + ["Lifecycle", "Install"],
        {"Script": "x", "Timeout": "soon"},
        "timeout",
        "$.Manifests[0].Lifecycle.Install.Timeout",
    ),
    "run-timeout-string": (
        M0 + ["Lifecycle", "Run"],
        {"Script": "x", "Timeout": "60"},
        "timeout-type",
        "$.Manifests[0].Lifecycle.Run.Timeout",
    ),
    "skipif-tab": (  # the schema's \s+ lets a tab through; the nucleus wants spaces
        M0 + ["Lifecycle", "Install"],
        {"Script": "x", "Skipif": "exists\t/opt/done"},
        "skipif",
        "$.Manifests[0].Lifecycle.Install.Skipif",
    ),
}


# Doubtful but deployable: the nucleus accepts these, so they warn (exit 0).
WARN_CASES = {
    "config-var": (
        M0 + ["Lifecycle", "Run"],
        "run --x {configuration:/nope/deeper}",
        "variable-configuration",
        "$.Manifests[0].Lifecycle.Run",
    ),
    "star": (
        ACL_RESOURCES,
        ["*"],
        "resource-star",
        "['com.example.Hand:mqttproxy:1'].resources[0]",
    ),
    "hash": (
        ACL_RESOURCES,
        ["dt/hand/x", "#"],
        "resource-star",
        "resources[1]",
    ),
}


def warnings(recipe: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in validate_recipe(recipe):
        if p.severity == "warning":
            found.setdefault(p.code, []).append(p.path)
    return found


@pytest.mark.parametrize("case", sorted(WARN_CASES))
def test_what_the_nucleus_deploys_only_warns(case):
    path, value, code, where = WARN_CASES[case]
    recipe = good()
    _set(recipe, path, value)
    assert errors(recipe) == {}, case
    assert any(where in p for p in warnings(recipe)[code]), case


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_problem_is_caught_with_its_path(case):
    path, value, code, where = CASES[case]
    recipe = good()
    _set(recipe, path, value)
    found = errors(recipe)
    assert code in found, (case, found)
    assert any(where in p for p in found[code]), (case, found[code])


def test_structural_problems():
    r = good()
    r["Manifests"][0]["Lifecycle"]["Startup"] = "also"
    assert "run-and-startup" in errors(r)
    r = good()
    r["Manifests"].insert(0, {"Platform": {"os": "*"}, "Lifecycle": {"Run": "x"}})
    assert warnings(r)["catch-all-first"] == ["$.Manifests[0].Platform"]
    assert "catch-all-first" not in errors(r)
    r = good()
    r["Manifests"][0]["Lifecycle"]["run"] = "twice"
    assert "case-collision" in errors(r)
    r = good()
    del r["ComponentName"]
    assert "schema" in errors(r)
    r = good()
    r["Manifests"] = []
    assert "no-manifest" in errors(r)
    assert "size" in errors(good(), size_bytes=16_001)


def test_warnings_nucleus_range_and_lite():
    r = good()
    r["ComponentDependencies"]["aws.greengrass.Nucleus"]["VersionRequirement"] = ">=2.4.0"
    r["Manifests"][0]["Lifecycle"] = {
        "install": {"Script": "pip install x", "Skipif": "onpath x"},
        "Run": "{artifacts:decompressedPath}/app/main.py",
    }
    del r["Manifests"][0]["Platform"]["runtime"]
    problems = validate_recipe(r)
    codes = {p.code: p for p in problems}
    assert not [p for p in problems if p.severity == "error"]
    assert codes["nucleus-range"].severity == "warning"
    assert (
        codes["lite-skipif"].lite
        and codes["lite-casing"].path == "$.Manifests[0].Lifecycle.install"
    )
    assert "lite-runtime" in codes


def test_warnings_the_nucleus_would_misread():
    r = good()
    config = r["ComponentConfiguration"]["DefaultConfiguration"]
    config.update(port=8080, limits={"rate": 0.5}, debug=True)
    r["Manifests"][0]["Lifecycle"]["Install"] = {
        "Script": "pip install x",
        "Skipif": "exists venv/.done",
        "RequiresPrivilege": "true",
    }
    problems = validate_recipe(r)
    assert not [p for p in problems if p.severity == "error"]
    warned = {p.code: p for p in problems if p.severity == "warning" and not p.lite}
    numbers = [p for p in problems if p.code == "config-number"]
    assert [p.path for p in numbers] == [
        "$.ComponentConfiguration.DefaultConfiguration.port",
        "$.ComponentConfiguration.DefaultConfiguration.limits.rate",
    ]
    assert "{configuration:/port} in the lifecycle would then read 8080.0" in numbers[0].message
    assert warned["privileged"].path == "$.Manifests[0].Lifecycle.Install.RequiresPrivilege"
    assert warned["skipif-relative"].path == "$.Manifests[0].Lifecycle.Install.Skipif"
    r["Manifests"][0]["Lifecycle"]["Install"]["Skipif"] = "! exists {work:path}/venv/.done"
    assert "skipif-relative" not in {p.code for p in validate_recipe(r)}
    assert "skipif" not in errors(r)  # negation is the nucleus's own syntax


@pytest.fixture
def build_copy(packaged, tmp_path) -> Path:
    root = Path(packaged.recipe_path).parent.parent
    dest = tmp_path / "greengrass-build"
    shutil.copytree(root, dest)
    return dest


def test_digests_checked_against_files_present(build_copy):
    recipe = build_copy / "recipes" / f"{NAME}-{VERSION}.json"
    artifacts = build_copy / "artifacts" / NAME / VERSION
    report = validate_file(recipe)
    assert report.ok and report.artifacts_dir == str(artifacts)
    model = artifacts / "model-fp32.zip"
    model.write_bytes(model.read_bytes() + b"tampered")
    found = {p.code: p.path for p in validate_file(recipe).errors}
    assert found["digest-mismatch"].endswith(".Digest")
    model.unlink()
    assert "artifact-missing" in {p.code for p in validate_file(recipe).errors}


def test_reference_inside_an_archive_must_exist(build_copy):
    recipe_path = build_copy / "recipes" / f"{NAME}-{VERSION}.json"
    recipe = json.loads(recipe_path.read_text())
    startup = recipe["Manifests"][0]["Lifecycle"]["Startup"]
    startup["Script"] = startup["Script"].replace("model-fp32", "model-fp32/not-there")
    recipe_path.write_text(json.dumps(recipe))
    report = validate_file(recipe_path)
    assert [p.path for p in report.errors if p.code == "variable-artifact"] == [
        "$.Manifests[0].Lifecycle.Startup.Script"
    ]


def test_cli_exit_codes_and_json(build_copy, tmp_path):
    recipe = build_copy / "recipes" / f"{NAME}-{VERSION}.json"
    res = runner.invoke(app, ["recipe", "validate", str(recipe)])
    assert res.exit_code == 0, res.output
    bad = copy.deepcopy(good())
    bad["Manifests"][0]["Platform"]["architecture"] = "arm64"
    bad_path = tmp_path / "bad.yaml"
    import yaml

    bad_path.write_text(yaml.safe_dump(bad))
    res = runner.invoke(app, ["recipe", "validate", str(bad_path), "--json"])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False and data["errors"] >= 1
    assert {"severity", "path", "code", "message", "lite"} <= set(data["problems"][0])
    assert any(p["path"] == "$.Manifests[0].Platform.architecture" for p in data["problems"])
    assert data["artifacts_dir"] is None


def test_packaged_digest_equals_file(packaged):
    recipe = json.loads(Path(packaged.recipe_path).read_text())
    art = recipe["Manifests"][0]["Artifacts"][0]
    assert art["Digest"] == sha256_b64_file(packaged.artifacts_dir / "agent.zip")


# -- the nucleus's own rules (issue 15): each of these disagreed with the nucleus before ------


def _recipe_with(**changes) -> dict:
    r = good()
    for dotted, value in changes.items():
        _set(r, [int(k) if k.isdigit() else k for k in dotted.split(".")], value)
    return r


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("Manifests.0.Platform.os", "all"),
        ("Manifests.0.Platform.os", "any"),
        ("Manifests.0.Platform.architecture", "all"),
        ("Manifests.0.Platform.architecture", "any"),
    ],
)
def test_all_and_any_are_platform_wildcards(where, value):
    r = _recipe_with(**{where: value})
    assert errors(r) == {}
    assert "platform-legacy-wildcard" in warnings(r)


def test_all_is_not_a_wildcard_for_other_attributes():
    # PlatformHelper treats all/any as wildcards for os and architecture only
    r = good()
    r["Manifests"][0]["Platform"]["architecture.detail"] = "all"
    assert "platform-value" in errors(r)


def test_null_step_null_platform_and_dependency_type_case_warn_with_the_schema_rule():
    r = good()
    r["Manifests"][0]["Lifecycle"]["Install"] = None
    r["Manifests"][0]["Platform"] = None
    r["ComponentDependencies"]["com.example.Other"] = {
        "VersionRequirement": "^1.0.0",
        "DependencyType": "Hard",
    }
    assert errors(r) == {}
    found = {p.code: p for p in validate_recipe(r) if p.severity == "warning"}
    for code in ("schema-null-step", "schema-null-platform", "schema-dependency-type-case"):
        assert "official recipe schema rule properties/" in found[code].message, code
    assert found["schema-null-step"].path == "$.Manifests[0].Lifecycle.Install"


def test_other_schema_findings_stay_errors():
    r = good()
    r["ComponentDependencies"]["com.example.Other"] = {
        "VersionRequirement": "^1.0.0",
        "DependencyType": "MAYBE",
    }
    assert "schema" in errors(r)


def test_build_metadata_in_a_version_is_accepted():
    assert errors(_recipe_with(ComponentVersion="1.2.3+build.7")) == {}
    assert errors(_recipe_with(ComponentVersion="1.2.3-rc.10+20260101")) == {}


@pytest.mark.parametrize("version", ["1.0.2147483648", "2147483648.0.0", "1.0.0-rc.99999999999"])
def test_version_parts_beyond_a_java_int_are_rejected(version):
    found = errors(_recipe_with(ComponentVersion=version))
    assert "version" in found
    assert "2,147,483,647" in " ".join(
        p.message for p in validate_recipe(_recipe_with(ComponentVersion=version))
    )


def test_a_component_that_depends_on_itself_is_rejected():
    r = good()
    r["ComponentDependencies"]["com.example.Hand"] = {"VersionRequirement": "1.2.3"}
    assert errors(r)["circular-dependency"] == ["$.ComponentDependencies['com.example.Hand']"]


def test_unparseable_version_requirement_is_rejected():
    r = good()
    r["ComponentDependencies"]["com.example.Other"] = {"VersionRequirement": "1.2.3.4"}
    assert "version-requirement" in errors(r)


def test_duplicate_docker_image_names_are_not_file_clashes():
    r = good()
    r["Manifests"][0]["Artifacts"] = [
        {"Uri": "docker:registry.example.com/app@sha256:" + "a" * 64},
        {"Uri": "docker:other.example.com/app@sha256:" + "a" * 64},
    ]
    assert "duplicate-artifact" not in errors(r)


def test_nucleus_range_lower_bound_follows_npm_ranges():
    r = good()
    for requirement, warns in [
        (">= 2.0.0", True),  # raised before: a space after the operator
        ("2.x", True),
        ("2.6.0 - 2.9.0", False),
        ("^2.6.0", False),
        (">2.5.9", True),  # 2.5.10 is admitted
        (">2.6.0", False),
        ("~2.5.0 || >=2.7.0", True),
    ]:
        r["ComponentDependencies"]["aws.greengrass.Nucleus"]["VersionRequirement"] = requirement
        codes = {p.code for p in validate_recipe(r)}
        assert ("nucleus-range" in codes) is warns, requirement
