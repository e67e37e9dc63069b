"""`edgekit package --sign-key`: every model artifact carries a signature over the manifest it
ships, the public key goes into the component's DefaultConfiguration (the agent reads it as
verify_key), and the agent's requirements gain cryptography. Without a key, none of that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_agent.contracts.bundle import Bundle
from edge_agent.errors import IntegrityError
from edge_agent.serving import model as model_mod
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION, load_recipe

EDGEKIT = str(Path(sys.executable).parent / "edgekit")


def _default_configuration(recipe_path: Path) -> dict:
    recipe = json.loads(recipe_path.read_text())
    return recipe["ComponentConfiguration"]["DefaultConfiguration"]


def test_signed_package(tabular_bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run = dict(cwd=work, capture_output=True, text=True, timeout=300, env=os.environ)
    assert subprocess.run([EDGEKIT, "keygen", "release.pem"], **run).returncode == 0
    done = subprocess.run(
        [EDGEKIT, "package", os.path.relpath(tabular_bundle, work), "--name", NAME,
         "--version", VERSION, "--sign-key", "release.pem", "--json"],
        **run,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    public = (work / "release.pub.pem").read_text()
    config = _default_configuration(work / result["recipe"])
    assert config["verify_key"].strip() == public.strip()

    artifacts = work / result["artifacts_dir"]
    with zipfile.ZipFile(artifacts / "agent.zip") as zf:
        requirements = zf.read("requirements.txt").decode().splitlines()
    assert any(line.startswith("cryptography==") for line in requirements)

    models = sorted(artifacts.glob("model-*.zip"))
    assert models
    for archive in models:
        unpacked = tmp_path / archive.stem
        with zipfile.ZipFile(archive) as zf:
            assert "manifest.sig" in zf.namelist()
            zf.extractall(unpacked)
        # what the agent does under Greengrass: verify_key from the component configuration
        loaded = model_mod.load(unpacked, verify_key=config["verify_key"])
        assert loaded.bundle.signed_by
        manifest = json.loads((unpacked / "manifest.json").read_text())
        manifest["name"] = "swapped"
        (unpacked / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        with pytest.raises(IntegrityError, match="does not verify"):
            Bundle.open(unpacked, verify_key=config["verify_key"])


def test_unsigned_package_needs_no_key(packaged) -> None:
    config = load_recipe(packaged)["ComponentConfiguration"]["DefaultConfiguration"]
    assert "verify_key" not in config
    with zipfile.ZipFile(packaged.artifacts_dir / "agent.zip") as zf:
        requirements = zf.read("requirements.txt").decode()
    assert "cryptography" not in requirements
    for archive in packaged.artifacts_dir.glob("model-*.zip"):
        with zipfile.ZipFile(archive) as zf:
            assert "manifest.sig" not in zf.namelist()


def test_a_bad_sign_key_is_refused_before_writing(tabular_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("no key here")
    done = subprocess.run(
        [EDGEKIT, "package", str(tabular_bundle), "--name", NAME, "--version", VERSION,
         "--sign-key", "junk.pem", "-o", "gg"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 2 and "signing key" in done.stderr
    assert not (tmp_path / "gg").exists()
