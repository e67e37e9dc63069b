"""One hardware target: the validated data of a profile file (or of this machine's probe),
with the few derived facts that selection needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOCAL = "local"
DEFAULT_MODEL_MEMORY_FRACTION = 0.5
CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class TargetProfile:
    data: dict[str, Any]
    source: str  # "builtin:<file>", a user file path, or "probe"
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def title(self) -> str:
        return self.data["title"]

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    @property
    def platform(self) -> dict[str, str]:
        return self.data["platform"]

    @property
    def architecture(self) -> str:
        return self.platform["architecture"]

    @property
    def cores(self) -> int:
        return int(self.data["cpu"]["cores"])

    @property
    def threads(self) -> int:
        return int(self.data["cpu"].get("threads", self.cores))

    @property
    def features(self) -> frozenset[str]:
        return frozenset(self.data["cpu"]["features"])

    @property
    def memory_bytes(self) -> int:
        return int(self.data["memory_mb"]) * 1024 * 1024

    @property
    def model_memory_budget(self) -> int:
        """Bytes a model may take (weights plus arena): the rest is the OS, nucleus and agent's."""
        fraction = self.data.get("model_memory_fraction", DEFAULT_MODEL_MEMORY_FRACTION)
        return int(self.memory_bytes * fraction)

    @property
    def providers(self) -> list[str]:
        return list(self.data["providers"])

    @property
    def gpu(self) -> dict[str, Any] | None:
        return self.data.get("gpu")

    @property
    def prefer(self) -> list[dict[str, Any]]:
        return list(self.data["quantization"]["prefer"])

    @property
    def avoid(self) -> dict[str, str]:
        return {a["kind"]: a["reason"] for a in self.data["quantization"].get("avoid", [])}

    def providers_for(self, recipe: dict[str, Any]) -> list[str]:
        """The target's providers a recipe is meant for, in the target's order."""
        wanted = recipe.get("providers")
        return [p for p in self.providers if wanted is None or p in wanted]

    def preference_rank(self, kind: str) -> int:
        """0 for the fastest expected kind; kinds not listed rank after every listed one."""
        for i, recipe in enumerate(self.prefer):
            if recipe["kind"] == kind:
                return i
        return len(self.prefer) + (1 if kind in self.avoid else 0)

    def as_hardware(self) -> dict[str, Any]:
        """The profile in the shape of edge_agent.hardware.probe(), for code that takes a
        probed machine (quantize's `--method auto`, for one)."""
        from edge_agent.hardware import FEATURES

        return {
            "platform": dict(self.platform),
            "cpu": {
                "model": self.data["cpu"]["model"],
                "physical_cores": self.cores,
                "logical_cores": self.threads,
                "usable_cores": self.cores,
                "features": {f: f in self.features for f in FEATURES},
            },
            "memory_bytes": self.memory_bytes,
            "gpus": [self.gpu] if self.gpu else [],
            "onnxruntime": {"version": None, "providers": self.providers},
        }

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "source": self.source,
            "os": self.platform["os"],
            "architecture": self.architecture,
            "architecture.detail": self.platform.get("architecture.detail"),
            "cores": self.cores,
            "memory_mb": self.data["memory_mb"],
            "features": sorted(self.features),
            "providers": self.providers,
            "prefer": [r["kind"] for r in self.prefer],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.data, "source": self.source, "notes": list(self.notes)}
