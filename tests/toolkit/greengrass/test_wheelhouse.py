"""--wheelhouse: real `pip download` for the device's tags, from a small local wheelhouse (and,
marked `network`, a resolution check against the package index, skipped when unreachable)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_agent.errors import CheckFailedError
from edgekit.toolkit.greengrass import agent_artifact, wheelhouse
from edgekit.toolkit.greengrass.names import Platform
from edgekit.toolkit.greengrass.package import PackageRequest, package
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION, load_recipe

AARCH64 = Platform("linux", "aarch64")
BINARY_TAGS = {
    "numpy": "cp311-cp311-manylinux_2_27_aarch64",
    "onnxruntime": "cp311-cp311-manylinux_2_27_aarch64",
    "protobuf": "cp39-abi3-manylinux2014_aarch64",
    "awscrt": "cp311-abi3-manylinux_2_17_aarch64",
}


def make_wheel(folder: Path, name: str, version: str, tag: str) -> Path:
    """A minimal valid wheel (metadata only): enough for pip to select and download it."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            f"{dist}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
        zf.writestr(
            f"{dist}.dist-info/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n",
        )
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="module")
def local_index(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    for pin in agent_artifact.closure(AARCH64, "3.11"):
        make_wheel(folder, pin.name, pin.version, BINARY_TAGS.get(pin.name, "py3-none-any"))
    return folder


def test_platform_tags_cover_every_glibc_down_to_manylinux2014():
    tags = wheelhouse.platform_tags(AARCH64, "2.28")
    assert tags[0] == "manylinux_2_28_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert "manylinux_2_17_aarch64" in tags and len(tags) == 13


def test_package_with_a_local_wheelhouse(tabular_bundle, tmp_path, local_index):
    result = package(
        PackageRequest(
            bundle_dir=tabular_bundle,
            name=NAME,
            version=VERSION,
            platforms=["linux/aarch64"],
            wheelhouse=True,
            wheel_source=local_index,
            output=tmp_path / "gb",
        )
    )
    manifest = load_recipe(result)["Manifests"][0]
    files = [a["Uri"].rsplit("/", 1)[-1] for a in manifest["Artifacts"]]
    assert files == ["agent.zip", "model-fp32.zip", "wheels-linux-aarch64.zip"]
    install = manifest["Lifecycle"]["Install"]
    assert (
        "--no-index --find-links {artifacts:decompressedPath}/wheels-linux-aarch64"
        in install["Script"]
    )
    assert "sys.version_info[:2] != (3, 11)" in install["Script"] and install["Timeout"] == 300
    with zipfile.ZipFile(result.artifacts_dir / "wheels-linux-aarch64.zip") as zf:
        wheels = sorted(zf.namelist())
    expected = sorted(p.name for p in local_index.glob("*.whl"))
    assert wheels == expected and any("onnxruntime" in w and "aarch64" in w for w in wheels)
    assert result.validation.ok


def test_wheelhouse_fails_clearly_without_a_wheel_for_the_platform(tmp_path, local_index):
    wrong = tmp_path / "x86"
    wrong.mkdir()
    for whl in local_index.glob("*.whl"):
        if "onnxruntime" not in whl.name:
            (wrong / whl.name).write_bytes(whl.read_bytes())
    pin = next(p for p in agent_artifact.closure(AARCH64, "3.11") if p.name == "onnxruntime")
    make_wheel(wrong, "onnxruntime", pin.version, "cp311-cp311-manylinux_2_27_x86_64")
    requirements = agent_artifact.requirements_text([AARCH64], "3.11")
    with pytest.raises(CheckFailedError, match="linux/aarch64"):
        wheelhouse.build_wheelhouse(AARCH64, requirements, tmp_path, "3.11", find_links=wrong)


def _pip(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.network
def test_pinned_requirements_resolve_for_aarch64_on_the_index(tmp_path):
    """Resolution only (`pip install --dry-run --report`, metadata, no wheels downloaded)."""
    packaging_pin = agent_artifact.installed_version("packaging")
    try:
        probe = _pip(
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(tmp_path / "p"),
            f"packaging=={packaging_pin}",
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("package index unreachable (timeout)")
    if probe.returncode != 0:
        pytest.skip(f"package index unreachable: {probe.stderr.strip().splitlines()[-1:]}")
    req = tmp_path / "requirements.txt"
    req.write_text(agent_artifact.requirements_text([AARCH64], "3.11"))
    cmd = [
        "install",
        "--dry-run",
        "--ignore-installed",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        "3.11",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
        "--target",
        str(tmp_path / "t"),
        "--report",
        str(tmp_path / "report.json"),
        "-r",
        str(req),
    ]
    for tag in wheelhouse.platform_tags(AARCH64):
        cmd += ["--platform", tag]
    done = _pip(*cmd, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    urls = {i["metadata"]["name"].lower(): i["download_info"]["url"] for i in report["install"]}
    assert "aarch64" in urls["onnxruntime"] and "aarch64" in urls["numpy"]
