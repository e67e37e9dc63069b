"""Library versions for lineage, read without importing the heavy packages."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "edgekit",
    "numpy",
    "pandas",
    "onnx",
    "onnxruntime",
    "scikit-learn",
    "skl2onnx",
    "torch",
    "onnxscript",
    "skops",
)


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES + extra:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
