"""What the closed loop sends with each new version: the new version's own choice per platform
(the loop test failed when a re-trained model's tune picked another variant than v1's: the
device kept v1's /platforms configuration, whose variant the new artifacts do not hold), and
capture folders the agents can find from their own work folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.toolkit.pipeline.livefleet import LiveFleet
from edgekit.toolkit.simulator.config import apply_configuration_update, deep_merge


def _defaults(variant: str) -> dict:
    """DefaultConfiguration in the recipe's layout (edgekit.toolkit.greengrass.recipe), one platform."""
    return {
        "port": "8080",
        "capture_fraction": "0.0",
        "platforms": {
            "linux-amd64": {"target": "local", "variant": variant, "session_options": {}}
        },
    }


def _deployed(running: dict | None, defaults: dict, update) -> dict:
    """The nucleus's step 3 (as edgekit.toolkit.simulator.deployment does it): the new defaults under
    the running configuration, then the deployment's RESET, then its MERGE."""
    base = defaults if running is None else deep_merge(defaults, running)
    return apply_configuration_update(base, defaults, update.reset, update.merge)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    fleet = LiveFleet(Path("loop") / "fleet", devices=1)  # relative, as a user's -o is
    yield fleet
    fleet.stop()


def test_a_new_version_runs_its_own_variant(fleet: LiveFleet) -> None:
    v1 = _deployed(None, _defaults("fp32"), fleet.update("sim-001", "c", "1.0.0", {}))
    assert v1["platforms"]["linux-amd64"]["variant"] == "fp32"
    v2 = _deployed(v1, _defaults("int8-dynamic"), fleet.update("sim-001", "c", "1.0.1", {}))
    assert v2["platforms"]["linux-amd64"]["variant"] == "int8-dynamic"
    assert v2["capture_fraction"] == "1.0"  # the fleet's own settings still apply


def test_capture_folders_are_absolute(fleet: LiveFleet, tmp_path: Path) -> None:
    """The agent runs in the component's work folder: a relative capture folder would land
    there, and the loop would find 0 captured rows."""
    config = fleet.update("sim-001", "c", "1.0.0", {}).merge
    assert config["capture_dir"] == str(tmp_path / "loop" / "fleet" / "captures" / "sim-001")
    assert Path(config["capture_dir"]).is_absolute()


def test_a_greengrass_rollout_resets_the_platform_choice_too(tmp_path: Path) -> None:
    """The same rule for real devices: the deploy stage's CreateDeployment (dry run) resets
    /platforms before merging the stage's own configuration."""
    from edgekit.toolkit.pipeline.stages.ship import Deploy

    stage = Deploy(None, {"to": "greengrass", "thing": "t1", "dry_run": True, "merge": {"a": 1}})
    result = stage._greengrass(None, "com.example.Wine", "1.0.1", tmp_path)
    params = next(c for c in result["calls"] if c["operation"] == "CreateDeployment")["params"]
    update = params["components"]["com.example.Wine"]["configurationUpdate"]
    assert update["reset"] == ["/platforms"] and update["merge"] == '{"a": 1}'
