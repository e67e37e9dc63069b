"""The component versions a simulated fleet can deploy: recipes from build folders
(`greengrass-build/recipes` + `artifacts/<name>/<version>/`), with npm-style dependency ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import BadInputError
from toolkit.simulator.artifacts import ArtifactSource
from toolkit.simulator.recipe import Recipe, find_recipes


def _ver(v: str) -> tuple[int, int, int, tuple]:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?", v)
    if not m:
        raise ValueError(f"not a semantic version: {v!r}")
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    # a release sorts after its pre-releases
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), (1,) if not pre else (0, *pre)


def satisfies(version: str, requirement: str | None) -> bool:
    """npm-style ranges as Greengrass uses them: `1.2.3`, `^1.2.0`, `~1.2.0`, `>=1.0.0 <2.0.0`,
    `*`, alternatives with `||`."""
    if not requirement or requirement.strip() in ("*", ""):
        return True
    v = _ver(version)
    return any(all(_one(v, part) for part in alt.split()) for alt in requirement.split("||"))


def _one(v: tuple, part: str) -> bool:
    m = re.match(r"(\^|~|>=|<=|>|<|=)?v?(.+)", part.strip())
    assert m
    op, target = m.group(1) or "=", _ver(m.group(2))
    if op == "^":
        upper = (target[0] + 1, 0, 0) if target[0] else (0, target[1] + 1, 0)
        return target <= v and v[:3] < upper
    if op == "~":
        return target <= v and v[:3] < (target[0], target[1] + 1, 0)
    return {
        "=": v == target,
        ">=": v >= target,
        "<=": v <= target,
        ">": v > target,
        "<": v < target,
    }[op]


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
            have = sorted(v for (n, v) in self.entries if n == name)
            raise BadInputError(
                f"component {name} {version} is not in the catalog (have: {have or 'none'})"
            ) from None

    def latest(self, name: str, requirement: str | None = None) -> CatalogEntry:
        versions = [v for (n, v) in self.entries if n == name and satisfies(v, requirement)]
        if not versions:
            raise BadInputError(
                f"no version of {name} satisfies {requirement or '*'}",
                hint="add the dependency's build folder to the catalog",
            )
        return self.entries[(name, max(versions, key=_ver))]
