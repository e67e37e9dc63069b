"""Recipes read as the nucleus reads them, by a YAML loader with bounds."""

from __future__ import annotations

import pytest

from edge_agent.errors import BadInputError
from edgekit.toolkit.greengrass.recipe_io import parse


def test_a_recipe_of_yaml_aliases_past_the_cap_is_refused() -> None:
    """Anchors nested eight deep stand for 10**8 values ("billion laughs"): `recipe validate`
    and the simulator walked them all (found by tryhostile)."""
    lines = ['x0: &x0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]")
    with pytest.raises(BadInputError, match="stands for more than 100,000 values"):
        parse("RecipeFormatVersion: '2020-01-25'\n" + "\n".join(lines), "x.yaml")
    assert parse("a: &v [1]\nb: *v\n") == {"a": [1], "b": [1]}, "an ordinary alias is fine"


def test_a_recipe_nested_past_the_recursion_limit_is_refused() -> None:
    with pytest.raises(BadInputError, match="nested too deeply"):
        parse("a: " + "[" * 5000 + "]" * 5000, "x.yaml")
