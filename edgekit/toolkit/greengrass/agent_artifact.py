"""The agent artifact: the `edge_agent` package zipped on its own, with a requirements file pinned
to the versions installed here (the ones the tests ran against).

The pins cover the agent's runtime dependencies and everything they pull in, evaluated for each
target platform's environment markers, so `pip install --no-index` from a wheelhouse finds
exactly what was tested.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import edge_agent
from edge_agent.errors import BadInputError
from edgekit.toolkit.greengrass.archive import build_zip, tree_entries
from edgekit.toolkit.greengrass.names import Platform

# The agent's runtime: DESIGN.md says numpy, onnxruntime and awsiotsdk (awscrt comes with it);
# the REST server is uvicorn + starlette (pure-Python wheels, with h11, click, anyio and idna).
AGENT_REQUIREMENTS = ("numpy", "onnxruntime", "awsiotsdk", "awscrt", "uvicorn", "starlette")
# What the optional gRPC endpoint (edge-agent serve --grpc-port) imports on the device: grpcio
# for the server and protobuf for the messages (edge_agent/serving/v2grpc/messages.py);
# grpcio does not depend on protobuf, so both are named (the "grpc" extra in pyproject.toml).
GRPC_REQUIREMENTS = ("grpcio", "protobuf")
AGENT_ARCHIVE = "agent.zip"
AGENT_DIR = "agent"  # what Unarchive: ZIP makes of agent.zip
REQUIREMENTS_FILE = "requirements.txt"

MACHINE = {"amd64": "x86_64", "aarch64": "aarch64", "arm": "armv7l", "x86": "i686"}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    via: str  # "agent" or the package that needs it

    def line(self) -> str:
        return f"{self.name}=={self.version}"


def marker_env(platform: Platform, python_version: str) -> dict[str, str]:
    """The PEP 508 environment of a Greengrass device of this platform."""
    return {
        "os_name": "posix",
        "sys_platform": platform.os,
        "platform_system": platform.os.capitalize(),
        "platform_machine": MACHINE.get(platform.architecture, platform.architecture),
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": f"{python_version}.0",
        "extra": "",
    }


def _installed(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError as exc:
        raise BadInputError(
            f"{name} is not installed here, so edgekit cannot pin the version the agent was "
            "tested with",
            hint=f"pip install {name} (the agent's runtime needs it)",
        ) from exc


def installed_version(name: str) -> str:
    return _installed(name).version


def closure(platform: Platform, python_version: str, extra: tuple[str, ...] = ()) -> list[Pin]:
    """The agent requirements (plus optional ones, e.g. cryptography for signed bundles) and
    their dependencies as installed here, for one platform."""
    env = marker_env(platform, python_version)
    pins: dict[str, Pin] = {}
    queue = [(name, "agent") for name in (*AGENT_REQUIREMENTS, *extra)]
    while queue:
        name, via = queue.pop(0)
        key = canonicalize_name(name)
        if key in pins:
            continue
        dist = _installed(name)
        pins[key] = Pin(key, dist.version, via)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not Marker(str(req.marker)).evaluate(env):
                continue
            queue.append((req.name, key))
    return sorted(pins.values(), key=lambda p: p.name)


def requirements_text(
    platforms: list[Platform], python_version: str, extra: tuple[str, ...] = ()
) -> str:
    """One requirements file for every platform: pins needed only on some carry a marker."""
    per_platform = {
        p: {pin.name: pin for pin in closure(p, python_version, extra)} for p in platforms
    }
    names = sorted({n for pins in per_platform.values() for n in pins})
    lines = [
        "# The agent's runtime, pinned to the versions edgekit was tested with.",
        f"# Python {python_version}; platforms: {', '.join(p.label for p in platforms)}.",
    ]
    for name in names:
        having = [p for p, pins in per_platform.items() if name in pins]
        pin = per_platform[having[0]][name]
        line = pin.line()
        if len(having) != len(platforms):
            machines = " or ".join(
                f'platform_machine == "{MACHINE.get(p.architecture, p.architecture)}"'
                for p in having
            )
            line += f" ; {machines}"
        lines.append(f"{line}  # via {pin.via}" if pin.via != "agent" else line)
    return "\n".join(lines) + "\n"


def agent_package_dir() -> Path:
    return Path(edge_agent.__file__).resolve().parent


def build_agent_archive(dest_dir: Path, requirements: str) -> Path:
    """agent.zip = edge_agent/ (sources and schemas, no bytecode) + requirements.txt."""
    entries: list[tuple[str, Path | bytes]] = list(
        tree_entries(agent_package_dir(), prefix="edge_agent/")
    )
    entries.append((REQUIREMENTS_FILE, requirements.encode("utf-8")))
    return build_zip(entries, dest_dir / AGENT_ARCHIVE)
