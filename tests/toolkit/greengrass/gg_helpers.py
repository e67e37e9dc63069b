"""Greengrass test helpers shared by the test modules."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.contracts.bundle import Bundle

NAME = "com.example.Classifier"
VERSION = "1.0.0"


def load_recipe(result) -> dict:
    return json.loads(Path(result.recipe_path).read_text("utf-8"))


def add_variant(bundle_dir: Path, name: str, selection: dict | None = None, **info) -> None:
    """Add a copy of fp32 as variant `name` (and optionally tune-style selections)."""
    bundle = Bundle.open(bundle_dir)
    bundle.add_variant(name, bundle.variant_path("fp32"), {"precision": "fp32", **info})
    if selection:
        bundle.manifest.setdefault("selection", {}).update(selection)
    bundle.save()
