"""JSON Schemas of the formats the device reads, shipped as package data."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load `<name>.schema.json` from this package."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validation_errors(document: Any, name: str) -> list[str]:
    """Every schema violation as 'path: message'; empty when valid.

    jsonschema is a workstation dependency; on a device without it only the agent's own
    structural checks run, which is why this returns [] there rather than failing.
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the device path
        return []
    validator = jsonschema.Draft202012Validator(load_schema(name))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]


def _path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
