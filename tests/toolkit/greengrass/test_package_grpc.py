"""A component with the agent's gRPC endpoint on (Settings.grpc_port): the device installs what
the endpoint imports, pinned to the versions tested here, and the agent starts with it on."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from edge_agent.errors import BadInputError
from edgekit.toolkit.greengrass.package import PackageRequest, package
from edgekit.toolkit.greengrass.recipe import Settings
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION, load_recipe

ROOT = Path(__file__).resolve().parents[3]

# The top-level modules the agent process imports once a model is loaded and its gRPC endpoint
# is on, each with the distributions that can provide it (namespace packages may have several).
IMPORTED = r"""
import importlib.metadata as md, json, sys
before = set(sys.modules)
import onnxruntime, edge_agent.agent, edge_agent.cli, edge_agent.serving.grpc_server
dists = md.packages_distributions()
top = {name.split(".")[0] for name in set(sys.modules) - before}
stdlib = set(sys.stdlib_module_names) | {"edge_agent"}
print(json.dumps({t: dists[t] for t in sorted(top - stdlib) if t in dists}))
"""

# grpc/__init__.py imports these if they happen to be installed (try/except ImportError)
OPTIONAL = {"grpc_tools", "grpc_health", "grpc_reflection"}


@pytest.fixture(scope="module")
def grpc_packaged(tabular_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("gg-grpc") / "greengrass-build"
    return package(
        PackageRequest(
            bundle_dir=tabular_bundle,
            name=NAME,
            version=VERSION,
            output=out,
            settings=Settings(grpc_port=8081),
        )
    )


def _pins(result) -> dict[str, str]:
    with zipfile.ZipFile(result.artifacts_dir / "agent.zip") as zf:
        text = zf.read("requirements.txt").decode()
    pins = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("==")
            pins[canonicalize_name(name)] = rest.split(";")[0].split("#")[0].strip()
    return pins


def test_grpc_endpoint_pins_grpcio_and_protobuf_as_tested(grpc_packaged, packaged):
    pins = _pins(grpc_packaged)
    assert pins["grpcio"] == md.version("grpcio")
    assert pins["protobuf"] == md.version("protobuf")
    # the bounds the committed generated code needs (pyproject's grpc extra) hold for the pins
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in extra["optional-dependencies"]["grpc"]:
        req = Requirement(text)
        assert req.specifier.contains(pins[canonicalize_name(req.name)]), text
    # off by default: grpcio is not installed on devices that do not serve gRPC (protobuf is,
    # for onnxruntime)
    assert "grpcio" not in _pins(packaged)


def test_every_distribution_the_grpc_agent_imports_is_pinned(grpc_packaged):
    out = subprocess.run(
        [sys.executable, "-c", IMPORTED],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    imported = {t: {canonicalize_name(d) for d in ds} for t, ds in json.loads(out.stdout).items()}
    assert {"grpc", "google", "onnxruntime", "numpy"} <= set(imported)
    pins = set(_pins(grpc_packaged))
    missing = {t: sorted(ds) for t, ds in imported.items() if not ds & pins and t not in OPTIONAL}
    assert not missing, f"the device could not import {missing}"


def test_recipe_turns_the_endpoint_on(grpc_packaged, packaged):
    recipe = load_recipe(grpc_packaged)
    assert grpc_packaged.validation.ok, grpc_packaged.validation.errors
    config = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert config["grpc_port"] == "8081"
    for m in recipe["Manifests"]:
        assert "--grpc-port {configuration:/grpc_port}" in m["Lifecycle"]["Startup"]["Script"]
    # a different requirements file means a different venv marker: devices reinstall
    plain = load_recipe(packaged)
    assert (
        recipe["Manifests"][0]["Lifecycle"]["Install"]["Skipif"]
        != plain["Manifests"][0]["Lifecycle"]["Install"]["Skipif"]
    )
    assert "grpc_port" not in plain["ComponentConfiguration"]["DefaultConfiguration"]
    assert "--grpc-port" not in plain["Manifests"][0]["Lifecycle"]["Startup"]["Script"]


@pytest.mark.parametrize("port", [0, 70000, 8080, True, "8081"])
def test_bad_grpc_port_refused_before_writing(tabular_bundle, tmp_path, port):
    out = tmp_path / "o"
    with pytest.raises(BadInputError, match="grpc_port"):
        package(
            PackageRequest(
                bundle_dir=tabular_bundle,
                name=NAME,
                version=VERSION,
                output=out,
                settings=Settings(grpc_port=port),
            )
        )
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_startup_command_serves_grpc_from_the_artifacts(grpc_packaged, tmp_path):
    """The recipe's own Startup line, interpolated as the nucleus would, on the unpacked
    artifacts: the agent comes up with its gRPC endpoint answering."""
    import grpc

    from edge_agent.serving.v2grpc import messages as pb

    art = tmp_path / "artifacts"
    for archive in grpc_packaged.artifacts_dir.glob("*.zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(art / archive.stem)
    manifest = load_recipe(grpc_packaged)["Manifests"][0]
    script = manifest["Lifecycle"]["Startup"]["Script"].split("exec ", 1)[1]
    port = _free_port()
    values = {
        "{work:path}/venv/bin/python3": sys.executable,
        "{artifacts:decompressedPath}": str(art),
        "{iot:thingName}": "grpc-device",
        "{configuration:/host}": "127.0.0.1",
        "{configuration:/port}": "0",
        "{configuration:/grpc_port}": str(port),
    }
    for key, value in values.items():
        script = script.replace(key, value)
    script = re.sub(r"\{configuration:/platforms/[^/]+/variant\}", "fp32", script)
    assert "{" not in script, script
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(art / "agent"), "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        shlex.split(script), cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb.Stub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        channel.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"grpc=127.0.0.1:{port}" in err or f":{port}" in err, err[-2000:]


def test_cli_grpc_port_flag(tabular_bundle, tmp_path, monkeypatch):
    """`edgekit package --grpc-port N` as the README runs it (relative paths, another cwd): the
    recipe turns the endpoint on; a port equal to the REST port is refused with exit 2."""
    from typer.testing import CliRunner

    from edgekit.toolkit.cli import app

    monkeypatch.chdir(tmp_path)
    bundle = Path(os.path.relpath(tabular_bundle, tmp_path))
    args = ["package", str(bundle), "--name", NAME, "--version", VERSION, "-o", "gg"]
    res = CliRunner().invoke(app, [*args, "--grpc-port", "8081", "--json"])
    assert res.exit_code == 0, res.output
    recipe_path = next((tmp_path / "gg").rglob("recipes/*.json"))
    recipe = json.loads(recipe_path.read_text())
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["grpc_port"] == "8081"
    res = CliRunner().invoke(app, [*args, "--overwrite", "--grpc-port", "8080"])
    assert res.exit_code == 2 and "grpc_port" in res.output
