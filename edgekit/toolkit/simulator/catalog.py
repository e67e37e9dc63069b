"""The component versions a simulated fleet can deploy: recipes from build folders
(`greengrass-build/recipes` + `artifacts/<name>/<version>/`), with npm-style dependency ranges."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import BadInputError
from edgekit.toolkit.greengrass import versions
from edgekit.toolkit.simulator.artifacts import ArtifactSource
from edgekit.toolkit.simulator.recipe import Recipe, find_recipes


def satisfies(version: str, requirement: str | None) -> bool:
    """npm's range rules, as the nucleus resolves VersionRequirement (edgekit.toolkit.greengrass.versions).
    A requirement the nucleus cannot parse fails the deployment: a clear error here too."""
    try:
        return versions.satisfies(version, requirement)
    except versions.VersionError as exc:
        raise BadInputError(f"VersionRequirement {exc}") from None


@dataclass
class CatalogEntry:
    recipe: Recipe
    source: ArtifactSource


class Catalog:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], CatalogEntry] = {}

    def add_build_dir(
        self, build_dir: str | Path, s3_root: str | Path | None = None
    ) -> list[Recipe]:
        build_dir = Path(build_dir)
        recipes_dir = build_dir / "recipes"
        if not recipes_dir.is_dir():
            raise BadInputError(
                f"{build_dir} has no recipes/ folder",
                hint="pass the greengrass-build folder that `edgekit package` wrote",
            )
        source = ArtifactSource(build_dir, Path(s3_root) if s3_root else None)
        recipes = find_recipes(recipes_dir)
        if not recipes:
            raise BadInputError(f"no recipe (.json/.yaml) in {recipes_dir}")
        for r in recipes:
            self.entries[(r.name, r.version)] = CatalogEntry(r, source)
        return recipes

    def add(self, recipe: Recipe, source: ArtifactSource) -> None:
        self.entries[(recipe.name, recipe.version)] = CatalogEntry(recipe, source)

    def get(self, name: str, version: str) -> CatalogEntry:
        try:
            return self.entries[(name, version)]
        except KeyError:
            have = sorted((v for (n, v) in self.entries if n == name), key=versions.sort_key)
            raise BadInputError(
                f"component {name} {version} is not in the catalog (have: {have or 'none'})"
            ) from None

    def latest(self, name: str, requirement: str | None = None) -> CatalogEntry:
        admitted = [v for (n, v) in self.entries if n == name and satisfies(v, requirement)]
        if not admitted:
            raise BadInputError(
                f"no version of {name} satisfies {requirement or '*'}",
                hint="add the dependency's build folder to the catalog",
            )
        return self.entries[(name, max(admitted, key=versions.sort_key))]
