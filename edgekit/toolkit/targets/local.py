"""The `local` target: this machine as probe() sees it, in the shape of a profile file."""

from __future__ import annotations

from typing import Any

from edge_agent import hardware
from edgekit.toolkit.targets.profile import LOCAL, TargetProfile
from edgekit.toolkit.targets.rules import derive_quantization

# Providers that appear in a wheel but run nothing locally (Azure forwards to a cloud endpoint).
NOT_COMPUTE = {"AzureExecutionProvider"}


def local_profile(probed: dict[str, Any] | None = None) -> TargetProfile:
    """Build the `local` profile; cores are the CPUs this process may use (affinity, cgroups)."""
    p = probed or hardware.probe()
    cpu = p["cpu"]
    features = sorted(k for k, v in cpu["features"].items() if v)
    usable = cpu.get("usable_cores") or cpu.get("logical_cores") or 1
    physical = cpu.get("physical_cores") or usable
    providers = [x for x in p["onnxruntime"]["providers"] if x not in NOT_COMPUTE] or [
        "CPUExecutionProvider"
    ]
    gpus = p.get("gpus") or []
    memory = p.get("memory_bytes") or 0
    notes = []
    if usable < physical:
        notes.append(f"this process may use {usable} of {physical} cores (affinity or cgroup)")
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": LOCAL,
        "title": f"this machine ({cpu.get('model') or 'unknown CPU'})",
        "description": "Built from `edgekit probe`; measured, not assumed.",
        "platform": {k: v for k, v in p["platform"].items() if v},
        "cpu": {
            "model": cpu.get("model") or "unknown",
            "cores": int(min(usable, physical)),
            "threads": int(cpu.get("logical_cores") or usable),
            "features": features,
        },
        "memory_mb": max(16, memory // (1024 * 1024)),
        "gpu": (
            {"vendor": gpus[0]["vendor"], "model": gpus[0].get("model") or "unknown"}
            if gpus
            else None
        ),
        "providers": providers,
        "quantization": derive_quantization(
            p["platform"]["architecture"], set(features), providers
        ),
    }
    return TargetProfile(data=data, source="probe", notes=tuple(notes))
