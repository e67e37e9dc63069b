"""The run store and the package stage order component versions by SemVer (issue 22): the
old tuple comparison put 1.0.0-rc.10 before 1.0.0-rc.2 and read 1.2.3.4 as a version."""

from __future__ import annotations

from edgekit.toolkit.pipeline.stages.ship import next_version
from edgekit.toolkit.pipeline.store import RunStore


def test_last_version_is_the_highest_by_semver(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run = store.begin(pipeline="p.yaml", digest="d", name="p", inputs={}, versions={})
    packaged = ["1.0.0-rc.2", "1.0.0-rc.10", "0.9.0", "1.2.3.4", "1.0.0-rc.9+build.1"]
    for i, version in enumerate(packaged):
        store.stage(
            run, i, "package", None, "ran", 0.0, 0.0, {"component": "c", "version": version}
        )
    assert store.last_version("c") == "1.0.0-rc.10"
    store.stage(run, 9, "package", None, "ran", 0.0, 0.0, {"component": "c", "version": "1.0.0"})
    assert store.last_version("c") == "1.0.0"
    assert store.last_version("other") is None
    store.close()


def test_next_version_is_the_next_patch():
    assert next_version(None) == "1.0.0"
    assert next_version("1.0.9") == "1.0.10"
    assert next_version("1.0.0-rc.10+b") == "1.0.1"
