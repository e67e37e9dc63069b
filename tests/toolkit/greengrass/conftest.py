"""Greengrass fixtures: one packaged component per session, and a tuned copy of a bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit.toolkit.greengrass.package import PackageRequest, package
from tests.toolkit.greengrass.gg_helpers import NAME, VERSION, add_variant


@pytest.fixture(scope="session")
def packaged(tabular_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tabular bundle packaged for linux/amd64 and linux/aarch64 (shared; do not modify)."""
    out = tmp_path_factory.mktemp("gg") / "greengrass-build"
    return package(
        PackageRequest(bundle_dir=tabular_bundle, name=NAME, version=VERSION, output=out)
    )


@pytest.fixture
def tuned_bundle(tabular_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the tabular bundle with an extra variant `alt` selected for rpi4."""
    dest = tmp_path / "tuned"
    shutil.copytree(tabular_bundle, dest)
    add_variant(
        dest,
        "alt",
        {
            "rpi4": {
                "variant": "alt",
                "provider": "CPUExecutionProvider",
                "session_options": {"intra_op_num_threads": 2},
                "reason": "fastest within accuracy budget",
            }
        },
    )
    return dest
