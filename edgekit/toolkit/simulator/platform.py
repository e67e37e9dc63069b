"""Manifest selection: the first manifest whose Platform matches the device wins.

A platform value is an exact string, `*` (anything, even absent), or a regular expression between
slashes (`/amd64|x86/`, matched against the whole value as Java's Pattern.matches does).
Without its own Lifecycle a manifest takes the recipe's global Lifecycle through its Selections.
"""

from __future__ import annotations

import re
from typing import Any

from edge_agent.errors import CheckFailedError
from edgekit.toolkit.simulator.recipe import Recipe, is_lifecycle_key


class NoMatchingManifest(CheckFailedError):
    """The deployment fails: no manifest of the recipe fits this device."""


# PlatformHelper: a label that starts with anything else is reserved and never matches.
SIMPLE_LABEL = re.compile(r"[a-zA-Z0-9]")
LEGACY_WILDCARD_KEYS = ("os", "architecture")


def value_matches(want: Any, have: str | None, key: str = "") -> bool:
    """PlatformHelper.isAttributeSatisfied, rule by rule."""
    if want is None or want == "*":
        return True
    want = str(want)
    if not have:
        return False
    if len(want) >= 2 and want.startswith("/") and want.endswith("/"):
        try:
            return re.fullmatch(want[1:-1], have) is not None
        except re.error:
            return False
    if key in LEGACY_WILDCARD_KEYS and want in ("all", "any"):
        return True
    if not SIMPLE_LABEL.match(want):
        return False
    return want == have


def platform_matches(platform: dict[str, Any] | None, device: dict[str, str]) -> bool:
    return all(value_matches(v, device.get(k), k) for k, v in (platform or {}).items())


def select_manifest(recipe: Recipe, device: dict[str, str]) -> dict[str, Any]:
    for manifest in recipe.manifests:
        if platform_matches(manifest.get("Platform"), device):
            return manifest
    platforms = [m.get("Platform") or {} for m in recipe.manifests]
    raise NoMatchingManifest(
        f"{recipe.name} {recipe.version}: no manifest matches the device platform {device} "
        f"(manifests: {platforms})",
        hint="add a manifest for this platform, or a catch-all manifest last",
    )


def apply_selections(node: Any, selections: list[str], *, in_setenv: bool = False) -> Any:
    """Resolve a global lifecycle's selection keys (`linux: {...}`, `Script: {linux: ...}`)."""
    if not isinstance(node, dict) or in_setenv:
        return node
    if node and not any(is_lifecycle_key(k) for k in node):
        for sel in selections:
            if sel in node:
                return apply_selections(node[sel], selections)
        return None
    out = {}
    for k, v in node.items():
        r = apply_selections(v, selections, in_setenv=k.lower() == "setenv")
        if r is not None:
            out[k] = r
    return out


def manifest_lifecycle(recipe: Recipe, manifest: dict[str, Any]) -> dict[str, Any]:
    if "Lifecycle" in manifest:
        return dict(manifest.get("Lifecycle") or {})
    selections = list(manifest.get("Selections") or ["all"])
    return apply_selections(dict(recipe.raw.get("Lifecycle") or {}), selections) or {}
