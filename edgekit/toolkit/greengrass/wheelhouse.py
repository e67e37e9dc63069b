"""Wheelhouse: the agent's pinned requirements as wheels for one platform, fetched with pip for
that platform's tags, so Install on the device runs `pip install --no-index` with no network.

pip expands only the legacy manylinux2014/2010 aliases, so every manylinux_2_N tag from the
device's glibc down to 2.17 is passed explicitly.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from edge_agent.errors import BadInputError, CheckFailedError
from edgekit.toolkit.greengrass.archive import build_zip
from edgekit.toolkit.greengrass.names import Platform

PIP_ARCH = {"amd64": "x86_64", "aarch64": "aarch64", "arm": "armv7l", "x86": "i686"}
DEFAULT_GLIBC = "2.28"
OLDEST_MANYLINUX = 17


def archive_name(platform: Platform) -> str:
    return f"wheels-{platform.key}.zip"


def unpack_dir(platform: Platform) -> str:
    return f"wheels-{platform.key}"


def platform_tags(platform: Platform, glibc: str = DEFAULT_GLIBC) -> list[str]:
    """pip `--platform` values for a Linux device with this glibc, newest first."""
    if platform.os != "linux":
        raise BadInputError(f"`wheelhouse` supports Linux platforms only, not {platform.label}")
    arch = PIP_ARCH[platform.architecture]
    if platform.architecture == "arm":
        # manylinux armv7l wheels are rare: the common source is piwheels' linux_armv7l.
        return ["linux_armv7l"]
    major, _, minor = glibc.partition(".")
    if major != "2" or not minor.isdigit():
        raise BadInputError(f"`glibc` {glibc!r} is not a version like 2.28")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(int(minor), OLDEST_MANYLINUX - 1, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def pip_download_command(
    platform: Platform,
    requirements: Path,
    dest: Path,
    python_version: str,
    glibc: str = DEFAULT_GLIBC,
    find_links: Path | None = None,
) -> list[str]:
    abi = "cp" + python_version.replace(".", "")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        "-d",
        str(dest),
        "-r",
        str(requirements),
    ]
    for tag in platform_tags(platform, glibc):
        cmd += ["--platform", tag]
    if find_links is not None:
        cmd += ["--no-index", "--find-links", str(find_links)]
    return cmd


def build_wheelhouse(
    platform: Platform,
    requirements: str,
    dest_dir: Path,
    python_version: str,
    glibc: str = DEFAULT_GLIBC,
    find_links: Path | None = None,
    timeout_s: float = 900,
) -> Path:
    """Download the wheels for `platform` and zip them as wheels-<os>-<arch>.zip."""
    with tempfile.TemporaryDirectory(prefix="edgekit-wheels-") as tmp:
        work = Path(tmp)
        req = work / "requirements.txt"
        req.write_text(requirements, "utf-8")
        wheels = work / "wheels"
        cmd = pip_download_command(platform, req, wheels, python_version, glibc, find_links)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise CheckFailedError(
                f"pip download for {platform.label} took longer than {timeout_s:.0f} s",
                hint="check the connection to the package index, or pass `wheel_source` DIR",
            ) from exc
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise CheckFailedError(
                f"pip could not fetch wheels of the agent's requirements for {platform.label} "
                f"(Python {python_version}, glibc {glibc}):\n{tail}",
                hint="a pinned package may have no wheel for this platform; try another "
                "--python-version/--glibc, or package without --wheelhouse (Install then needs "
                "network on the device)",
            )
        found = sorted(wheels.glob("*.whl"))
        if not found:
            raise CheckFailedError(f"pip downloaded no wheels for {platform.label}")
        # Unarchive: ZIP unpacks wheels-<key>.zip into {artifacts:decompressedPath}/wheels-<key>/,
        # so the wheels sit at the archive's root.
        return build_zip(
            [(w.name, w) for w in found],
            dest_dir / archive_name(platform),
        )
