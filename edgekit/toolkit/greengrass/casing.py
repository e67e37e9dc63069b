"""Canonical key casing of recipes, and the lower-cased view the official schema expects.

The Java nucleus ignores key case; Greengrass nucleus lite does not, so edgekit emits the
canonical casing of the recipe reference and warns where a recipe strays from it. Keys inside
DefaultConfiguration, Setenv, Platform attributes and dependency names belong to the author and
are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TOP = (
    "RecipeFormatVersion",
    "ComponentName",
    "ComponentVersion",
    "ComponentDescription",
    "ComponentPublisher",
    "ComponentConfiguration",
    "ComponentDependencies",
    "ComponentType",
    "ComponentSource",
    "Manifests",
    "Lifecycle",
)
CONFIGURATION = ("DefaultConfiguration",)
DEPENDENCY = ("VersionRequirement", "DependencyType")
MANIFEST = ("Name", "Platform", "Lifecycle", "Selections", "Artifacts")
PHASES = ("Setenv", "Bootstrap", "Install", "Startup", "Run", "Shutdown", "Recover")
STEP = ("Script", "RequiresPrivilege", "Skipif", "Timeout", "Setenv")
# Nucleus lite reads `Uri`; the Java nucleus takes any case (AWS's docs write `URI`).
ARTIFACT = ("Uri", "Unarchive", "Permission", "Digest", "Algorithm")
PERMISSION = ("Read", "Execute")
PLATFORM_KNOWN = ("os", "architecture", "architecture.detail", "runtime")


def _table(keys: tuple[str, ...]) -> dict[str, str]:
    return {k.lower(): k for k in keys}


# (path kind, key) -> canonical key; each node kind knows the kinds of its children.
_KINDS = {
    "top": _table(TOP),
    "configuration": _table(CONFIGURATION),
    "dependency": _table(DEPENDENCY),
    "manifest": _table(MANIFEST),
    "lifecycle": _table(PHASES),
    "step": _table(STEP),
    "artifact": _table(ARTIFACT),
    "permission": _table(PERMISSION),
    "platform": _table(PLATFORM_KNOWN),
}


def lower_keys(obj: Any) -> Any:
    """Every dict key lower-cased, recursively: the form the official schema is written for."""
    if isinstance(obj, dict):
        return {str(k).lower(): lower_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [lower_keys(v) for v in obj]
    return obj


def case_collisions(obj: Any, path: str = "$") -> Iterator[tuple[str, list[str]]]:
    """Keys of one object that differ only by case: lower-casing would merge them."""
    if isinstance(obj, dict):
        seen: dict[str, list[str]] = {}
        for k in obj:
            seen.setdefault(str(k).lower(), []).append(str(k))
        for keys in seen.values():
            if len(keys) > 1:
                yield path, keys
        for k, v in obj.items():
            yield from case_collisions(v, child(path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from case_collisions(v, f"{path}[{i}]")


def child(path: str, key: Any) -> str:
    """JSON path of a child key; keys with dots or odd characters are quoted."""
    text = str(key)
    if text.replace("_", "a").isalnum():
        return f"{path}.{text}"
    return f"{path}[{text!r}]"


def noncanonical_keys(recipe: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(path, key as written, canonical key) for every structural key not in canonical case."""
    yield from _walk(recipe, "top", "$")


def _walk(node: Any, kind: str, path: str) -> Iterator[tuple[str, str, str]]:
    if not isinstance(node, dict):
        return
    table = _KINDS.get(kind, {})
    for key, value in node.items():
        canonical = table.get(str(key).lower())
        if canonical is not None and canonical != key:
            yield child(path, key), str(key), canonical
        sub = _child_kind(kind, canonical or str(key))
        here = child(path, key)
        if sub is None:
            continue
        if sub == "manifest_list" and isinstance(value, list):
            for i, item in enumerate(value):
                yield from _walk(item, "manifest", f"{here}[{i}]")
        elif sub == "artifact_list" and isinstance(value, list):
            for i, item in enumerate(value):
                yield from _walk(item, "artifact", f"{here}[{i}]")
        elif sub == "dependencies" and isinstance(value, dict):
            for name, dep in value.items():
                yield from _walk(dep, "dependency", child(here, name))
        elif sub == "global_lifecycle" and isinstance(value, dict):
            for k, v in value.items():
                low = str(k).lower()
                if low in _KINDS["lifecycle"]:
                    yield from _walk({k: v}, "lifecycle", here)
                else:  # a selection key: a lifecycle below it
                    yield from _walk(v, "lifecycle", child(here, k))
        else:
            yield from _walk(value, sub, here)


def _child_kind(kind: str, key: str) -> str | None:
    if kind == "top":
        return {
            "ComponentConfiguration": "configuration",
            "ComponentDependencies": "dependencies",
            "Manifests": "manifest_list",
            "Lifecycle": "global_lifecycle",
        }.get(key)
    if kind == "manifest":
        return {"Lifecycle": "lifecycle", "Artifacts": "artifact_list", "Platform": "platform"}.get(
            key
        )
    if kind == "lifecycle":
        return "step" if key in PHASES and key != "Setenv" else None
    if kind == "artifact":
        return "permission" if key == "Permission" else None
    return None
