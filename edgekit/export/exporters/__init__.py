"""Exporter registry: each exporter says which objects it accepts; the first that accepts wins.

Adding a framework means adding a module that calls `register` — no if-chain to edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.export.data import SampleData


@dataclass
class ExportOptions:
    opset: int | None = None
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    legacy: bool = False
    weights: Path | None = None
    task: str | None = None
    labels: list[Any] | None = None
    outputs: list[str] | None = None  # torch: the named outputs to keep (default: all)
    pooling: str | None = None  # torch encoders: mean | cls | none (default: detected)


@dataclass
class ExportResult:
    onnx_path: Path
    framework: str
    family: str
    task: str
    signature: dict[str, Any]
    feeds: dict[str, np.ndarray]
    native_outputs: dict[str, np.ndarray]
    versions: dict[str, str | None]
    opset: int | None = None
    notes: list[str] = field(default_factory=list)
    # A known cause of a parity failure and its way out, given with the gate's message.
    parity_hint: str | None = None


class Exporter(Protocol):
    name: str

    def accepts(self, obj: Any) -> bool: ...

    def text_columns(self, obj: Any) -> list[str]:
        """Data columns the model reads as text, whatever a CSV reader makes of them."""
        ...

    def export(
        self, obj: Any, data: SampleData, options: ExportOptions, workdir: Path
    ) -> ExportResult: ...


_REGISTRY: list[Exporter] = []


def register(exporter: Exporter) -> Exporter:
    _REGISTRY.append(exporter)
    return exporter


def registered() -> list[Exporter]:
    _load_builtin()
    return list(_REGISTRY)


def _load_builtin() -> None:
    # Imported lazily: each pulls in a heavy framework only when present.
    from edgekit.export.exporters import onnx_file, sklearn_exporter, torch_exporter  # noqa: F401


def exporter_for(obj: Any) -> Exporter:
    for exporter in registered():
        if exporter.accepts(obj):
            return exporter
    raise BadInputError(
        f"edgekit cannot export a {type(obj).__module__}.{type(obj).__qualname__}",
        hint="the factory or file must give a fitted scikit-learn estimator, a torch nn.Module, "
        "a torch ExportedProgram or an ONNX model",
    )
