"""Can this machine stand in for a target? Only where the same kernels would run.

onnxruntime picks its kernels from the CPU's instruction set at run time, and nothing can
switch that off, so a target is emulated honestly only when it has the same architecture and
the same kernel tier for every precision. What may differ is the core count (we cap threads
and pin CPUs) and the memory (we check the model fits); providers must exist here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.toolkit.targets.profile import TargetProfile

# Highest tier first: the kernel family onnxruntime (MLAS) would use for each precision.
TIERS: dict[str, dict[str, tuple[str, ...]]] = {
    "x86": {
        "int8": ("amx", "avx512_vnni", "avx_vnni", "avx512f", "avx2"),
        "fp32": ("avx512f", "avx2"),
        "fp16": ("fp16",),
    },
    "arm": {
        "int8": ("i8mm", "dotprod", "neon"),
        "fp32": ("sve", "neon"),
        "fp16": ("fp16",),
    },
}
FAMILY = {"amd64": "x86", "x86": "x86", "aarch64": "arm", "arm": "arm"}


def kernel_tiers(architecture: str, features: frozenset[str]) -> dict[str, str]:
    table = TIERS.get(FAMILY.get(architecture, ""), {})
    return {
        precision: next((f for f in order if f in features), "baseline")
        for precision, order in table.items()
    }


@dataclass
class Emulation:
    possible: bool
    reasons: list[str] = field(default_factory=list)  # why not, when not possible
    max_threads: int = 1
    limits: list[str] = field(default_factory=list)  # what differs but is emulated


def can_emulate(target: TargetProfile, local: TargetProfile) -> Emulation:
    """Whether `target` may be measured on `local`, and under which thread cap."""
    reasons = []
    if target.is_local:
        return Emulation(True, max_threads=local.cores)
    if FAMILY.get(target.architecture) != FAMILY.get(local.architecture):
        reasons.append(f"{target.architecture} code cannot run on this {local.architecture} CPU")
    else:
        mine = kernel_tiers(local.architecture, local.features)
        theirs = kernel_tiers(target.architecture, target.features)
        for precision, tier in theirs.items():
            if mine.get(precision) != tier:
                reasons.append(
                    f"{precision} kernels would use {mine.get(precision)} here but {tier} there"
                )
    missing = [p for p in target.providers if p not in local.providers]
    if target.providers[0] in missing:
        reasons.append(
            f"its main provider {target.providers[0]} is not installed here; "
            "timing another provider would say nothing about the device"
        )
    limits = []
    if missing:
        limits.append(f"providers not installed here, not measured: {', '.join(missing)}")
    threads = min(target.cores, local.cores)
    if target.cores > local.cores:
        limits.append(
            f"the target has {target.cores} cores, this machine {local.cores}: "
            f"threads above {local.cores} not measured"
        )
    elif target.cores < local.cores:
        limits.append(f"pinned to {target.cores} of {local.cores} CPUs")
    return Emulation(not reasons, reasons, threads, limits)
