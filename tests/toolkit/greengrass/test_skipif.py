"""Skipif has one rule (edgekit/toolkit/greengrass/skipif.py): the recipe check and the simulator read
it alike, `!` included (the simulator used to ignore it and run a negated step anyway)."""

from __future__ import annotations

import os
from pathlib import Path

from edgekit.toolkit.greengrass import skipif
from edgekit.toolkit.greengrass.validate import validate_recipe


def test_parse_follows_the_nucleus() -> None:
    assert skipif.parse("onpath git") == skipif.Skipif(False, "onpath", "git")
    assert skipif.parse("!exists /tmp/x") == skipif.Skipif(True, "exists", "/tmp/x")
    assert skipif.parse("! onpath  sh") == skipif.Skipif(True, "onpath", "sh")
    assert skipif.parse("ONPATH git") is None  # the nucleus's pattern is lower case
    assert skipif.parse("whenever") is None


def test_should_skip_and_its_negation(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "")}
    (tmp_path / "marker").write_text("")
    assert skipif.should_skip("exists marker", env, tmp_path)
    assert not skipif.should_skip("!exists marker", env, tmp_path)
    assert skipif.should_skip("!exists missing", env, tmp_path)
    assert skipif.should_skip("onpath sh", env, tmp_path)
    assert not skipif.should_skip("!onpath sh", env, tmp_path)
    assert not skipif.should_skip("nonsense", env, tmp_path)
    assert not skipif.should_skip(None, env, tmp_path)


def test_the_recipe_check_uses_the_same_rule() -> None:
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Skip",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {"Install": {"Script": "true", "Skipif": "whenever"}},
            }
        ],
    }
    codes = {f.code for f in validate_recipe(recipe)}
    assert "skipif" in codes
    recipe["Manifests"][0]["Lifecycle"]["Install"]["Skipif"] = "!onpath git"
    assert "skipif" not in {f.code for f in validate_recipe(recipe)}
