"""Which hardware target each Greengrass platform is packaged for, and what that target has.

Tune records `manifest["selection"][target]`; packaging needs one target per platform. A small
table maps platforms to the target names of the shipped profiles; `--target PLATFORM=TARGET`
overrides it. The facts about a target (ISA features, memory, cores, providers) come from its
profile in `edgekit.toolkit.targets` (shipped, the user's `--targets-dir`, or `local` from probe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import hardware
from edge_agent.errors import BadInputError
from edgekit.toolkit.greengrass.names import Platform
from edgekit.toolkit.targets import LOCAL, TargetProfile, load_targets, local_profile

# Preference order per architecture when the bundle has selections for several targets.
PLATFORM_TARGETS: dict[str, tuple[str, ...]] = {
    "amd64": ("x86-avx2-gateway", LOCAL, "x86-avx512-vnni-server", "intel-openvino"),
    "aarch64": ("rpi4", "rpi5", "jetson-orin"),
    "arm": (),
    "x86": (),
}


@dataclass(frozen=True)
class TargetFacts:
    """What the preflight needs to know about a target (tests make their own)."""

    name: str
    architecture: str
    features: frozenset[str]
    memory_bytes: int
    cores: int
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    memory_fraction: float = 0.5
    source: str = "profile"
    avoid: dict[str, str] = field(default_factory=dict)

    @property
    def model_memory_budget(self) -> int:
        return int(self.memory_bytes * self.memory_fraction)

    @classmethod
    def of(cls, profile: TargetProfile) -> TargetFacts:
        return cls(
            name=profile.name,
            architecture=profile.architecture,
            features=profile.features,
            memory_bytes=profile.memory_bytes,
            cores=profile.cores,
            providers=tuple(profile.providers),
            memory_fraction=profile.model_memory_budget / max(1, profile.memory_bytes),
            source=profile.source,
            avoid=profile.avoid,
        )


def target_facts(name: str, targets_dir: Path | None = None) -> TargetFacts | None:
    """The facts of a profile by name; None when no profile has that name. A malformed
    profile under `targets_dir` is an error, never silently skipped."""
    if name == LOCAL:
        return TargetFacts.of(local_profile())
    profile = load_targets(targets_dir, include_local=False).get(name)
    return TargetFacts.of(profile) if profile else None


def target_architecture(name: str, targets_dir: Path | None = None) -> str | None:
    facts = target_facts(name, targets_dir)
    return facts.architecture if facts else None


def check_override(
    platform: Platform,
    target: str,
    selection: dict[str, dict[str, Any]],
    targets_dir: Path | None = None,
) -> None:
    """`--target PLATFORM=TARGET` must name a profile (or a target the bundle was tuned for)
    of the platform's architecture: an aarch64 selection in an amd64 manifest never runs well."""
    facts = target_facts(target, targets_dir)
    if facts is None and target not in selection:
        known = sorted({*load_targets(targets_dir, include_local=False), LOCAL, *selection})
        raise BadInputError(
            f"--target {platform.label}={target}: no target profile {target!r} and no tuned "
            "selection for it in the bundle",
            hint=f"choose one of {', '.join(known)}, or pass `targets_dir` with {target}.yaml",
        )
    if facts is not None and facts.architecture != platform.architecture:
        raise BadInputError(
            f"--target {platform.label}={target}: {target} is an {facts.architecture} target, "
            f"so its selection cannot serve {platform.label} devices",
            hint=f"pair {target} with `platforms` {platform.os}/{facts.architecture}, or choose "
            f"a target of architecture {platform.architecture}",
        )


@dataclass(frozen=True)
class TargetChoice:
    platform: Platform
    target: str
    selection: dict[str, Any] | None  # the manifest's selection entry, None -> fp32 fallback
    why: str


def choose_target(
    platform: Platform,
    selection: dict[str, dict[str, Any]],
    override: str | None,
    targets_dir: Path | None = None,
) -> TargetChoice:
    """The target a platform is packaged for: the override, else the first selected target of
    that architecture in PLATFORM_TARGETS order, else the first selected one of that
    architecture at all, else the default target for the architecture (no selection)."""
    if override:
        check_override(platform, override, selection, targets_dir)
        entry = selection.get(override)
        why = f"--target {platform.label}={override}"
        return TargetChoice(platform, override, entry, why)
    preferred = PLATFORM_TARGETS.get(platform.architecture, ())
    local_arch = hardware.greengrass_architecture()
    for name in preferred:
        if name in selection and (name != LOCAL or local_arch == platform.architecture):
            return TargetChoice(platform, name, selection[name], f"selection for {name}")
    for name in sorted(selection):
        arch = local_arch if name == LOCAL else target_architecture(name, targets_dir)
        if arch == platform.architecture:
            return TargetChoice(platform, name, selection[name], f"selection for {name}")
    if local_arch == platform.architecture and platform.architecture == "amd64":
        default = LOCAL
    else:
        default = preferred[0] if preferred else LOCAL
    return TargetChoice(platform, default, None, "no selection for this architecture")
