"""Component names, versions and platforms, checked before anything is written.

The rules are the recipe schema's (name pattern and lengths) plus what the service and the
nucleus enforce beyond it: versions are SemVer, and platform architectures are the four values
the nucleus reports (`arm64` never matches anything).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.errors import BadInputError

# From recipe_schema.json: properties.componentname.pattern / maxLength, componentversion.maxLength.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.]+$")
NAME_MAX = 128
VERSION_MAX = 64
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

# What the nucleus reports (PlatformResolver): os and architecture values.
OS_VALUES = ("linux", "windows", "darwin")
ARCH_VALUES = ("amd64", "x86", "arm", "aarch64")
ARCH_DETAIL_VALUES = ("armv6l", "armv7l", "armv8l", "armv6b", "armv7b", "armv8b")
ARCH_ALIASES = {
    "arm64": "aarch64",
    "x86_64": "amd64",
    "x64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "armhf": "arm",
    "armv7": "arm",
    "armv7l": "arm",
}


def check_component_name(name: str) -> str:
    if not name or len(name) > NAME_MAX or not NAME_PATTERN.match(name) or set(name) == {"."}:
        raise BadInputError(
            f"component name {name!r} is not allowed",
            hint=f"use 1-{NAME_MAX} characters from A-Z a-z 0-9 - _ . (reverse DNS, e.g. "
            "com.example.Classifier), as the Greengrass recipe schema requires",
        )
    return name


def check_component_version(version: str) -> str:
    if not version or len(version) > VERSION_MAX or not SEMVER.match(version):
        raise BadInputError(
            f"component version {version!r} is not a SemVer version",
            hint=f"use MAJOR.MINOR.PATCH (e.g. 1.0.0 or 1.0.0-rc.1), at most {VERSION_MAX} "
            "characters: Greengrass component versions are SemVer",
        )
    return version


@dataclass(frozen=True)
class Platform:
    """One Greengrass platform: the manifest's `os` and `architecture`."""

    os: str
    architecture: str

    @property
    def key(self) -> str:
        """`linux-aarch64`: used in file names and configuration pointers."""
        return f"{self.os}-{self.architecture}"

    @property
    def label(self) -> str:
        return f"{self.os}/{self.architecture}"

    def recipe_platform(self) -> dict[str, str]:
        return {"os": self.os, "architecture": self.architecture}


def parse_platform(text: str) -> Platform:
    """`linux/aarch64` -> Platform; refuses values the nucleus never reports."""
    os_name, sep, arch = text.strip().lower().partition("/")
    if not sep or not os_name or not arch:
        raise BadInputError(
            f"--platform {text!r} is not OS/ARCHITECTURE",
            hint="e.g. linux/amd64 or linux/aarch64",
        )
    if os_name not in OS_VALUES:
        raise BadInputError(
            f"--platform {text!r}: os {os_name!r} is not one the nucleus reports",
            hint=f"use one of {', '.join(OS_VALUES)}",
        )
    if arch not in ARCH_VALUES:
        better = ARCH_ALIASES.get(arch)
        hint = (
            f"the nucleus reports {better!r} for this machine, never {arch!r}: use {os_name}/{better}"
            if better
            else f"use one of {', '.join(ARCH_VALUES)}"
        )
        raise BadInputError(
            f"--platform {text!r}: architecture {arch!r} never matches a Greengrass core",
            hint=hint,
        )
    return Platform(os_name, arch)


def parse_assignments(values: list[str], option: str) -> dict[Platform, str]:
    """`--target linux/aarch64=rpi5` style options -> {Platform: value}."""
    out: dict[Platform, str] = {}
    for item in values:
        left, sep, right = item.partition("=")
        if not sep or not right.strip():
            raise BadInputError(
                f"{option} {item!r} is not PLATFORM=VALUE", hint=f"e.g. {option} linux/aarch64=…"
            )
        out[parse_platform(left)] = right.strip()
    return out
