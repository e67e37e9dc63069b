"""A component packaged with `--sign-key` runs on a simulated core: the agent takes verify_key
from the component's DefaultConfiguration (GetConfiguration over IPC), installs cryptography
offline from the pinned requirements, checks the model artifact's signature and serves."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent import signing
from edgekit.toolkit.greengrass.package import PackageRequest, package
from edgekit.toolkit.simulator.runner import SimulateOptions, simulate

pytestmark = pytest.mark.slow

NAME = "com.edgekit.test.Signed"


def test_signed_component_verifies_and_serves(tabular_bundle, tmp_path, short_dir) -> None:
    key = tmp_path / "release.pem"
    kid = signing.generate_keypair(key, tmp_path / "release.pub.pem")
    out = tmp_path / "greengrass-build"
    package(
        PackageRequest(
            bundle_dir=tabular_bundle,
            name=NAME,
            version="1.0.0",
            platforms=["linux/amd64"],
            output=out,
            sign_key=key,
        )
    )
    run = short_dir / "run"
    opts = SimulateOptions(
        component_dir=out,
        run_dir=run,
        devices=1,
        duration_s=2.0,
        qps=10.0,
        base_port=0,
        wheel_cache=tmp_path / "wheels",
    )
    summary = asyncio.run(asyncio.wait_for(simulate(opts), 300))
    device = summary["devices"]["sim-001"]
    assert device["state"] == "RUNNING" and device["restarts"] == 0, device
    log = (run / "devices" / "sim-001" / "logs" / f"{NAME}.log").read_text()
    assert f"bundle signature verified (key {kid})" in log
    assert summary["load"]["sim-001"]["ok"] > 0 and summary["load"]["sim-001"]["errors"] == 0
