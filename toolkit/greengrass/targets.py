"""Which hardware target each Greengrass platform is packaged for, and what that target has.

Tune records `manifest["selection"][target]`; packaging needs one target per platform. A small
table maps platforms to the target names of the shipped profiles; `--target PLATFORM=TARGET`
overrides it. The facts about a target (ISA features, memory, cores, providers) come from
`toolkit.targets` when that package is present, else from a minimal built-in table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from edge_agent import hardware
from toolkit.greengrass.names import Platform

LOCAL = "local"
GIB = 1024**3

# Preference order per architecture when the bundle has selections for several targets.
PLATFORM_TARGETS: dict[str, tuple[str, ...]] = {
    "amd64": ("x86-avx2-gateway", LOCAL, "x86-avx512-vnni-server", "intel-openvino"),
    "aarch64": ("rpi4", "rpi5", "jetson-orin"),
    "arm": (),
    "x86": (),
}


@dataclass(frozen=True)
class TargetFacts:
    name: str
    architecture: str
    features: frozenset[str]
    memory_bytes: int
    cores: int
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    memory_fraction: float = 0.5
    source: str = "builtin"
    avoid: dict[str, str] = field(default_factory=dict)

    @property
    def model_memory_budget(self) -> int:
        return int(self.memory_bytes * self.memory_fraction)


# Conservative facts for the profile names, used only when toolkit.targets is not installed.
BUILTIN: dict[str, TargetFacts] = {
    "rpi4": TargetFacts("rpi4", "aarch64", frozenset({"neon"}), 4 * GIB, 4),
    "rpi5": TargetFacts("rpi5", "aarch64", frozenset({"neon", "dotprod", "fp16"}), 4 * GIB, 4),
    "jetson-orin": TargetFacts(
        "jetson-orin",
        "aarch64",
        frozenset({"neon", "dotprod", "fp16"}),
        8 * GIB,
        6,
        ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    ),
    "x86-avx2-gateway": TargetFacts(
        "x86-avx2-gateway", "amd64", frozenset({"avx2", "f16c"}), 4 * GIB, 4
    ),
    "x86-avx512-vnni-server": TargetFacts(
        "x86-avx512-vnni-server",
        "amd64",
        frozenset({"avx2", "avx512f", "avx512_vnni", "f16c"}),
        32 * GIB,
        16,
    ),
    "intel-openvino": TargetFacts(
        "intel-openvino",
        "amd64",
        frozenset({"avx2", "f16c"}),
        8 * GIB,
        4,
        ("OpenVINOExecutionProvider", "CPUExecutionProvider"),
    ),
}


def local_facts() -> TargetFacts:
    probed = hardware.probe()
    features = frozenset(k for k, v in probed["cpu"]["features"].items() if v)
    return TargetFacts(
        LOCAL,
        probed["platform"]["architecture"],
        features,
        probed["memory_bytes"] or 4 * GIB,
        probed["cpu"]["usable_cores"] or 1,
        tuple(probed["onnxruntime"]["providers"]) or ("CPUExecutionProvider",),
        source="probe",
    )


def _from_profiles(name: str) -> TargetFacts | None:
    """Facts from toolkit.targets (another package, optional): None when absent or unknown."""
    try:
        targets = importlib.import_module("toolkit.targets")
        profile = targets.get_target(name)
    except Exception:  # package missing, or a name its profiles do not know
        return None
    try:
        return TargetFacts(
            name=profile.name,
            architecture=profile.architecture,
            features=frozenset(profile.features),
            memory_bytes=int(profile.memory_bytes),
            cores=int(profile.cores),
            providers=tuple(profile.providers),
            memory_fraction=float(profile.model_memory_budget) / max(1, profile.memory_bytes),
            source=str(getattr(profile, "source", "toolkit.targets")),
            avoid=dict(getattr(profile, "avoid", {}) or {}),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def target_facts(name: str) -> TargetFacts | None:
    if name == LOCAL:
        return local_facts()
    return _from_profiles(name) or BUILTIN.get(name)


def target_architecture(name: str) -> str | None:
    facts = target_facts(name)
    return facts.architecture if facts else None


@dataclass(frozen=True)
class TargetChoice:
    platform: Platform
    target: str
    selection: dict[str, Any] | None  # the manifest's selection entry, None -> fp32 fallback
    why: str


def choose_target(
    platform: Platform, selection: dict[str, dict[str, Any]], override: str | None
) -> TargetChoice:
    """The target a platform is packaged for: the override, else the first selected target of
    that architecture in PLATFORM_TARGETS order, else the first selected one of that
    architecture at all, else the default target for the architecture (no selection)."""
    if override:
        entry = selection.get(override)
        why = f"--target {platform.label}={override}"
        return TargetChoice(platform, override, entry, why)
    preferred = PLATFORM_TARGETS.get(platform.architecture, ())
    local_arch = hardware.greengrass_architecture()
    for name in preferred:
        if name in selection and (name != LOCAL or local_arch == platform.architecture):
            return TargetChoice(platform, name, selection[name], f"selection for {name}")
    for name in sorted(selection):
        arch = local_arch if name == LOCAL else target_architecture(name)
        if arch == platform.architecture:
            return TargetChoice(platform, name, selection[name], f"selection for {name}")
    if local_arch == platform.architecture and platform.architecture == "amd64":
        default = LOCAL
    else:
        default = preferred[0] if preferred else LOCAL
    return TargetChoice(platform, default, None, "no selection for this architecture")
