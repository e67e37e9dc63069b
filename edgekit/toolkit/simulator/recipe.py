"""Reading a component recipe as the nucleus does: JSON or YAML, keys matched without regard
to case (rewritten here to canonical casing, configuration values untouched), validated against
the official recipe schema (vendored from aws-greengrass-component-common, Apache-2.0, which
is written against lower-cased keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edgekit.toolkit.greengrass import recipe_io, versions
from edgekit.toolkit.greengrass.validate import schema_findings

_CANON = {
    k.lower(): k
    for k in [
        "RecipeFormatVersion",
        "ComponentName",
        "ComponentVersion",
        "ComponentDescription",
        "ComponentPublisher",
        "ComponentConfiguration",
        "DefaultConfiguration",
        "ComponentDependencies",
        "VersionRequirement",
        "DependencyType",
        "ComponentType",
        "ComponentSource",
        "Manifests",
        "Platform",
        "Lifecycle",
        "Selections",
        "Artifacts",
        "Name",
        "URI",
        "Digest",
        "Algorithm",
        "Unarchive",
        "Permission",
        "Read",
        "Execute",
        "Setenv",
        "Bootstrap",
        "Install",
        "Run",
        "Startup",
        "Shutdown",
        "Recover",
        "Script",
        "Skipif",
        "Timeout",
        "RequiresPrivilege",
        "BootstrapOnRollback",
    ]
}
LIFECYCLE_STEPS = ("Bootstrap", "Install", "Run", "Startup", "Shutdown", "Recover")
_LIFECYCLE_KEYS = {
    k.lower()
    for k in (
        *LIFECYCLE_STEPS,
        "Setenv",
        "Script",
        "Skipif",
        "Timeout",
        "RequiresPrivilege",
        "BootstrapOnRollback",
    )
}
# subtrees whose keys belong to the user and must keep their case
_OPAQUE = {"DefaultConfiguration", "Setenv", "Platform", "ComponentDependencies"}


class RecipeError(BadInputError):
    """The recipe cannot be read or is not a valid Greengrass recipe."""


def _canon(node: Any, parent: str | None = None) -> Any:
    if isinstance(node, list):
        return [_canon(v, parent) for v in node]
    if not isinstance(node, dict):
        return node
    if parent in _OPAQUE:
        if parent == "ComponentDependencies":  # names are user keys, their fields are not
            return {k: _canon(v, "dependency") for k, v in node.items()}
        if parent == "Platform":  # attribute names are matched lower-case (os, architecture)
            return {str(k).lower(): v for k, v in node.items()}
        return dict(node)
    out: dict[str, Any] = {}
    for k, v in node.items():
        key: Any = _CANON.get(str(k).lower(), k)  # a recipe's keys may be any YAML scalar
        out[key] = _canon(v, key)
    return out


@dataclass
class Recipe:
    raw: dict[str, Any]
    source: Path | None = None
    name: str = field(init=False)
    version: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.raw["ComponentName"]
        self.version = str(self.raw["ComponentVersion"])

    @property
    def default_configuration(self) -> dict[str, Any]:
        cc = self.raw.get("ComponentConfiguration") or {}
        return dict(cc.get("DefaultConfiguration") or {})

    @property
    def dependencies(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw.get("ComponentDependencies") or {})

    @property
    def manifests(self) -> list[dict[str, Any]]:
        return list(self.raw.get("Manifests") or [])

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def parse_recipe(text: str, source: Path | None = None) -> Recipe:
    where = f" {source}" if source else ""
    try:  # the one recipe reader: YAML dates stay strings, as Jackson reads them
        data = recipe_io.parse(text, f"recipe{where}")
    except BadInputError as exc:
        raise RecipeError(exc.message, hint=exc.hint) from None
    # The schema findings the nucleus refuses too; those it tolerates (a null step, `Hard`)
    # do not stop a deployment here either.
    errors = [p for p in schema_findings(data) if p.severity == "error"]
    if errors:
        first = errors[0]
        raise RecipeError(
            f"recipe{where} does not match the Greengrass recipe schema at {first.path}: "
            f"{first.message}",
            hint="see the recipe reference: RecipeFormatVersion, ComponentName, ComponentVersion, Manifests",
            details={"errors": [e.message for e in errors[:10]]},
        )
    recipe = Recipe(_canon(data), source)
    if isinstance(recipe.name, str) and set(recipe.name) == {"."}:
        # The schema's pattern lets "." and ".." through; as a path segment of the device's
        # store and work folders they would point at the folders above (the validator's rule).
        raise RecipeError(
            f"recipe{where}: ComponentName {recipe.name!r} is not usable as a path",
            hint="name the component in reverse DNS, e.g. com.example.Classifier",
        )
    why = versions.problem(recipe.version)
    if why is not None:
        raise RecipeError(f"ComponentVersion {why}")
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from None
    return parse_recipe(text, path)


def find_recipes(folder: str | Path) -> list[Recipe]:
    """Every recipe in a folder (a `greengrass-build/recipes` or a component store)."""
    folder = Path(folder)
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".json", ".yaml", ".yml") and p.is_file():
            out.append(load_recipe(p))
    return out


def is_lifecycle_key(key: str) -> bool:
    return key.lower() in _LIFECYCLE_KEYS
