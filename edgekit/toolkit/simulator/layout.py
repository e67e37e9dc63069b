"""The Greengrass root folder of one simulated device, laid out as the nucleus lays it out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GreengrassRoot:
    path: Path

    @property
    def recipes(self) -> Path:
        return self.path / "packages" / "recipes"

    def artifacts(self, name: str, version: str) -> Path:
        return self.path / "packages" / "artifacts" / name / version

    def unarchived(self, name: str, version: str) -> Path:
        return self.path / "packages" / "artifacts-unarchived" / name / version

    def work(self, name: str) -> Path:
        return self.path / "work" / name

    def log(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"

    @property
    def nucleus_log(self) -> Path:
        return self.path / "logs" / "greengrass.log"

    @property
    def config(self) -> Path:
        return self.path / "config"

    @property
    def ipc_socket(self) -> Path:
        return self.path / "ipc.socket"

    def create(self) -> GreengrassRoot:
        for d in (
            self.recipes,
            self.path / "packages" / "artifacts",
            self.path / "work",
            self.path / "logs",
            self.config,
            self.path / "deployments",
        ):
            d.mkdir(parents=True, exist_ok=True)
        return self
